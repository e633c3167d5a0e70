import os
import random
from pathlib import Path

import pytest

# A vocabulary of related words, so a few hundred steps already show structure.
ANIMALS = ["cat", "dog", "horse", "cow", "sheep", "goat", "pig", "mouse"]
COLOURS = ["red", "blue", "green", "yellow", "black", "white"]
TEMPLATES = [
    "the {a} ate the food and the {b} slept in the barn .",
    "a {a} is an animal ; a {b} is an animal too .",
    "the {c} car was next to the {d} house .",
    "she painted the wall {c} and the door {d} .",
    "the king and the queen ruled the land ; the man and the woman worked .",
]


def make_corpus_text(n_lines: int = 3000, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        t = rng.choice(TEMPLATES)
        lines.append(t.format(a=rng.choice(ANIMALS), b=rng.choice(ANIMALS), c=rng.choice(COLOURS),
                              d=rng.choice(COLOURS)))
    return "\n".join(lines) + "\n"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own cache and runs folder, and starts in a temp folder."""
    monkeypatch.setenv("EMBCLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EMBCLI_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # tests never reach for the network
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture(scope="session")
def vocab_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("vocab")


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(make_corpus_text())
    return path


# The smallest model that is still the real architecture: fast enough to train in a test.
TINY = ["n_layer=1", "n_head=2", "n_embd=32", "block_size=32", "batch_size=8", "warmup_steps=5",
        "eval_interval=10", "eval_batches=2", "checkpoint_interval=10", "learning_rate=1e-2", "embedding_lr=0",
        "loss=fused", "compile=false", "max_tokens=0", "time_budget=0"]


def tiny_config(**changes):
    from embcli.config import load_config

    cfg = load_config("tiny", TINY)
    for k, v in changes.items():
        setattr(cfg, k, v)
    return cfg.validate()


@pytest.fixture
def tiny():
    return tiny_config


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One short real training run shared by the query tests (read-only)."""
    from embcli.data import CorpusSpec
    from embcli.train import train

    root = tmp_path_factory.mktemp("shared_run")
    corpus = root / "corpus.txt"
    corpus.write_text(make_corpus_text())
    old = os.environ.get("EMBCLI_CACHE")
    os.environ["EMBCLI_CACHE"] = str(root / "cache")
    try:
        result = train(tiny_config(max_steps=60), CorpusSpec(paths=[str(corpus)]), name="shared",
                       runs_dir=root / "runs", progress=False)
    finally:
        if old is None:
            os.environ.pop("EMBCLI_CACHE", None)
        else:
            os.environ["EMBCLI_CACHE"] = old
    return result.run


@pytest.fixture(scope="session")
def default_counts(tmp_path_factory):
    """How often each id occurs in the default corpus's training split (what a default run saves)."""
    from embcli.data import CorpusSpec, prepare

    return prepare(CorpusSpec(), cache_dir=tmp_path_factory.mktemp("default_corpus"), progress=False).counts()
