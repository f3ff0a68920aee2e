"""DICOM input: finding series (``series``), loading them into a Volume (``load``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from viewer.io.errors import LoadCancelled, LoadError

if TYPE_CHECKING:
    from viewer.core.volume import Volume

__all__ = ["LoadCancelled", "LoadError", "iter_volumes", "load_series", "load_stack"]


def load_series(path_or_paths: Any, **kwargs: Any) -> Volume:
    """See :func:`viewer.io.load.load_series` (imported lazily so ``import viewer.io`` stays cheap)."""
    from viewer.io.load import load_series as _load_series

    return _load_series(path_or_paths, **kwargs)


def load_stack(stack: Any, **kwargs: Any) -> Volume:
    """See :func:`viewer.io.load.load_stack`."""
    from viewer.io.load import load_stack as _load_stack

    return _load_stack(stack, **kwargs)


def iter_volumes(stack: Any, **kwargs: Any) -> Iterator[Volume]:
    """See :func:`viewer.io.load.iter_volumes`: every volume of a (4D) stack, one at a time."""
    from viewer.io.load import iter_volumes as _iter_volumes

    return _iter_volumes(stack, **kwargs)
