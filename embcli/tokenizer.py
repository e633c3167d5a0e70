"""GPT-2's byte-pair encoding, built from the ranks file shipped in the package.

tiktoken would normally download the ranks from ``openaipublic.blob.core.windows.net``; many
machines (and CI) cannot reach it, so embcli ships the file (byte-identical to tiktoken's
``r50k_base``/``gpt2`` ranks) and checks its hash on every load.

A token id is an arbitrary label: " cat" is 3797 because that is where the BPE merge that made it
landed, nothing more. The embedding table gives each id a row; training gives the rows meaning.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import EmbcliError

RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
# GPT-2's split pattern, as tiktoken writes it (equivalent to the original release's, faster).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
ENDOFTEXT = "<|endoftext|>"
EOT_ID = 50256
N_VOCAB = 50257


def ranks_path() -> Path:
    return Path(str(resources.files("embcli") / "assets" / "gpt2.tiktoken"))


def load_ranks(path: Path | None = None) -> dict[bytes, int]:
    """Read a tiktoken ranks file (base64 token, space, rank per line) after checking its hash."""
    path = path or ranks_path()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EmbcliError(f"cannot read the tokenizer ranks file {path}: {exc.strerror}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != RANKS_SHA256:
        raise EmbcliError(f"tokenizer ranks file {path} is damaged (sha256 {digest[:12]}…, expected {RANKS_SHA256[:12]}…)")
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@lru_cache(maxsize=1)
def gpt2_encoding():
    """The GPT-2 ``tiktoken.Encoding`` (50257 ids, ``<|endoftext|>`` = 50256), built offline."""
    import tiktoken

    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=load_ranks(),
        special_tokens={ENDOFTEXT: EOT_ID},
        explicit_n_vocab=N_VOCAB,
    )


def encode(text: str) -> list[int]:
    """Ordinary text → ids; a literal ``<|endoftext|>`` in the text is encoded as text."""
    return gpt2_encoding().encode_ordinary(text)


def decode(ids) -> str:
    return gpt2_encoding().decode(list(ids))


def token_bytes(token_id: int) -> bytes:
    return gpt2_encoding().decode_single_token_bytes(int(token_id))


def show_token(token_id: int) -> str:
    """A token as a person should see it: a leading space as '␣', partial UTF-8 as escapes."""
    return _show_bytes(token_bytes(token_id))


class Vocab:
    """id ↔ bytes for all 50257 GPT-2 tokens, without building the BPE.

    The query commands need to name tokens and find single-token words, not to run BPE. Parsing
    the base64 ranks and building tiktoken's encoder costs ~0.25 s — most of a cold query — so the
    table is cached once, after a hash-checked load, as two arrays (all bytes, and offsets).
    """

    def __init__(self, blob: bytes, offsets):
        self._blob = blob
        self._offsets = offsets
        self._index: dict[bytes, int] | None = None

    @classmethod
    def load(cls) -> Vocab:
        import numpy as np

        from .io import cache_root

        path = cache_root() / f"gpt2-vocab-{RANKS_SHA256[:16]}.npz"
        try:
            with np.load(path) as npz:
                blob, offsets = npz["blob"].tobytes(), npz["offsets"].tolist()
            if len(offsets) == N_VOCAB + 1:
                return cls(blob, offsets)
        except (OSError, ValueError, KeyError):
            pass
        ranks = load_ranks()
        tokens = [b""] * N_VOCAB
        for token, rank in ranks.items():
            tokens[rank] = token
        tokens[EOT_ID] = ENDOFTEXT.encode()
        offsets = [0]
        for token in tokens:
            offsets.append(offsets[-1] + len(token))
        blob = b"".join(tokens)
        try:
            from .io import atomic_path

            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, blob=np.frombuffer(blob, dtype=np.uint8), offsets=np.array(offsets, dtype=np.int64))
        except (OSError, EmbcliError):
            pass  # an unwritable cache only costs speed
        return cls(blob, offsets)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def bytes_of(self, token_id: int) -> bytes:
        return self._blob[self._offsets[token_id]:self._offsets[token_id + 1]]

    def id_of(self, token: bytes) -> int | None:
        if self._index is None:
            blob, off = self._blob, self._offsets
            self._index = {blob[off[i]:off[i + 1]]: i for i in range(EOT_ID)}
        return self._index.get(token)

    def show(self, token_id: int) -> str:
        return _show_bytes(self.bytes_of(token_id))


@lru_cache(maxsize=1)
def shared_vocab() -> Vocab:
    """One Vocab for the process: JSON answers name tokens by their real strings through it."""
    return Vocab.load()


def token_json(token_id: int, vocab: Vocab | None = None) -> dict:
    """A token as JSON answers give it: ``{"id": 3797, "token": " cat"}``, the real string.

    A token that is not whole UTF-8 (a piece of a multi-byte character) has no exact string: its
    ``token`` is the decoding with U+FFFD for the partial bytes, and ``bytes`` gives them in hex.
    """
    raw = (vocab or shared_vocab()).bytes_of(int(token_id))
    try:
        return {"id": int(token_id), "token": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"id": int(token_id), "token": raw.decode("utf-8", errors="replace"), "bytes": raw.hex()}


def _show_bytes(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in raw)
    return text.replace(" ", "␣").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
