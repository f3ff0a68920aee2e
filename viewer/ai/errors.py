"""Exceptions of ``viewer.ai``: each carries a message meant to be shown to a user as is."""

from __future__ import annotations

from pathlib import Path

from viewer.core.jobs import Cancelled as _Cancelled


class ModelError(Exception):
    """A model cannot be used (bad manifest, missing or altered file, runtime cannot start it)."""


class ManifestError(ModelError):
    """``manifest.toml`` (or the ONNX file it describes) is invalid.

    Attributes
    ----------
    field
        Dotted path of the offending field, e.g. ``"preprocess[1].interpolation"`` or ``"sha256"``.
    path
        The file the problem is in (the manifest, or the ONNX file for sha256/name/shape/dtype checks).
    """

    def __init__(self, field: str, problem: str, path: Path | str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.path = Path(path) if path is not None else None
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{where}{field}: {problem}")


# Raised by long-running ai functions when their ``cancel`` callback returned True: the one Cancelled.
Cancelled = _Cancelled
