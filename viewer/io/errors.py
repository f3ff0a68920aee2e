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

#: The keyword arguments of the loader's entry points that are the caller's own functions.
CALLBACKS = ("progress", "cancel", "first_slice", "on_slices")


class _CallerRaised(Exception):
    """Carries an exception raised by a caller's callback out through the loader, so that it is not
    taken for a defect of the files; ``owner`` is the entry point call that wrapped the callback."""

    def __init__(self, original: Exception, owner: object) -> None:
        super().__init__(original)
        self.original = original
        self.owner = owner


def _guarded(callback: Callable[..., Any], owner: object) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        try:
            return callback(*args)
        except (Cancelled, _CallerRaised):
            raise  # a cancel is a cancel; an outer call's callback is that call's to unwrap
        except Exception as exc:  # noqa: BLE001 - handed back to the caller unchanged, see reasons_not_crashes
            raise _CallerRaised(exc, owner) from exc
    return call


def reasons_not_crashes(func: _F) -> _F:
    """Decorator for the loader's entry points: any exception a file provokes (pydicom's lazy
    NotImplementedError for an unknown VR, a TypeError deep in a decoder, MemoryError ...) becomes a
    :class:`LoadError` that says what happened, so one file ends its stack, never the folder or the app.
    LoadError and Cancelled (a cancel is not a defect) pass unchanged.

    The caller's callbacks (:data:`CALLBACKS`, passed by keyword) are not the files: what one of them
    raises reaches the caller as it was raised (its own bug stays its bug, a Cancelled stays a cancel).
    """
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        owner = object()
        for name in CALLBACKS:
            callback = kwargs.get(name)
            if callback is not None:
                kwargs[name] = _guarded(callback, owner)
        try:
            return func(*args, **kwargs)
        except _CallerRaised as exc:
            if exc.owner is not owner:
                raise
            original = exc.original
        except (LoadError, Cancelled):
            raise
        except MemoryError as exc:
            raise LoadError("not enough memory to load this series (the file states sizes it cannot "
                            "hold, or the machine is short of memory)") from exc
        except Exception as exc:  # noqa: BLE001 - the point of this decorator
            text = " ".join(str(exc).split())[:300]
            raise LoadError(f"cannot be loaded: {type(exc).__name__}: {text}") from exc
        # Raised outside the handler: the caller's exception keeps its own traceback and context.
        raise original
    return wrapper  # type: ignore[return-value]
