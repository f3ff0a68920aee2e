"""Errors raised by the loading side of ``viewer.io``."""

from __future__ import annotations

from viewer.core.jobs import Cancelled


class LoadError(Exception):
    """A series or file cannot be turned into a :class:`~viewer.core.volume.Volume`.

    The message always names the file (when there is one) and either the missing decoder (with the
    package that provides it) or the defect found in the file.
    """


class LoadCancelled(LoadError, Cancelled):
    """The caller's ``cancel()`` returned True; nothing is returned."""
