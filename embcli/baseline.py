"""The classic method on the same data: gensim Word2Vec over the run's own GPT-2 token ids.

Same corpus, same tokenizer, same training split, same table width: the only difference left is
the method (a shallow skip-gram with negative sampling vs. a transformer language model), so the
side-by-side scores say what the transformer's table is worth on this corpus.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from .errors import EmbcliError
from .tokenizer import EOT_ID, N_VOCAB

MAX_SENTENCE = 10_000  # gensim ignores tokens past 10000 in one sentence


@dataclass
class Word2VecSettings:
    sg: int = 1
    vector_size: int = 128
    window: int = 5
    negative: int = 5
    min_count: int = 1
    epochs: int = 5
    workers: int = 0  # 0: one per core

    def describe(self) -> str:
        return (f"{'skip-gram' if self.sg else 'CBOW'}, d {self.vector_size}, window {self.window}, "
                f"negative {self.negative}, {self.epochs} epochs, min_count {self.min_count}, {self.workers} threads")


def token_sentences(shards: list[np.ndarray]) -> list[list[str]]:
    """Documents (split at <|endoftext|>) cut into ≤10000-token sentences of id strings."""
    stream = np.concatenate(shards) if shards else np.zeros(0, np.uint16)
    names = np.array([str(i) for i in range(N_VOCAB)], dtype=object)
    cuts = np.flatnonzero(stream == EOT_ID)
    sentences, start = [], 0
    for end in list(cuts) + [len(stream)]:
        doc = stream[start:end]
        for s in range(0, len(doc), MAX_SENTENCE):
            piece = doc[s:s + MAX_SENTENCE]
            if len(piece):
                sentences.append(names[piece].tolist())
        start = end + 1
    return sentences


def train_word2vec(shards: list[np.ndarray], settings: Word2VecSettings) -> tuple[np.ndarray, float]:
    """A (50257 × d) float32 table from Word2Vec (rows it never saw are zero) and the seconds it took."""
    try:
        from gensim.models import Word2Vec
    except ImportError:
        raise EmbcliError("the word2vec baseline needs gensim: pip install 'embcli[baseline]'") from None
    sentences = token_sentences(shards)
    workers = settings.workers or os.cpu_count() or 1
    settings.workers = workers
    start = time.perf_counter()
    model = Word2Vec(sentences, sg=settings.sg, vector_size=settings.vector_size, window=settings.window,
                     negative=settings.negative, min_count=settings.min_count, epochs=settings.epochs,
                     workers=workers, seed=1)
    seconds = time.perf_counter() - start
    table = np.zeros((N_VOCAB, settings.vector_size), dtype=np.float32)
    ids = np.array([int(k) for k in model.wv.index_to_key], dtype=np.int64)
    table[ids] = model.wv.vectors
    return table, seconds
