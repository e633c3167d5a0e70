"""Runs on disk: the one owner of a run folder's layout and of its metadata record.

    runs/<name>/
      config.json          the TrainConfig the run was started with
      meta.json            a RunMeta: status, step, tokens seen, losses, versions, the corpus manifest
      embeddings.npy       the token table, float32, memory-mapped by every query command
      norms.npy            its row norms (float32), so a cold query skips a pass over the table
      counts.npy           how often each id occurred in the training split
      snapshots/step_N.npy the table at step 0 (pure noise), 10, 30, 100, 300, ...
      checkpoint/          model.safetensors + optimizer.safetensors + rng.safetensors + state.json,
                           for --resume (what goes into them is the trainer's business: train.py)
      metrics.jsonl        one JSON object per training step, appended as training goes (MetricsLog)
      tb/                  TensorBoard scalars, when tensorboard is installed (written by train.py)

Every other module names these files through this one, and meta.json is read and written only
here (:class:`RunMeta`). Every file is replaced atomically. The ``checkpoint/`` folder is written
whole under a temporary name and swapped in with renames; if a crash lands between the renames,
``checkpoint.old/`` is still complete and is what ``--resume`` reads.

This module must stay importable without torch: queries read runs too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import EmbcliError
from .io import fsync_dir, make_dir_public, save_npy_atomic, write_json_atomic

TABLE = "embeddings.npy"
NORMS = "norms.npy"  # the table's row norms, saved with it: a cold query need not compute them
COUNTS = "counts.npy"
META = "meta.json"
CONFIG = "config.json"
SNAPSHOTS = "snapshots"
CHECKPOINT = "checkpoint"
# inside checkpoint/
CHECKPOINT_MODEL = "model.safetensors"
CHECKPOINT_OPTIMIZER = "optimizer.safetensors"
CHECKPOINT_RNG = "rng.safetensors"
CHECKPOINT_STATE = "state.json"  # written last by the trainer: its presence marks a complete folder
METRICS = "metrics.jsonl"
TENSORBOARD = "tb"

META_FORMAT = 1


# ---------------------------------------------------------------------------------------------
# Finding and creating runs
# ---------------------------------------------------------------------------------------------


def runs_root() -> Path:
    return Path(os.environ.get("EMBCLI_RUNS", "runs"))


def list_runs(root: Path | None = None) -> list[Path]:
    """Every run under ``root`` (a folder with a meta.json), oldest first."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if (p / META).is_file()), key=lambda p: (p / META).stat().st_mtime)


def find_run(name_or_path: str | None, root: Path | None = None) -> Path:
    """A run by path, by name under the runs folder, or (None) the newest one."""
    root = root or runs_root()
    if name_or_path is None:
        runs = list_runs(root)
        if not runs:
            raise EmbcliError(f"no runs found under {root}/ (train one with: embcli train)")
        return runs[-1]
    for candidate in (Path(name_or_path), root / name_or_path):
        if (candidate / META).is_file():
            return candidate
    if Path(name_or_path).is_dir() or (root / name_or_path).is_dir():
        raise EmbcliError(f"{name_or_path} is not an embcli run (no {META})")
    raise EmbcliError(f"no run {name_or_path!r} (looked for {name_or_path} and {root / name_or_path})")


def new_run_dir(name: str | None, root: Path | None = None) -> Path:
    """A fresh, writable run folder: ``root/name``, or the first free ``root/runN``."""
    root = root or runs_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        if name:
            run = root / name
            if (run / META).exists():
                raise EmbcliError(f"run {run} exists already (resume it with --resume {name}, or pick another --name)")
            run.mkdir(exist_ok=True)
        else:
            i = 1
            while (root / f"run{i}").exists():
                i += 1
            run = root / f"run{i}"
            run.mkdir()
        probe = run / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise EmbcliError(f"cannot write runs to {root}: {exc.strerror}", exit_code=2) from None
    return run


# ---------------------------------------------------------------------------------------------
# The files beside meta.json
# ---------------------------------------------------------------------------------------------


def write_config(run: Path, config: dict) -> None:
    """config.json: the settings the run was made with (a TrainConfig, or an imported model's shape)."""
    write_json_atomic(run / CONFIG, config)


def read_config(run: Path) -> dict | None:
    """config.json as a dict; None when it is missing or not a JSON object."""
    try:
        config = json.loads((run / CONFIG).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return config if isinstance(config, dict) else None


def save_table(run: Path, table) -> None:
    """The table and its row norms, each written atomically (norms last: they describe the table)."""
    import numpy as np

    save_npy_atomic(run / TABLE, table)
    save_npy_atomic(run / NORMS, np.sqrt(np.einsum("ij,ij->i", table, table, dtype=np.float32)))


def save_counts(run: Path, counts) -> None:
    save_npy_atomic(run / COUNTS, counts)


# ---------------------------------------------------------------------------------------------
# Snapshots: the table at step 0, 10, 30, 100, 300, 1000, ...
# ---------------------------------------------------------------------------------------------


def is_snapshot_step(step: int) -> bool:
    """0, and 1 or 3 times a power of ten from 10 on: even spacing on a log-scale of steps."""
    if step == 0:
        return True
    if step < 10:
        return False
    while step % 10 == 0:
        step //= 10
    return step in (1, 3)


def snapshot_name(step: int) -> str:
    return f"step_{step:08d}.npy"


def save_snapshot(run: Path, step: int, table) -> None:
    (run / SNAPSHOTS).mkdir(exist_ok=True)
    save_npy_atomic(run / SNAPSHOTS / snapshot_name(step), table)


def list_snapshots(run: Path) -> list[tuple[int, Path]]:
    """(step, file) of every snapshot, in step order."""
    folder = run / SNAPSHOTS
    if not folder.is_dir():
        return []
    found = []
    for f in folder.glob("step_*.npy"):
        try:
            found.append((int(f.stem.split("_")[1]), f))
        except ValueError:
            continue
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# The checkpoint folder
# ---------------------------------------------------------------------------------------------


def write_checkpoint_dir(run: Path, write_files) -> None:
    """Write the resume state into a fresh folder, then swap it in.

    ``write_files(folder)`` writes everything; only after it returns is the old checkpoint moved
    aside, the new one renamed into place and the old one deleted.
    """
    final, old = run / CHECKPOINT, run / (CHECKPOINT + ".old")
    try:
        work = Path(tempfile.mkdtemp(prefix=".checkpoint-", dir=run))
        make_dir_public(work)
    except OSError as exc:
        raise EmbcliError(f"cannot save a checkpoint in {run}: {exc.strerror}", exit_code=1) from None
    try:
        write_files(work)
        for f in work.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(work)
        if final.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
        os.replace(work, final)
        fsync_dir(run)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise EmbcliError(f"cannot save a checkpoint in {run}: {exc.strerror}; the previous one is intact",
                          exit_code=1) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def checkpoint_dir(run: Path) -> Path:
    """The complete resume state: ``checkpoint/``, or ``checkpoint.old/`` if a swap was cut short."""
    for name in (CHECKPOINT, CHECKPOINT + ".old"):
        folder = run / name
        if (folder / CHECKPOINT_STATE).is_file():
            return folder
    raise EmbcliError(f"{run} has no checkpoint to resume from")


# ---------------------------------------------------------------------------------------------
# metrics.jsonl: the training log
# ---------------------------------------------------------------------------------------------


class MetricsLog:
    """``metrics.jsonl``, written while training: one JSON object per line, flushed as it is written,
    so ``tail -f``, pandas (``read_json(path, lines=True)``) and a crashed run all see every step so far.

    A record is what the trainer measured at one step: ``step``, ``tokens``, ``train_loss`` and
    ``train_loss_kind`` (the config's loss: ``sampled`` is an estimate, ``fused`` and ``plain`` the
    exact softmax), ``val_loss`` when validation ran, ``lr`` (per parameter group), ``tokens_per_s``
    (this session's), ``elapsed_s`` (training time summed over sessions) and ``time`` (Unix time).
    A resumed run appends: :func:`read_metrics` lets the later session's records win.

    Logging never stops training: if a line cannot be written (a full disk), ``error`` says why and
    nothing more is written.
    """

    def __init__(self, run: Path):
        self.path = run / METRICS
        self.error: str | None = None
        self._fh = None
        try:
            self._fh = open(self.path, "a+b")
            self._fh.seek(0, os.SEEK_END)
            if self._fh.tell():  # a crash may have cut the last line short: start on a line of our own
                self._fh.seek(-1, os.SEEK_END)
                if self._fh.read(1) != b"\n":
                    self._fh.write(b"\n")
        except OSError as exc:
            self._fail(exc)

    def write(self, record: dict) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write((json.dumps(record, separators=(", ", ": ")) + "\n").encode())
            self._fh.flush()
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.error = f"cannot write {self.path}: {exc.strerror}; training goes on without it"
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None


def read_metrics(run: Path) -> list[dict]:
    """The records of metrics.jsonl in step order, [] when there is none.

    A step's record (one with ``train_loss``) at or below the step before it means a resumed
    session started over from its checkpoint: the earlier session's records from that step on are
    dropped, as the run itself dropped them. A record without ``train_loss`` (a validation with no
    step of its own, at the end of a session) is merged into its step's. A line that is not a JSON
    object (cut short by a crash) is skipped.
    """
    try:
        lines = (run / METRICS).read_bytes().splitlines()
    except OSError:
        return []
    records: list[dict] = []
    for line in lines:
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            continue
        step = record["step"]
        if "train_loss" not in record and records and records[-1]["step"] == step:
            records[-1] = {**records[-1], **record}
            continue
        while records and records[-1]["step"] >= step:
            records.pop()
        records.append(record)
    return records


def metrics_history(run: Path) -> dict | None:
    """The losses of metrics.jsonl as meta.json's history ({"train"|"val": [[step, tokens, loss], ...]});
    None when the run has no metrics file (runs made before it existed)."""
    records = read_metrics(run)
    if not records:
        return None
    return {kind: [[r["step"], r.get("tokens"), r[f"{kind}_loss"]] for r in records
                   if isinstance(r.get(f"{kind}_loss"), (int, float))] for kind in ("train", "val")}


# ---------------------------------------------------------------------------------------------
# meta.json
# ---------------------------------------------------------------------------------------------


def model_info(parameters: int, rows: int, dim: int, tied: bool) -> dict:
    """The "model" record of meta.json: parameter counts and the token table's share of them.

    One description for a built model (train.py), a config not yet built (config.py) and an
    imported Hugging Face model (export.py).
    """
    table = rows * dim
    return {"parameters": parameters, "table_parameters": table, "table_share": table / parameters,
            "rows": rows, "dim": dim, "tied": tied}


@dataclass
class RunMeta:
    """What meta.json holds: how far a run got and what it was made from.

    The fields are meta.json's keys, in the file's order. Reading is tolerant: a key an older or
    partial file lacks takes its default (None where nothing is known), and a key this version does
    not know is kept in ``extra`` and written back. A field that is None is left out of the file,
    except the ones every run has (format, status, step, tokens_seen) and a training run's losses,
    which are null until first measured.

    Code that treats the record as the JSON object (printing it, ``--json``) may read it by key:
    ``meta.get("model")``, ``meta["history"]``, ``"corpus_path" in meta``.
    """

    format: int = META_FORMAT
    status: str | None = None  # running, finished, interrupted, imported
    source: str | None = None  # an imported run: the model it came from
    step: int | None = None
    tokens_seen: int | None = None
    seconds: float | None = None  # training time, summed over sessions
    train_loss: float | None = None  # the last step's (a sampled-softmax estimate when loss == "sampled")
    val_loss: float | None = None  # the last validation's, always the full softmax
    counts_known: bool = True  # False: no training counts (an imported table); queries use every row
    model: dict | None = None  # model_info()
    device: str | None = None
    world_size: int | None = None
    versions: dict | None = None
    loss: str | None = None  # the training loss: fused, plain or sampled
    corpus: dict | None = None  # the prepared corpus's manifest (data.py)
    corpus_path: str | None = None  # where the prepared corpus lies: --resume reopens it from there
    history: dict = field(default_factory=lambda: {"train": [], "val": []})  # [step, tokens, loss] rows
    extra: dict = field(default_factory=dict)  # keys this version does not know, kept as read

    _ALWAYS = ("format", "status", "step", "tokens_seen")

    @classmethod
    def from_json(cls, obj: dict) -> RunMeta:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in obj.items() if k in known},
                   extra={k: v for k, v in obj.items() if k not in known})

    def to_json(self) -> dict:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra":
                out.update(value)
            elif f.name == "counts_known":
                if not value:
                    out[f.name] = False
            elif value is not None or f.name in self._ALWAYS or self._is_training_loss(f.name):
                out[f.name] = value
        return out

    def _is_training_loss(self, name: str) -> bool:
        return name in ("train_loss", "val_loss") and self.corpus is not None

    @classmethod
    def read(cls, run: Path) -> RunMeta:
        try:
            obj = json.loads((run / META).read_text())
        except FileNotFoundError:
            raise EmbcliError(f"{run} is not an embcli run (no {META})") from None
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            raise EmbcliError(f"{run}/{META} is damaged (not valid JSON)") from None
        if not isinstance(obj, dict):
            raise EmbcliError(f"{run}/{META} is damaged (not a JSON object)")
        return cls.from_json(obj)

    def write(self, run: Path) -> None:
        write_json_atomic(run / META, self.to_json())

    # read by meta.json key, as the JSON object
    def get(self, key: str, default=None):
        return self.to_json().get(key, default)

    def __getitem__(self, key: str):
        return self.to_json()[key]

    def __contains__(self, key: str) -> bool:
        return key in self.to_json()


def read_meta(run: Path) -> RunMeta:
    return RunMeta.read(run)


def write_meta(run: Path, meta: RunMeta) -> None:
    meta.write(run)
