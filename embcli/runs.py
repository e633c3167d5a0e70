"""Runs on disk: the one owner of a run folder's layout and of its metadata record.

    runs/<name>/
      config.json          the TrainConfig the run was started with
      meta.json            a RunMeta: status, step, tokens seen, losses, versions, the corpus manifest
      embeddings.npy       the token table, float32, memory-mapped by every query command
      norms.npz            its row norms (float32), so a cold query skips a pass over the table,
                           with the identity of the table they were computed from
      counts.npy           how often each id occurred in the training split
      snapshots/step_N.npy the table at step 0 (pure noise), 10, 30, 100, 300, ...
                           (and every snapshot_every steps, when the config sets it)
      checkpoint/          model.safetensors + optimizer.safetensors + rng.safetensors + state.json,
                           for --resume (what goes into them is the trainer's business: train.py)
      metrics.jsonl        one JSON object per training step, appended as training goes (MetricsLog)
      tb/                  TensorBoard scalars, when tensorboard is installed (written by train.py)
      .lock                held by the process writing the run (training it), and naming it

Every other module names these files through this one, and meta.json is read and written only
here (:class:`RunMeta`). Every file is replaced atomically. A save (:func:`save_run_state`) writes
the table, its norms, the checkpoint and meta.json under temporary names first and renames them
into place only when all of them are written, so a full disk leaves the previous save whole. The
``checkpoint/`` folder is swapped in with renames; if a crash lands between the renames,
``checkpoint.old/`` is still complete and is what ``--resume`` reads.

This module must stay importable without torch: queries read runs too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import EmbcliError, clip
from .io import StagedFiles, os_error_text, save_npy_atomic, write_json_atomic, write_npy

TABLE = "embeddings.npy"
NORMS = "norms.npz"  # the table's row norms and the table's identity: a cold query need not compute them
LOCK = ".lock"  # held while a process writes the run; its text says which process
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
    """A run by path, by name under the runs folder, or (None) the newest one that has a table."""
    root = runs_folder(root)
    if name_or_path is None:
        runs = list_runs(root)
        if not runs:
            raise EmbcliError(f"no runs found under {root}/ (train one with: embcli train)")
        with_table = [run for run in runs if (run / TABLE).is_file()]
        if not with_table:
            raise EmbcliError(f"no run under {root}/ has a table yet (the newest, {runs[-1].name}, has not saved one)")
        return with_table[-1]
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


def check_run_name(name: str) -> str:
    """A run's name is one folder name under the runs folder: never a path that leads elsewhere."""
    if (not name or name in (".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name)
            or "\0" in name):
        raise EmbcliError(f"a run name is one folder name under the runs folder (no '/', not '.' or '..'); "
                          f"got {name!r}")
    return name


def _make_run_dir(name: str | None, root: Path | None) -> tuple[Path, bool]:
    """``root/name`` (made if missing), or the first free ``root/runN``; and whether it was made here."""
    root = runs_folder(root)
    if name is not None:
        check_run_name(name)
    try:
        root.mkdir(parents=True, exist_ok=True)
        if name is not None:
            run = root / name
            if (run / META).exists():
                raise _taken(run)
            try:
                run.mkdir()
                created = True
            except FileExistsError:
                created = False
        else:
            i = 1
            while True:  # mkdir, not exists(): two processes starting at once never get the same runN
                run = root / f"run{i}"
                try:
                    run.mkdir()
                    break
                except FileExistsError:
                    i += 1
            created = True
        probe = run / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise EmbcliError(f"cannot write runs to {root}: {os_error_text(exc)}", exit_code=2) from None
    return run, created


def _taken(run: Path) -> EmbcliError:
    """The error for a run name already in use: a live trainer's, or a finished run's."""
    holder = read_lock(run)
    if holder is not None and holder_alive(holder) is not False:
        return EmbcliError(f"{run} is in use: {describe_holder(holder)} is training it; pick another --name")
    return EmbcliError(f"run {run} exists already (resume it with --resume {run.name}, or pick another --name)")


def new_run_dir(name: str | None, root: Path | None = None) -> Path:
    """A fresh, writable run folder: ``root/name``, or the first free ``root/runN``."""
    return _make_run_dir(name, root)[0]


def create_run(name: str | None, root: Path | None = None) -> RunLock:
    """A new run folder, as :func:`new_run_dir`, locked for this process (see :class:`RunLock`)."""
    run, created = _make_run_dir(name, root)
    lock = RunLock.acquire(run, created=created)
    if (run / META).exists():  # a run of this name was made between the look and the lock
        lock.release()
        raise _taken(run)
    clean_leftovers(run)
    return lock


def discard_new_run(lock: RunLock) -> None:
    """Undo a start that failed before the run's first save: no empty or half-made run is left."""
    run = lock.run
    if lock.created:
        shutil.rmtree(run, ignore_errors=True)
    else:  # the folder was there before (empty, or a failed start's): take away only a run's files
        clean_leftovers(run)
        for name in (CONFIG, COUNTS, TABLE, NORMS, META):
            (run / name).unlink(missing_ok=True)
        for name in (SNAPSHOTS, CHECKPOINT, CHECKPOINT + ".old"):
            shutil.rmtree(run / name, ignore_errors=True)
    lock.release()


def clean_leftovers(run: Path) -> None:
    """What saves cut short (kill -9) leave: temporary files and checkpoint folders never renamed
    into place, and a ``checkpoint.old/`` whose successor is complete. Call it only while holding
    the run's lock: another writer's temporary files are not leftovers."""
    for folder in (run, run / SNAPSHOTS):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file():
                path.unlink(missing_ok=True)
            elif path.name.startswith("." + CHECKPOINT + "-") and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
    (run / ".write-test").unlink(missing_ok=True)
    if (run / CHECKPOINT / CHECKPOINT_STATE).is_file():
        shutil.rmtree(run / (CHECKPOINT + ".old"), ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The lock: one writer per run
# ---------------------------------------------------------------------------------------------


def _process_start(pid: int | str) -> str | None:
    """When a process started (Linux's /proc starttime): tells a live pid from a reused one."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass
class RunLock:
    """The run folder's writer lock: an exclusive ``flock`` on ``<run>/.lock``, held for the life
    of the process that trains the run. The kernel lets go of it when that process ends however it
    ends (kill -9 included), so a lock is never left held by nobody. The file names the holder
    (pid, host, start) for the message a second writer gets and for :func:`live_status`.
    """

    run: Path
    fd: int | None
    created: bool = False  # the folder was made for this run (a start that fails removes it)

    @classmethod
    def acquire(cls, run: Path, *, created: bool = False) -> RunLock:
        import fcntl

        path = run / LOCK
        try:
            while True:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise EmbcliError(f"{run} is in use: {describe_holder(read_lock(run))} is training it; "
                                      "wait for it to end or stop it (or pick another --name)") from None
                try:  # a holder that let go removed the file: the one locked may no longer be the path's
                    if os.stat(path).st_ino == os.fstat(fd).st_ino:
                        break
                except FileNotFoundError:
                    pass
                os.close(fd)
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                      "process_start": _process_start("self")}
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(holder) + "\n").encode())
        except OSError as exc:
            raise EmbcliError(f"cannot lock {run}: {os_error_text(exc)}") from None
        return cls(run, fd, created)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.run / LOCK)  # still held here, so no other process is using the file
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def read_lock(run: Path) -> dict | None:
    """Who holds (or last held) the run's lock: {"pid", "host", "since", "process_start"}; None if unknown."""
    try:
        holder = json.loads((run / LOCK).read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def describe_holder(holder: dict | None) -> str:
    if not holder:
        return "another process"
    return f"process {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"


def holder_alive(holder: dict) -> bool | None:
    """Whether the process a lock file names still runs; None when it is on another machine."""
    if holder.get("host") != socket.gethostname():
        return None
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if Path("/proc/self/stat").exists():
        started = _process_start(pid)
        return started is not None and started == holder.get("process_start", started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_status(run: Path, status: str | None) -> str | None:
    """A run's status as it really is: "running" only while a live process holds its lock, else
    "stale" (killed by the OS, kill -9, a machine that went down: nothing is training it)."""
    if status != "running":
        return status
    holder = read_lock(run)
    if holder is None or holder_alive(holder) is False:
        return "stale"
    return status


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


def _row_norms(rows):
    import numpy as np

    return np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float32))


def _stage_table(staged: StagedFiles, run: Path, table) -> None:
    """The table and its norms, staged; the norms record the table file's size and mtime."""
    import numpy as np

    tmp = staged.file(run / TABLE)
    write_npy(tmp, table)
    st = os.stat(tmp)  # a rename keeps both: they are the final file's
    with open(staged.file(run / NORMS), "wb") as fh:
        np.savez(fh, norms=_row_norms(table), table=np.array([st.st_size, st.st_mtime_ns], dtype=np.int64))


def save_table(run: Path, table) -> None:
    """The table and its row norms, written together (the norms bound to this table)."""
    try:
        with StagedFiles() as staged:
            _stage_table(staged, run, table)
            staged.commit()
    except OSError as exc:
        raise EmbcliError(f"cannot write {run / TABLE}: {os_error_text(exc)}", exit_code=1) from None


def load_norms(run: Path, table):
    """The saved row norms of ``run``'s table, or None when there are none or they are not this
    table's: the table file's size or mtime differs from the one they were computed from (a table
    replaced, a save cut between the two files), or a sample of rows disagrees with them."""
    import zipfile

    import numpy as np

    try:
        with np.load(run / NORMS) as saved:
            norms, made_for = saved["norms"], saved["table"]
        st = os.stat(run / TABLE)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if made_for.tolist() != [st.st_size, st.st_mtime_ns] or norms.shape != (len(table),) or norms.dtype != np.float32:
        return None
    sample = np.unique(np.linspace(0, len(table) - 1, num=min(64, len(table))).astype(np.int64))
    if not np.allclose(_row_norms(np.asarray(table[sample], dtype=np.float32)), norms[sample], rtol=1e-5, atol=1e-6):
        return None
    return norms


def save_counts(run: Path, counts) -> None:
    save_npy_atomic(run / COUNTS, counts)


# ---------------------------------------------------------------------------------------------
# Snapshots: the table at step 0, 10, 30, 100, 300, 1000, ...
# ---------------------------------------------------------------------------------------------


def is_snapshot_step(step: int, every: int = 0) -> bool:
    """0, and 1 or 3 times a power of ten from 10 on: even spacing on a log-scale of steps; and with
    ``every`` (the config's ``snapshot_every``), each multiple of it too."""
    if step == 0 or (every > 0 and step % every == 0):
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
    try:
        with StagedFiles() as staged:
            write_files(staged.folder(run / CHECKPOINT))
            staged.commit()
    except OSError as exc:
        raise EmbcliError(f"cannot save a checkpoint in {run}: {os_error_text(exc)}; the previous one is intact",
                          exit_code=1) from None


def save_run_state(run: Path, table, write_checkpoint, meta: RunMeta) -> None:
    """One save of a training run: the table and its norms, the checkpoint folder
    (``write_checkpoint(folder)`` fills it) and meta.json.

    Everything is written under temporary names first; only when all of it is written are the
    files renamed into place (the checkpoint first, meta.json last). A write that fails (a full
    disk, a file-size limit) leaves the previous save as it was, and says which file and why.
    """
    writing = TABLE
    try:
        with StagedFiles() as staged:
            _stage_table(staged, run, table)
            writing = CHECKPOINT
            write_checkpoint(staged.folder(run / CHECKPOINT))
            writing = META
            with open(staged.file(run / META), "w") as fh:
                fh.write(meta.to_text())
            writing = "the saved files into place"
            staged.commit()
    except OSError as exc:
        raise EmbcliError(f"cannot save {run} at step {meta.step} (writing {writing}): {os_error_text(exc)}",
                          exit_code=1) from None


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
    status: str | None = None  # running, finished, interrupted, failed, imported
    error: str | None = None  # a failed run: what stopped it
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

    def to_text(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

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
