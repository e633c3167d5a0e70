"""The classic method on the same data: gensim Word2Vec over the run's own GPT-2 token ids.

Same corpus, same tokenizer, same training split, same table width: the only difference left is
the method (a shallow skip-gram with negative sampling vs. a transformer language model), so the
side-by-side scores say what the transformer's table is worth on this corpus.

A fair comparison also gives both methods the same time. Word2Vec's time is set by its number of
epochs (its learning rate falls to zero over them, so a table is trained in one call with the
epochs it is meant to have): :func:`choose_epochs` turns a target time and a measured time per
epoch into the epochs that fill it, and :class:`Word2VecTrainer` trains fresh tables of any number
of epochs from one vocabulary, timing each.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from .errors import EmbcliError
from .tokenizer import EOT_ID, N_VOCAB

MAX_SENTENCE = 10_000  # gensim ignores tokens past 10000 in one sentence
REFERENCE_EPOCHS = 5  # gensim's default, and the figure the README's recipe table has always shown


@dataclass
class Word2VecSettings:
    sg: int = 1
    vector_size: int = 128
    window: int = 5
    negative: int = 5
    min_count: int = 1
    epochs: int = REFERENCE_EPOCHS
    workers: int = 0  # 0: one per core

    def describe(self, with_epochs: bool = True) -> str:
        epochs = f"{epochs_text(self.epochs)}, " if with_epochs else ""
        return (f"{'skip-gram' if self.sg else 'CBOW'}, d {self.vector_size}, window {self.window}, "
                f"negative {self.negative}, {epochs}min_count {self.min_count}, {self.workers} threads")


def epochs_text(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


@dataclass
class Word2VecTable:
    """One trained table: (50257 × d) float32, rows Word2Vec never saw left zero."""

    table: np.ndarray
    settings: Word2VecSettings  # with the epochs it was trained for and the threads it used
    seconds: float  # gensim's training alone (the vocabulary is built once, before any table)


def choose_epochs(target_seconds: float, per_epoch_seconds: float) -> int:
    """The whole number of epochs whose time comes nearest ``target_seconds``, at least one.

    ``per_epoch_seconds`` is measured on this machine (an epoch's share of a timed training);
    halves round up, so a target of 2.5 epochs' time gets 3.
    """
    if not (math.isfinite(target_seconds) and target_seconds >= 0):
        raise ValueError(f"target_seconds must be finite and >= 0 (got {target_seconds})")
    if not (math.isfinite(per_epoch_seconds) and per_epoch_seconds > 0):
        raise ValueError(f"per_epoch_seconds must be finite and > 0 (got {per_epoch_seconds})")
    return max(1, math.floor(target_seconds / per_epoch_seconds + 0.5))


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


class Word2VecTrainer:
    """The sentences read and gensim's vocabulary built once; each :meth:`train` starts a fresh
    model from that same vocabulary and the same initial vectors, so tables of different epoch
    counts differ only by their training."""

    def __init__(self, shards: list[np.ndarray], settings: Word2VecSettings):
        try:
            from gensim.models import Word2Vec
        except ImportError:
            raise EmbcliError("the word2vec baseline needs gensim: pip install 'embcli[baseline]'") from None
        self.settings = dataclasses.replace(settings, workers=settings.workers or os.cpu_count() or 1)
        self.sentences = token_sentences(shards)
        s = self.settings
        self._blank = Word2Vec(sg=s.sg, vector_size=s.vector_size, window=s.window, negative=s.negative,
                               min_count=s.min_count, epochs=s.epochs, workers=s.workers, seed=1)
        start = time.perf_counter()
        self._blank.build_vocab(self.sentences)
        self.vocab_seconds = time.perf_counter() - start

    def train(self, epochs: int) -> Word2VecTable:
        """A fresh table trained for ``epochs`` epochs in one call (the learning rate decays over all of them)."""
        model = copy.deepcopy(self._blank)
        model.epochs = epochs
        start = time.perf_counter()
        model.train(self.sentences, total_examples=model.corpus_count, epochs=epochs)
        seconds = time.perf_counter() - start
        table = np.zeros((N_VOCAB, self.settings.vector_size), dtype=np.float32)
        ids = np.array([int(k) for k in model.wv.index_to_key], dtype=np.int64)
        table[ids] = model.wv.vectors
        return Word2VecTable(table, dataclasses.replace(self.settings, epochs=epochs), seconds)


def train_word2vec(shards: list[np.ndarray], settings: Word2VecSettings) -> tuple[np.ndarray, float]:
    """A (50257 × d) float32 table from Word2Vec trained for ``settings.epochs`` epochs (rows it
    never saw are zero) and the seconds its training took. ``settings.workers`` is set to the
    threads used."""
    trainer = Word2VecTrainer(shards, settings)
    settings.workers = trainer.settings.workers
    result = trainer.train(settings.epochs)
    return result.table, result.seconds
