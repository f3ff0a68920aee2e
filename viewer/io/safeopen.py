"""Open only regular files, decided on the open descriptor.

``os.stat`` then ``open`` leaves a window in which the path can become a FIFO (``open`` then blocks
forever) or a device (``/dev/zero`` reads forever). :func:`open_regular` opens with ``O_NONBLOCK`` (so
opening a FIFO returns at once), checks the descriptor with ``fstat`` and only then clears ``O_NONBLOCK``
and hands out a file object. What it refuses raises :class:`NotRegularFile` (an ``OSError``) naming the
kind of file.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


class NotRegularFile(OSError):
    """The path is a FIFO, socket, device or folder; its text says which."""


def kind_of(mode: int) -> str:
    """'a FIFO (named pipe)', 'a socket', ... for a non-regular ``st_mode``; 'a special file' otherwise."""
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``open(path, "rb")`` for regular files only (symlinks followed); :class:`NotRegularFile` else.

    The returned file's ``name`` is ``path``; ``os.fstat(f.fileno())`` gives its size and mtime.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"not a regular file: {kind_of(st.st_mode)}")
        if flags & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    f.raw.name = os.fspath(path)  # type: ignore[attr-defined]  # FileIO.name is writable; pydicom reads it
    return f
