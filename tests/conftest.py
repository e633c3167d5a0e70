import contextlib
import fcntl
import os
import random
import shutil
from pathlib import Path
from typing import Iterator

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N: the N workers share the cores, so each computes with one thread, and so do the
    # processes its tests start (N workers of N threads each would fight over N cores)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

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


@contextlib.contextmanager
def cache_at(folder: Path):
    """EMBCLI_CACHE pointed at ``folder`` for the block (session fixtures run outside a test's env)."""
    old = os.environ.get("EMBCLI_CACHE")
    os.environ["EMBCLI_CACHE"] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("EMBCLI_CACHE", None)
        else:
            os.environ["EMBCLI_CACHE"] = old


def _fingerprint(root: Path) -> dict:
    """What a read-only shared fixture must still be after a test: every file's size and mtime."""
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in paths}


def made_once(tmp_path_factory, name: str, make) -> Path:
    """A session's shared folder ``name``, filled by ``make(folder)`` once for the whole test run:
    under pytest-xdist the first worker to get there makes it and the others wait for it."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".made").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            (folder / ".made").touch()
    return folder


@pytest.fixture(scope="session")
def shared_corpus(tmp_path_factory) -> tuple[Path, Path]:
    """The test corpus, written once and tokenized once: (its text file, a cache folder holding its shards).

    The token cache is keyed by the file's identity (path, size, mtime), so a copy of this cache
    folder serves that same file without tokenizing it again.
    """
    from embcli.data import CorpusSpec, prepare

    def make(root: Path) -> None:
        (root / "corpus.txt").write_text(make_corpus_text())
        with cache_at(root / "cache"):
            prepare(CorpusSpec(paths=[str(root / "corpus.txt")]), progress=False)

    root = made_once(tmp_path_factory, "shared_corpus", make)
    return root / "corpus.txt", root / "cache"


@pytest.fixture
def corpus_file(shared_corpus, tmp_path) -> Iterator[Path]:
    """The shared test corpus, already tokenized in this test's cache. Read it, never write it.

    (tests/test_data.py, which tests tokenizing itself, overrides this with a fresh file per test.)
    """
    path, cache = shared_corpus
    shutil.copytree(cache, tmp_path / "cache", dirs_exist_ok=True)
    before = _fingerprint(path)
    yield path
    assert _fingerprint(path) == before, "a test changed the shared corpus: write to a copy in tmp_path"


# The smallest model that is still the real architecture: fast enough to train in a test.
TINY = ["n_layer=1", "n_head=2", "n_embd=32", "block_size=32", "batch_size=8", "warmup_steps=5",
        "eval_interval=10", "eval_batches=2", "checkpoint_interval=10", "learning_rate=1e-2", "embedding_lr=0",
        "loss=fused", "compile=false", "max_tokens=0", "time_budget=0", "dtype=float32"]


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
def _trained_run(shared_corpus, tmp_path_factory) -> Path:
    from embcli.data import CorpusSpec
    from embcli.train import train

    corpus, cache = shared_corpus

    def make(root: Path) -> None:
        with cache_at(cache):
            train(tiny_config(max_steps=60), CorpusSpec(paths=[str(corpus)]), name="shared", runs_dir=root / "runs",
                  progress=False)

    return made_once(tmp_path_factory, "shared_run", make) / "runs" / "shared"


@pytest.fixture
def trained_run(_trained_run) -> Iterator[Path]:
    """One short real training run (TINY, 60 steps, on the shared corpus), made once for the whole
    session. Read-only: a test that writes to a run uses ``copy_of_trained_run``."""
    before = _fingerprint(_trained_run)
    yield _trained_run
    assert _fingerprint(_trained_run) == before, "a test changed the shared run: use copy_of_trained_run"


@pytest.fixture
def copy_of_trained_run(_trained_run, tmp_path):
    """``copy_of_trained_run(name)``: the shared 60-step run copied into this test's runs folder
    as ``name`` (finished, with its checkpoint), for a test that damages, resumes or extends a run."""

    def copy(name: str) -> Path:
        return Path(shutil.copytree(_trained_run, tmp_path / "runs" / name))

    return copy


@pytest.fixture(scope="session")
def default_counts(tmp_path_factory):
    """How often each id occurs in the default corpus's training split (what a default run saves)."""
    from embcli.data import CorpusSpec, prepare

    return prepare(CorpusSpec(), cache_dir=tmp_path_factory.mktemp("default_corpus"), progress=False).counts()
