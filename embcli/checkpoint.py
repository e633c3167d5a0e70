"""Runs on disk: what a training run leaves behind, written so that a crash never loses a save.

    runs/<name>/
      config.json          the TrainConfig the run was started with
      meta.json            step, tokens seen, losses, versions, the corpus manifest, status
      embeddings.npy       the token table, float32, memory-mapped by every query command
      norms.npy            its row norms (float32), so a cold query skips a pass over the table
      counts.npy           how often each id occurred in the training split
      snapshots/step_N.npy the table at step 0 (pure noise), 10, 30, 100, 300, ...
      checkpoint/          model.safetensors + optimizer.safetensors + state.json, for --resume

Every file is replaced atomically. The ``checkpoint/`` folder is written whole under a temporary
name and swapped in with renames; if a crash lands between the renames, ``checkpoint.old/`` is
still complete and is what ``--resume`` reads.

This module must stay importable without torch: queries read runs too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import EmbcliError
from .io import fsync_dir, make_dir_public, write_json_atomic

TABLE = "embeddings.npy"
NORMS = "norms.npy"  # the table's row norms, saved with it: a cold query need not compute them
COUNTS = "counts.npy"
META = "meta.json"
CONFIG = "config.json"
SNAPSHOTS = "snapshots"
CHECKPOINT = "checkpoint"


def runs_root() -> Path:
    return Path(os.environ.get("EMBCLI_RUNS", "runs"))


def is_snapshot_step(step: int) -> bool:
    if step == 0:
        return True
    if step < 10:
        return False
    while step % 10 == 0:
        step //= 10
    return step in (1, 3)


def snapshot_name(step: int) -> str:
    return f"step_{step:08d}.npy"


def list_snapshots(run: Path) -> list[tuple[int, Path]]:
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


def read_meta(run: Path) -> dict:
    try:
        return json.loads((run / META).read_text())
    except FileNotFoundError:
        raise EmbcliError(f"{run} is not an embcli run (no {META})") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise EmbcliError(f"{run}/{META} is damaged (not valid JSON)") from None


def list_runs(root: Path | None = None) -> list[Path]:
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
        if (folder / "state.json").is_file():
            return folder
    raise EmbcliError(f"{run} has no checkpoint to resume from")


def write_meta(run: Path, meta: dict) -> None:
    write_json_atomic(run / META, meta)


def save_table(run: Path, table) -> None:
    """The table and its row norms, each written atomically (norms last: they describe the table)."""
    import numpy as np

    from .io import save_npy_atomic

    save_npy_atomic(run / TABLE, table)
    save_npy_atomic(run / NORMS, np.sqrt(np.einsum("ij,ij->i", table, table, dtype=np.float32)))
