"""Writing an output file without ever destroying data.

:func:`write_atomically` writes through a temporary file in the target's own folder, fsyncs it, and
renames it over the target (``os.replace``: atomic on one filesystem), then fsyncs the folder. A write
that fails (full disk, exception, kill) leaves any earlier file untouched and no partial file behind.
Before writing it refuses, with a sentence, a folder that does not exist, a target that exists (unless
``overwrite``), and a target that is one of the ``protected`` files (the label store, the scan index, the
series' own DICOM files): an export must never be written over its own input.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class OutputRefused(Exception):
    """The output path was refused before anything was written; the message says why and what to do."""


# Temporary files of unfinished writes start with this (hidden; a reader of the folder skips them).
PARTIAL_PREFIX = ".partial-"


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output(path: str | os.PathLike[str], *, overwrite: bool = False,
                 protected: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """``path`` as a Path when it may be written; :class:`OutputRefused` with the reason otherwise."""
    out = Path(path)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise OutputRefused(f"cannot write {out}: the folder {folder} does not exist (create it first)")
    if out.is_dir():
        raise OutputRefused(f"cannot write {out}: it is a folder; give a file name")
    for p in protected:
        for candidate in (Path(p), Path(str(p) + "-wal"), Path(str(p) + "-shm"), Path(str(p) + "-journal")):
            if (out.exists() or candidate.exists()) and _same(out, candidate):
                raise OutputRefused(f"refusing to write {out}: it is {_what(candidate, p)}, which the "
                                    "export would destroy; choose another file name")
    if out.exists() and not overwrite:
        raise OutputRefused(f"{out} already exists; use --force to replace it")
    return out


def _what(candidate: Path, p: str | os.PathLike[str]) -> str:
    return "an input of this export" if str(candidate) == str(p) else f"a part of {p}"


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], T], *, overwrite: bool = True,
                     protected: Iterable[str | os.PathLike[str]] = (), mode: int | None = None) -> T:
    """Call ``write(tmp)`` to write a temporary file next to ``path``, then make it ``path`` atomically.

    Parameters
    ----------
    path
        The target file.
    write
        Writes the whole content to the path it is given (any writer that takes a file name: numpy,
        pydicom, nibabel, ``open``); its return value is returned.
    overwrite
        False: an existing ``path`` is refused (:class:`OutputRefused`).
    protected
        Files that must never be the target (checked through links, with their -wal/-shm/-journal).
    mode
        Permission bits of the new file (e.g. 0o600 for files holding patient data); default: as
        ``open`` would create it (0o666 minus the umask).
    """
    out = check_output(path, overwrite=overwrite, protected=protected)
    # The temporary name ends with the target's name: writers that choose the format by extension
    # (nibabel's .nii.gz) write the right one.
    fd, tmp_name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=f"-{out.name}", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        os.close(fd)
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        else:
            os.chmod(tmp, mode)
        result = write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(out.parent)
    return result


def create_private(path: str | os.PathLike[str]) -> None:
    """Create ``path`` empty and readable by its owner only (0600) unless it exists (left as it is):
    for the files that hold patient data (scan index, label store), before SQLite opens them (SQLite gives
    their -wal/-shm files the same mode). OSError when it cannot be created."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); where folders cannot be opened (Windows) there is nothing to do."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
