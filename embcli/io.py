"""Atomic file writes: a temp file in the same folder, flushed, fsynced, then renamed over the
target. A crash at any point leaves either the old file or the new one, never half of either.

Only regular files are replaced. A symlink is followed (the file it points to is replaced and the
link stays, as a shell's ``>`` would do); a device, a FIFO, a socket or a folder at the target is
refused, never replaced. A target that cannot be written (no permission, a read-only file system,
no such folder) is exit code 2 like every other problem with what the user gave; a failure of the
machine while writing (disk full, I/O error) is 1.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import EmbcliError, clip

# The machine failed while writing; any other OSError means the target cannot be written as given.
MACHINE_ERRORS = (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.ENOMEM)


def write_error(path: Path, exc: OSError, also: str = "") -> EmbcliError:
    """One line for a failed write, with the OS's reason, and the exit code for its cause."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return EmbcliError(f"cannot write {clip(str(path), 200)}: {reason}{also}",
                       exit_code=1 if exc.errno in MACHINE_ERRORS else 2)


FILE_KINDS = ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO"),
              (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "folder"))


def regular_target(path: Path) -> Path:
    """The file a write to ``path`` replaces: ``path`` itself, or the file a symlink there points to.

    Refuses anything but a regular file (or nothing yet): a device (``/dev/full``), a FIFO, a
    socket or a folder is never replaced by a file.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode  # follows symlinks: what is really there
    except FileNotFoundError:
        return Path(os.path.realpath(path))  # nothing yet (or a link to nothing yet): created
    except OSError as exc:
        raise write_error(path, exc) from None
    for is_kind, kind in FILE_KINDS:
        if is_kind(mode):
            raise EmbcliError(f"{path} is a {kind}, not a regular file: embcli writes only regular files "
                              f"and never replaces {'a folder' if kind == 'folder' else 'a ' + kind}")
    return Path(os.path.realpath(path))


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temporary path to write; on success it replaces ``path`` (a regular file, or the
    file a symlink points to: :func:`regular_target`) in one rename."""
    shown, path = Path(path), regular_target(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a saved file gets the usual mode
        os.close(fd)
    except OSError as exc:
        raise write_error(shown, exc) from None
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(shown, exc, "; the previous file is untouched") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_dir_public(path: Path) -> None:
    """mkdtemp makes 0700 folders; a run's folders get the usual mode."""
    os.chmod(path, 0o777 & ~_umask())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: Path, obj) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def save_npy_atomic(path: Path, array) -> None:
    with atomic_path(path) as tmp:
        write_npy(tmp, array)


class _PlainWrites:
    """A file that numpy can only ``write()`` to. Given a real file, ``np.save`` calls
    ``ndarray.tofile``, whose error on a full disk ("N requested and M written") carries no errno;
    through ``write()`` a full disk is an OSError that says so (ENOSPC, EFBIG, EDQUOT)."""

    def __init__(self, fh):
        self.write = fh.write


def write_npy(path: Path, array) -> None:
    """``array`` as an .npy file at ``path`` (not atomic: see :func:`save_npy_atomic`)."""
    import numpy as np

    with open(path, "wb") as fh:
        np.save(_PlainWrites(fh), array)


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def cache_root() -> Path:
    env = os.environ.get("EMBCLI_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "embcli"


def os_error_text(exc: BaseException) -> str:
    """What went wrong, in the operating system's words: "No space left on device", never "None"."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class StagedFiles:
    """Several files (and folders) written under temporary names beside their targets, then
    renamed into place together: a failure while writing any of them (a full disk) leaves every
    target as it was.

    ``file(target)`` / ``folder(target)`` give the temporary path to write; :meth:`commit`
    fsyncs and renames them in the order they were staged (a folder replaces the old one through
    ``<target>.old``, removed last); :meth:`discard` deletes them. Used as a context manager it
    discards whatever was not committed.
    """

    def __init__(self):
        self._staged: list[tuple[Path, Path, bool]] = []  # (temporary, target, is a folder)

    def file(self, target: Path) -> Path:
        target = Path(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        self._staged.append((Path(tmp), target, False))
        return Path(tmp)

    def folder(self, target: Path) -> Path:
        target = Path(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        make_dir_public(tmp)
        self._staged.append((tmp, target, True))
        return tmp

    def commit(self) -> None:
        for tmp, _, is_folder in self._staged:
            for f in (tmp.iterdir() if is_folder else [tmp]):
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            if is_folder:
                fsync_dir(tmp)
        old_folders = []
        for tmp, target, is_folder in self._staged:
            if is_folder and target.exists():
                old = target.with_name(target.name + ".old")
                if old.exists():
                    shutil.rmtree(old)
                os.replace(target, old)  # a crash from here to the next rename leaves .old complete
                old_folders.append(old)
            os.replace(tmp, target)
        for parent in {target.parent for _, target, _ in self._staged}:
            fsync_dir(parent)
        self._staged = []
        for old in old_folders:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        for tmp, _, is_folder in self._staged:
            if is_folder:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        self._staged = []

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()
