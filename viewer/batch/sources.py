"""What a batch job runs on: SOURCE arguments -> scanned series (:class:`Unit`, one task each).

A SOURCE is a folder (searched recursively), a DICOM file, a DICOMDIR, or a text file listing such paths
one per line (blank lines and lines starting with ``#`` ignored; relative paths are relative to the list
file's folder). Scanning uses the project's scanner and its SQLite header index
(:func:`viewer.io.series.find_stacks` with ``index``), so a re-run or a resumed job reads no header twice.

PACS sources (``dimse://AE@host:port``, DICOMweb ``http(s)://`` URLs) are refused with a clear message
until the PACS client lands on main.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from viewer.io.headers import HeaderRecord

PACS_PREFIXES = ("dimse://", "http://", "https://")
# A path list is a small text file; a DICOM file has "DICM" at byte 128 (PS3.10 7.1).
_LIST_MAX_BYTES = 64 * 1024 * 1024


class SourceError(ValueError):
    """A SOURCE argument that cannot be used; the message names it and says why."""


@dataclass
class Unit:
    """One series to run: the unit of work of a batch job.

    ``key`` identifies it across runs (``--resume``): the SeriesInstanceUID when it names exactly one
    stack of the scan, else the UID (or ``nouid``) and a hash of the stack's sorted file paths.
    """

    key: str
    series_uid: str
    study_uid: str
    modality: str
    description: str
    files: list[str]
    records: list[HeaderRecord] = field(default_factory=list, repr=False)
    warnings: list[str] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return os.path.dirname(self.files[0]) if self.files else ""


@dataclass
class Scan:
    """The units found, plus the files that are not loadable images (path, reason), for the summary."""

    units: list[Unit]
    bad_files: list[tuple[str, str]]
    files_total: int
    headers_read: int
    warnings: list[str]


def expand_sources(sources: Sequence[str]) -> list[str]:
    """The paths named by ``sources``, path-list files replaced by the paths they list.

    Raises
    ------
    SourceError
        A PACS source (not yet supported), or a path list naming nothing.
    """
    out: list[str] = []
    for s in sources:
        if s.lower().startswith(PACS_PREFIXES):
            raise SourceError(f"{s}: PACS sources (dimse://, DICOMweb) are not supported yet by batch infer: the "
                              "PACS client is not on this branch; retrieve the studies into a folder first "
                              "(python -m viewer pacs get ...) and give the folder")
        if os.path.isfile(s) and _is_path_list(s):
            listed = read_path_list(s)
            if not listed:
                raise SourceError(f"{s}: the path list names no path")
            out.extend(listed)
        else:
            out.append(os.path.abspath(s))
    return out


def _is_path_list(path: str) -> bool:
    try:
        if os.path.getsize(path) > _LIST_MAX_BYTES:
            return False
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return False
    if b"\0" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), None)
    if first is None:
        return False
    base = os.path.dirname(os.path.abspath(path))
    return os.path.exists(os.path.join(base, first))


def read_path_list(path: str) -> list[str]:
    """The paths a path-list file names (absolute; relative ones resolved against the file's folder)."""
    base = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as fh:
        return [os.path.abspath(os.path.join(base, ln.strip())) for ln in fh
                if ln.strip() and not ln.lstrip().startswith("#")]


def scan_sources(sources: Sequence[str], *, index: Any = True,
                 progress: Callable[[int, int], None] | None = None) -> Scan:
    """Scan ``sources`` (see module doc) into units, with the header index ``index`` (True = the default
    cache file; see :func:`viewer.io.series.find_stacks`)."""
    from viewer.io.series import find_stacks

    paths = expand_sources(sources)
    result = find_stacks(paths, index=index, progress=progress)
    per_uid: dict[str, int] = {}
    for s in result.stacks:
        per_uid[s.series_uid] = per_uid.get(s.series_uid, 0) + 1
    units = []
    for s in result.stacks:
        unique = bool(s.series_uid) and per_uid[s.series_uid] == 1
        units.append(Unit(key=s.series_uid if unique else unit_key(s.series_uid, s.files), series_uid=s.series_uid,
                          study_uid=s.study_uid, modality=s.modality, description=s.description,
                          files=list(s.files), records=list(s.records), warnings=list(s.warnings)))
    return Scan(units, list(result.bad_files), result.files_total, result.headers_read, list(result.warnings))


def unit_key(series_uid: str, files: Sequence[str]) -> str:
    """The key of a stack whose SeriesInstanceUID is empty or shared with other stacks."""
    digest = hashlib.sha1("\n".join(sorted(files)).encode("utf-8")).hexdigest()[:16]
    return f"{series_uid or 'nouid'}#{digest}"
