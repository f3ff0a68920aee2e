"""Errors raised by the loading side of ``viewer.io``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from viewer.core.jobs import Cancelled


class LoadError(Exception):
    """A series or file cannot be turned into a :class:`~viewer.core.volume.Volume`.

    The message always names the file (when there is one) and either the missing decoder (with the
    package that provides it) or the defect found in the file.
    """


class LoadCancelled(LoadError, Cancelled):
    """The caller's ``cancel()`` returned True; nothing is returned."""


_F = TypeVar("_F", bound=Callable[..., Any])


def reasons_not_crashes(func: _F) -> _F:
    """Decorator for the loader's entry points: any exception a file provokes (pydicom's lazy
    NotImplementedError for an unknown VR, a TypeError deep in a decoder, MemoryError ...) becomes a
    :class:`LoadError` that says what happened, so one file ends its stack, never the folder or the app.
    LoadError and Cancelled (a cancel is not a defect) pass unchanged."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (LoadError, Cancelled):
            raise
        except MemoryError as exc:
            raise LoadError("not enough memory to load this series (the file states sizes it cannot "
                            "hold, or the machine is short of memory)") from exc
        except Exception as exc:  # noqa: BLE001 - the point of this decorator
            text = " ".join(str(exc).split())[:300]
            raise LoadError(f"cannot be loaded: {type(exc).__name__}: {text}") from exc
    return wrapper  # type: ignore[return-value]
