"""The pixel-bearing test files of pydicom's wheel and of pydicom-data (68 + 176 real files)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom


def corpus_files(keep: Callable[[Path, Any], bool] = lambda path, ds: True) -> list[Path]:
    """Files with Rows and Columns, under 20 MB, for which ``keep(path, header_dataset)`` is true."""
    dirs = [Path(pydicom.__file__).parent / "data" / "test_files"]
    try:
        import data_store

        dirs.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    files = []
    for d in dirs:
        for p in sorted(d.rglob("*")):
            if not p.is_file() or p.suffix in (".py", ".txt", ".json", ".gz", ".bz2", ".md", ".pyc", ".zip"):
                continue
            try:
                ds = pydicom.dcmread(p, stop_before_pixels=True, force=True)
            except Exception:  # noqa: BLE001 - not DICOM at all: not part of this corpus
                continue
            if "Rows" in ds and "Columns" in ds and p.stat().st_size < 20_000_000 and keep(p, ds):
                files.append(p)
    return files
