"""Finding loadable stacks in files and folders.

CONTRACT (other modules rely on it; keep it when this module grows):
``find_stacks(paths, *, progress=None, cancel=None) -> ScanResult`` where ``ScanResult.stacks`` is a list
of ``Stack`` (``series_uid``, ``files`` [str paths], ``modality``, ``description``, ``split_reason``,
``warnings``) and ``ScanResult.bad_files`` a list of (path, reason). The loader sorts files itself.

This first version groups by SeriesInstanceUID and orientation only; the full splitter replaces it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


@dataclass
class Stack:
    series_uid: str
    files: list[str]
    modality: str = ""
    description: str = ""
    split_reason: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class ScanResult:
    stacks: list[Stack] = field(default_factory=list)
    bad_files: list[tuple[str, str]] = field(default_factory=list)


def iter_files(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> Iterable[str]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for root, _dirs, files in os.walk(p):
                for name in sorted(files):
                    yield os.path.join(root, name)
        else:
            yield str(p)


def find_stacks(paths, *, progress: Progress | None = None, cancel: Cancel | None = None) -> ScanResult:
    files = list(iter_files(paths))
    groups: dict[tuple, Stack] = {}
    result = ScanResult()
    for n, path in enumerate(files):
        if cancel is not None and cancel():
            break
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, never raised
            result.bad_files.append((path, f"not readable as DICOM: {exc}"))
            continue
        orient = tuple(round(float(v), 4) for v in ds.get("ImageOrientationPatient", []) or [])
        key = (str(ds.get("SeriesInstanceUID", "")), orient)
        stack = groups.get(key)
        if stack is None:
            stack = groups[key] = Stack(series_uid=key[0], files=[], modality=str(ds.get("Modality", "")),
                                        description=str(ds.get("SeriesDescription", "")))
        stack.files.append(path)
        if progress is not None:
            progress(n + 1, len(files))
    result.stacks = list(groups.values())
    return result
