"""embcli: train GPT-2-style token embeddings on a corpus and explore what the table learned."""

__version__ = "0.1.0"
