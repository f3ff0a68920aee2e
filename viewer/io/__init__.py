"""DICOM input: finding series (``series``), loading them into a Volume (``load``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from viewer.io.errors import LoadCancelled, LoadError

if TYPE_CHECKING:
    from viewer.core.volume import Volume

__all__ = ["LoadCancelled", "LoadError", "load_series", "load_stack"]


def load_series(path_or_paths: Any, **kwargs: Any) -> Volume:
    """See :func:`viewer.io.load.load_series` (imported lazily so ``import viewer.io`` stays cheap)."""
    from viewer.io.load import load_series as _load_series

    return _load_series(path_or_paths, **kwargs)


def load_stack(stack: Any, **kwargs: Any) -> Volume:
    """See :func:`viewer.io.load.load_stack`."""
    from viewer.io.load import load_stack as _load_stack

    return _load_stack(stack, **kwargs)
