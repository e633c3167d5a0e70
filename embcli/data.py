"""Corpus → GPT-2 tokens on disk: shards, counts, manifest, a held-out validation split.

A corpus is one or more *sources*: local .txt / .jsonl files (and their .gz), folders and globs of
them, or a Hugging Face dataset (hub name, local data files, or a folder from ``save_to_disk``),
optionally streamed so it never has to fit in memory.

Preparation streams text through the tokenizer in ~1 MB segments (documents joined with
``<|endoftext|>``: tiktoken's per-call overhead dominates short documents, so batching them is
~5× faster than encoding them one by one) on a thread per core, and writes:

- ``train_NNNN.bin`` / ``val_NNNN.bin``: raw uint16 token ids (GPT-2 ids fit: 50256 < 65536);
- ``counts.npy``: how often each id occurs in the training split — an id that never occurs has
  a row that training never moved;
- ``manifest.json``: sources with sizes and content hashes, token totals, shard list.

The result is cached under a key made of the sources' identities and the settings, so a second
run reuses it. Every 1/val_fraction-th block of 1024 tokens goes to validation: contiguous text,
spread over the whole corpus, independent of how it is cut into documents.
"""

from __future__ import annotations

import glob as globlib
import gzip
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterator

import numpy as np

from . import __version__
from .errors import EmbcliError
from .io import cache_root, make_dir_public, write_json_atomic
from .tokenizer import ENDOFTEXT, EOT_ID, N_VOCAB, RANKS_SHA256, gpt2_encoding

FORMAT_VERSION = 1
SEGMENT_CHARS = 1 << 20  # text per tokenizer call
VAL_BLOCK = 1024  # tokens; the unit of the train/validation split
MIN_VAL_TOKENS = 512  # a corpus under one validation period holds out its last tokens instead
SHARD_TOKENS = 1 << 26  # 128 MB of uint16 per shard
TEXT_SUFFIXES = (".txt", ".txt.gz", ".jsonl", ".jsonl.gz")


def default_corpus_path() -> Path:
    return Path(str(resources.files("embcli") / "assets" / "wordnet_glosses.txt.gz"))


@dataclass
class CorpusSpec:
    """What to read. Either ``paths`` (files, folders, globs) or ``dataset`` (a Hugging Face name or
    local dataset folder); with neither, the embedded default corpus."""

    paths: list[str] = field(default_factory=list)
    dataset: str | None = None
    dataset_config: str | None = None
    split: str = "train"
    text_field: str = "text"
    data_files: list[str] = field(default_factory=list)
    streaming: bool = False
    val_fraction: float = 0.01

    def describe(self) -> str:
        if self.dataset:
            return f"dataset {self.dataset}" + (f" ({self.dataset_config})" if self.dataset_config else "")
        if self.paths:
            return ", ".join(self.paths)
        return "the default corpus (WordNet 3.0 glosses)"


# ---------------------------------------------------------------------------------------------
# Reading sources
# ---------------------------------------------------------------------------------------------


def resolve_files(paths: list[str]) -> list[Path]:
    """Expand folders (recursively, known suffixes) and globs; every name must match something.
    A name that exists as typed is that file or folder, even with a glob's characters in it."""
    files: list[Path] = []
    for item in paths:
        p = Path(item).expanduser()
        if any(ch in item for ch in "*?[") and not p.exists():
            matches = sorted(Path(m) for m in globlib.glob(os.path.expanduser(item), recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise EmbcliError(f"corpus: no file matches {item}")
            files.extend(matches)
        elif p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(TEXT_SUFFIXES))
            if not found:
                raise EmbcliError(f"corpus: folder {item} has no {', '.join(TEXT_SUFFIXES)} files")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif p.exists():  # a FIFO, a device (/dev/null), a socket: no size or date to cache it by
            raise EmbcliError(f"corpus: {item} is not a regular file ({_file_kind(p)}); give text files, "
                              "folders or globs")
        else:
            raise EmbcliError(f"corpus: {item} does not exist")
    return files


def _file_kind(path: Path) -> str:
    mode = path.stat().st_mode
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"


def _decode(data: bytes, where: str) -> str:
    if b"\x00" in data:
        raise EmbcliError(f"corpus: {where} looks binary (it has NUL bytes); give text, .jsonl or .gz files")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EmbcliError(f"corpus: {where} is not UTF-8 text (bad byte at offset {exc.start})") from None


def _open(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _file_ident(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


class Source:
    """One place text comes from: a text file, a .jsonl file, a Hugging Face dataset.

    A source says what identifies it in the cache key (:meth:`identity`, cheap: no reading) and
    yields its text as ``(piece, ends_document)`` pairs that are safe to tokenize separately
    (:meth:`pieces`). While it is read it counts and hashes what it yielded, and afterwards
    :meth:`record` describes it for the manifest. A new kind of source is a subclass here and a
    line in :func:`open_sources`.
    """

    def __init__(self):
        self.sha = hashlib.sha256()
        self.bytes = 0
        self.documents = 0

    def identity(self) -> dict:
        raise NotImplementedError

    def _read(self) -> Iterator[tuple[str, bool]]:
        raise NotImplementedError

    def record(self) -> dict:
        raise NotImplementedError

    def pieces(self) -> Iterator[tuple[str, bool]]:
        for text, ends_document in self._read():
            self.documents += ends_document
            yield text, ends_document

    def _consumed(self, data: bytes) -> None:
        self.sha.update(data)
        self.bytes += len(data)


class TextFile(Source):
    """A plain-text file (or .txt.gz): one document.

    Large files are cut just after a newline that is followed by a non-space character: GPT-2's
    pattern never joins across such a point, so the ids are the same as for the whole file at once.
    """

    def __init__(self, path: Path, text_field: str):
        super().__init__()
        self.path, self.text_field = path, text_field

    def identity(self) -> dict:
        # text_field too, although a text file has none: a changed setting makes a new cache entry
        return dict(_file_ident(self.path), text_field=self.text_field)

    def record(self) -> dict:
        return {"path": str(self.path), "bytes": self.bytes, "sha256": self.sha.hexdigest()}

    def _read(self) -> Iterator[tuple[str, bool]]:
        carry = b""
        try:
            with _open(self.path) as fh:
                while True:
                    block = fh.read(SEGMENT_CHARS)
                    if not block:
                        break
                    self._consumed(block)
                    data = carry + block
                    cut = len(data)
                    while True:
                        cut = data.rfind(b"\n", 0, cut - 1)
                        if cut < 0 or not data[cut + 1:cut + 2].isspace():
                            break
                    if cut < 0:
                        carry = data
                        continue
                    carry = data[cut + 1:]
                    yield _decode(data[:cut + 1], str(self.path)), False
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise EmbcliError(f"corpus: cannot read {self.path}: {exc}") from None
        yield _decode(carry, str(self.path)), True


class JsonlFile(TextFile):
    """A .jsonl file (or .jsonl.gz): one document per line, its text in ``text_field``."""

    def _read(self) -> Iterator[tuple[str, bool]]:
        path, text_field = self.path, self.text_field
        try:
            with _open(path) as fh:
                for lineno, line in enumerate(fh, 1):
                    self._consumed(line)
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        raise EmbcliError(f"corpus: {path}:{lineno} is not valid JSON") from None
                    if not isinstance(record, dict) or text_field not in record:
                        raise EmbcliError(f"corpus: {path}:{lineno} has no {text_field!r} field (set --text-field)")
                    text = record[text_field]
                    if not isinstance(text, str):
                        raise EmbcliError(f"corpus: {path}:{lineno}: field {text_field!r} is not a string")
                    yield text, True
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise EmbcliError(f"corpus: cannot read {path}: {exc}") from None


class HFDataset(Source):
    """A Hugging Face dataset split (see :func:`load_hf_dataset`): one document per row."""

    def __init__(self, spec: CorpusSpec):
        super().__init__()
        self.spec = spec

    def identity(self) -> dict:
        spec = self.spec
        ident = {"dataset": spec.dataset, "config": spec.dataset_config, "split": spec.split,
                 "data_files": [_file_ident(Path(f)) if Path(f).is_file() else {"path": f} for f in spec.data_files],
                 "text_field": spec.text_field}
        local = Path(spec.dataset).expanduser()
        if local.is_dir():
            ident["files"] = [_file_ident(f) for f in sorted(local.rglob("*")) if f.is_file()]
        return ident

    def record(self) -> dict:
        spec = self.spec
        return {"dataset": spec.dataset, "config": spec.dataset_config, "split": spec.split,
                "text_field": spec.text_field, "bytes": self.bytes, "sha256": self.sha.hexdigest()}

    def _read(self) -> Iterator[tuple[str, bool]]:
        spec = self.spec
        for row in load_hf_dataset(spec):
            text = row.get(spec.text_field)
            if text is None:
                raise EmbcliError(f"corpus: dataset {spec.dataset} row has no {spec.text_field!r} field")
            self._consumed(text.encode("utf-8"))
            yield text, True


def open_sources(spec: CorpusSpec) -> list[Source]:
    """The sources a spec names (files must exist; nothing is read yet)."""
    if spec.dataset:
        return [HFDataset(spec)]
    files = resolve_files(spec.paths) if spec.paths else [default_corpus_path()]
    return [JsonlFile(f, spec.text_field) if f.name.endswith((".jsonl", ".jsonl.gz")) else TextFile(f, spec.text_field)
            for f in files]


def load_hf_dataset(spec: CorpusSpec):
    """A Hugging Face dataset split: a ``save_to_disk`` folder, local data files, or a hub name."""
    try:
        import datasets
    except ImportError:
        raise EmbcliError("corpus: --dataset needs the 'datasets' package (pip install datasets)") from None
    datasets.logging.set_verbosity_error()
    local = Path(spec.dataset).expanduser()
    try:
        if local.is_dir() and ((local / "dataset_dict.json").exists() or (local / "state.json").exists()):
            ds = datasets.load_from_disk(str(local))
            if isinstance(ds, datasets.DatasetDict):
                if spec.split not in ds:
                    raise EmbcliError(f"corpus: {spec.dataset} has no split {spec.split!r} (has {', '.join(ds)})")
                ds = ds[spec.split]
            if spec.streaming:
                ds = ds.to_iterable_dataset()
        else:
            kwargs = {"split": spec.split, "streaming": spec.streaming}
            if spec.data_files:
                kwargs["data_files"] = spec.data_files
            ds = datasets.load_dataset(spec.dataset, spec.dataset_config, **kwargs)
    except EmbcliError:
        raise
    except Exception as exc:  # datasets raises many types: network, missing files, bad configs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmbcliError(f"corpus: cannot load dataset {spec.dataset}: {first}") from None
    columns = getattr(ds, "column_names", None)
    if columns is not None and spec.text_field not in columns:
        raise EmbcliError(f"corpus: dataset {spec.dataset} has no column {spec.text_field!r} "
                          f"(columns: {', '.join(columns)}; set --text-field)")
    return ds


# ---------------------------------------------------------------------------------------------
# Cache identity
# ---------------------------------------------------------------------------------------------


def cache_key(spec: CorpusSpec, identity: list[dict]) -> str:
    blob = json.dumps({"format": FORMAT_VERSION, "tokenizer": RANKS_SHA256, "val_fraction": spec.val_fraction,
                       "sources": identity}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


class _SplitWriter:
    """Routes a token stream into train/val blocks and uint16 shard files, counting train ids."""

    def __init__(self, out: Path, val_fraction: float):
        self.out = out
        self.val_every = round(1 / val_fraction) if val_fraction > 0 else 0
        self.position = 0
        self.counts = np.zeros(N_VOCAB, dtype=np.int64)
        self.shards: dict[str, list[dict]] = {"train": [], "val": []}
        self.files: dict[str, object] = {}

    def _write(self, split: str, tokens: np.ndarray) -> None:
        while len(tokens):
            shards = self.shards[split]
            if not shards or shards[-1]["tokens"] >= SHARD_TOKENS:
                if split in self.files:
                    self.files[split].close()
                name = f"{split}_{len(shards):04d}.bin"
                self.files[split] = open(self.out / name, "wb")
                shards.append({"file": name, "tokens": 0})
            room = SHARD_TOKENS - shards[-1]["tokens"]
            part, tokens = tokens[:room], tokens[room:]
            self.files[split].write(part.astype(np.uint16).tobytes())
            shards[-1]["tokens"] += len(part)
            if split == "train":
                self.counts += np.bincount(part, minlength=N_VOCAB)

    def add(self, tokens: np.ndarray) -> None:
        if not self.val_every:
            self._write("train", tokens)
            self.position += len(tokens)
            return
        while len(tokens):
            block = self.position // VAL_BLOCK
            take = min(len(tokens), (block + 1) * VAL_BLOCK - self.position)
            split = "val" if block % self.val_every == self.val_every - 1 else "train"
            self._write(split, tokens[:take])
            tokens = tokens[take:]
            self.position += take

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()

    def hold_out_tail(self, n: int) -> None:
        """A corpus smaller than one validation period gets its last n tokens as validation."""
        shard = self.shards["train"][-1]
        path = self.out / shard["file"]
        n = min(n, shard["tokens"])
        tail = np.fromfile(path, dtype=np.uint16)[-n:]
        with open(path, "r+b") as fh:
            fh.truncate(2 * (shard["tokens"] - n))
        shard["tokens"] -= n
        self.counts -= np.bincount(tail, minlength=N_VOCAB)
        name = "val_0000.bin"
        tail.tofile(self.out / name)
        self.shards["val"] = [{"file": name, "tokens": n}]


def _segments(pieces: Iterator[tuple[str, bool]]) -> Iterator[str]:
    """Pieces joined into ~SEGMENT_CHARS strings, documents separated by <|endoftext|>."""
    buf: list[str] = []
    size = 0
    for text, ends_document in pieces:
        buf.append(text)
        size += len(text)
        if ends_document:
            buf.append(ENDOFTEXT)
        if size >= SEGMENT_CHARS:
            yield "".join(buf)
            buf, size = [], 0
    if buf:
        yield "".join(buf)


@dataclass
class PreparedCorpus:
    """Token shards on disk, memory-mapped on demand."""

    path: Path
    manifest: dict

    @property
    def train_tokens(self) -> int:
        return self.manifest["tokens"]["train"]

    @property
    def val_tokens(self) -> int:
        return self.manifest["tokens"]["val"]

    def split(self, name: str) -> list[np.ndarray]:
        return [np.memmap(self.path / s["file"], dtype=np.uint16, mode="r", shape=(s["tokens"],))
                for s in self.manifest["shards"][name] if s["tokens"]]

    def counts(self) -> np.ndarray:
        return np.load(self.path / "counts.npy")


def open_prepared(path: Path) -> PreparedCorpus:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        if manifest.get("format") != FORMAT_VERSION:
            raise ValueError
        for split in ("train", "val"):
            for shard in manifest["shards"][split]:
                if (path / shard["file"]).stat().st_size != 2 * shard["tokens"]:
                    raise ValueError
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        raise EmbcliError(f"prepared corpus at {path} is damaged; delete it and prepare again") from None
    return PreparedCorpus(path, manifest)


def prepare(spec: CorpusSpec, cache_dir: Path | None = None, *, progress: bool = True,
            threads: int | None = None, force: bool = False) -> PreparedCorpus:
    """Tokenize a corpus into cached shards (or reuse the cached ones) and return them."""
    if not 0 <= spec.val_fraction < 0.5:
        raise EmbcliError(f"--val-fraction must be in [0, 0.5) (got {spec.val_fraction})")
    sources = open_sources(spec)
    root = (cache_dir or cache_root()) / "corpora"
    final = root / cache_key(spec, [source.identity() for source in sources])
    if final.exists() and not force:
        try:
            return open_prepared(final)
        except EmbcliError:
            shutil.rmtree(final, ignore_errors=True)  # damaged cache: rebuild it
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        make_dir_public(work)
    except OSError as exc:
        raise EmbcliError(f"cannot write the token cache at {root}: {exc.strerror} (set EMBCLI_CACHE)") from None
    try:
        manifest = _tokenize_into(work, spec, sources, progress, threads or os.cpu_count() or 1)
        manifest["key"] = final.name
        write_json_atomic(work / "manifest.json", manifest)
        if final.exists():
            shutil.rmtree(final)
        os.replace(work, final)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return PreparedCorpus(final, manifest)


def _tokenize_into(work: Path, spec: CorpusSpec, sources: list[Source], progress: bool, threads: int) -> dict:
    """Read and tokenize every source into ``work`` (shards, counts.npy); return the manifest."""
    from .progress import corpus_progress

    writer = _SplitWriter(work, spec.val_fraction)
    start = time.perf_counter()
    with corpus_progress(spec.describe(), enabled=progress) as bar:

        def pieces() -> Iterator[tuple[str, bool]]:
            for source in sources:
                for text, ends_document in source.pieces():
                    bar.advance(len(text))
                    yield text, ends_document

        _encode(_segments(pieces()), writer, bar, threads)
    writer.close()
    documents = sum(source.documents for source in sources)
    train, val = _settle_splits(writer, spec, documents)
    np.save(work / "counts.npy", writer.counts)
    whole = hashlib.sha256()  # the corpus's content: its sources' hashes, in order
    for source in sources:
        whole.update(source.sha.digest())
    records = [source.record() for source in sources]
    return {
        "format": FORMAT_VERSION,
        "embcli_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "description": spec.describe(),
        "spec": asdict(spec),
        "sources": records,
        "bytes": sum(r["bytes"] for r in records),
        "content_sha256": whole.hexdigest(),
        "documents": documents,
        "tokenizer": {"name": "gpt2", "ranks_sha256": RANKS_SHA256},
        "val_fraction": spec.val_fraction,
        "val_block": VAL_BLOCK,
        "tokens": {"train": train, "val": val},
        "distinct_train_ids": int((writer.counts > 0).sum()),
        "shards": writer.shards,
        "seconds": round(time.perf_counter() - start, 3),
    }


def _encode(segments: Iterator[str], writer: _SplitWriter, bar, threads: int) -> None:
    """Tokenize segments on a thread per core, writing the tokens in the segments' order."""
    enc = gpt2_encoding()
    with ThreadPoolExecutor(threads) as pool:
        pending = []
        for segment in segments:
            pending.append(pool.submit(enc.encode_to_numpy, segment, allowed_special={ENDOFTEXT}))
            if len(pending) >= 2 * threads:  # bounded: memory does not grow with the corpus
                tokens = pending.pop(0).result()
                writer.add(tokens)
                bar.tokens(len(tokens))
        for fut in pending:
            tokens = fut.result()
            writer.add(tokens)
            bar.tokens(len(tokens))


def _settle_splits(writer: _SplitWriter, spec: CorpusSpec, documents: int) -> tuple[int, int]:
    """Refuse an empty corpus; give one too small for a validation block its tail as validation.
    Returns the train and validation token totals."""
    train = sum(s["tokens"] for s in writer.shards["train"])
    val = sum(s["tokens"] for s in writer.shards["val"])
    if train == 0 or documents == 0 or writer.counts[:EOT_ID].sum() == 0:
        raise EmbcliError(f"corpus: {spec.describe()} is empty (no text to train on)")
    if val == 0 and spec.val_fraction > 0:
        want = max(int(train * spec.val_fraction), MIN_VAL_TOKENS)
        if want > train // 4:
            raise EmbcliError(f"corpus: {spec.describe()} is too small to hold out a validation split "
                              f"({train} tokens; give more text or --val-fraction 0)")
        writer.hold_out_tail(want)
        train, val = train - want, want
    return train, val
