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

from .errors import EmbcliError, clip
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

META_FORMAT = 1


# ---------------------------------------------------------------------------------------------
# Finding and creating runs
# ---------------------------------------------------------------------------------------------


def runs_root() -> Path:
    return Path(os.environ.get("EMBCLI_RUNS", "runs"))


def runs_folder(root: Path | None = None) -> Path:
    """The runs folder: ``root``, else $EMBCLI_RUNS, else ./runs; it need not exist yet, but
    something there that is not a folder is an error."""
    root = Path(root) if root is not None else runs_root()
    if root.exists() and not root.is_dir():
        raise EmbcliError(f"the runs folder {root} is not a folder (it comes from --runs-dir or EMBCLI_RUNS)")
    return root


def refuse_run_files(path: Path) -> None:
    """Refuse a write to ``path`` when it lies in a run folder — any run's, however the path is
    spelled (symlinks and ``..`` resolved): a run's files are written by embcli alone."""
    real = Path(os.path.realpath(path))
    for folder in (real, *real.parents):
        if (folder / META).is_file():
            raise EmbcliError(f"{path} is in the run folder {folder}: a run's files are embcli's own; "
                              "write somewhere else")


def list_runs(root: Path | None = None) -> list[Path]:
    """Every run under ``root`` (a folder with a meta.json), oldest first."""
    root = runs_folder(root)
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if (p / META).is_file()), key=lambda p: (p / META).stat().st_mtime)


def find_run(name_or_path: str | None, root: Path | None = None) -> Path:
    """A run by path, by name under the runs folder, or (None) the newest one."""
    root = runs_folder(root)
    if name_or_path is None:
        runs = list_runs(root)
        if not runs:
            raise EmbcliError(f"no runs found under {root}/ (train one with: embcli train)")
        return runs[-1]
    for candidate in (Path(name_or_path), root / name_or_path):
        if _exists(candidate / META, Path.is_file):
            return candidate
    if _exists(Path(name_or_path), Path.is_dir) or _exists(root / name_or_path, Path.is_dir):
        raise EmbcliError(f"{clip(name_or_path)} is not an embcli run (no {META})")
    raise EmbcliError(f"no run {clip(name_or_path)!r} (looked for {clip(name_or_path)} and {root}/{clip(name_or_path)})")


def _exists(path: Path, test) -> bool:
    """``test(path)`` (is_file, is_dir), False for a name the file system cannot even look up (too long)."""
    try:
        return test(path)
    except OSError:
        return False


def new_run_dir(name: str | None, root: Path | None = None) -> Path:
    """A fresh, writable run folder: ``root/name``, or the first free ``root/runN``."""
    root = runs_folder(root)
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
        problem = shape_problem(obj)
        if problem:
            raise EmbcliError(f"{run}/{META} is damaged ({problem})")
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


# What each key of meta.json must hold when present (null is allowed where the field may be None).
_INT, _NUMBER, _TEXT, _OBJECT = (int,), (int, float), (str,), (dict,)
META_SHAPE = {
    "format": (_INT, "a whole number", False), "status": (_TEXT, "text", True), "source": (_TEXT, "text", True),
    "step": (_INT, "a whole number", True), "tokens_seen": (_INT, "a whole number", True),
    "seconds": (_NUMBER, "a number", True), "train_loss": (_NUMBER, "a number", True),
    "val_loss": (_NUMBER, "a number", True), "counts_known": ((bool,), "true or false", False),
    "model": (_OBJECT, "an object", True), "device": (_TEXT, "text", True),
    "world_size": (_INT, "a whole number", True), "versions": (_OBJECT, "an object", True),
    "loss": (_TEXT, "text", True), "corpus": (_OBJECT, "an object", True), "corpus_path": (_TEXT, "text", True),
    "history": (_OBJECT, "an object", False),
}
MODEL_SHAPE = {"parameters": _INT, "table_parameters": _INT, "table_share": _NUMBER, "rows": _INT, "dim": _INT,
               "tied": (bool,)}


def _is(value, types: tuple) -> bool:
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def shape_problem(obj) -> str | None:
    """What is wrong with the shape of a parsed meta.json, or None: every reader (queries, ``runs``,
    ``--resume``) meets one clear line instead of a traceback deep in its own code."""
    if not isinstance(obj, dict):
        return f"not a JSON object but {type(obj).__name__}"
    for key, (types, what, nullable) in META_SHAPE.items():
        value = obj.get(key)
        if key in obj and not (value is None and nullable) and not _is(value, types):
            return f"{key} should be {what}, not {json.dumps(value)[:40]}"
    for key, types in MODEL_SHAPE.items():
        model = obj.get("model") or {}
        if key not in model or not _is(model[key], types):
            if model:
                return f"model.{key} is missing or of the wrong kind"
    for part in ("train", "val"):
        rows = obj.get("history", {}).get(part, [])
        if not isinstance(rows, list) or not all(
                isinstance(r, list) and len(r) == 3 and all(_is(x, _NUMBER) for x in r) for r in rows):
            return f"history.{part} should be rows of [step, tokens, loss]"
    return None


def read_meta(run: Path) -> RunMeta:
    return RunMeta.read(run)


def write_meta(run: Path, meta: RunMeta) -> None:
    meta.write(run)
