"""What a batch job runs on: SOURCE arguments -> scanned series (:class:`Unit`, one task each).

A SOURCE is a folder (searched recursively), a DICOM file, a DICOMDIR, or a text file listing such paths
one per line (blank lines and lines starting with ``#`` ignored; relative paths are relative to the list
file's folder). Scanning uses the project's scanner and its SQLite header index
(:func:`viewer.io.series.find_stacks` with ``index``), so a re-run or a resumed job reads no header twice.

A PACS node (``dimse://AE@host:port`` or a DICOMweb ``http(s)://`` base URL) with a query
(``--query 'modality=CT study-date=20240101-20241231'``) is searched at series level with the project's
PACS client (:mod:`viewer.io.pacs`), and the matching series are retrieved into its local store (C-GET or
C-MOVE; WADO-RS), which skips what is already there; the retrieved folders are then scanned like any
folder. A series that cannot be retrieved is listed with its reason among the files left out. (``batch
infer`` streams PACS series into the job instead, :mod:`viewer.batch.pacs_feed`.)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from viewer.core.records import HeaderRecord, records_from_columns, records_to_columns

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

    # A unit travels to a worker with each task (viewer.batch.work.ship): its header records in columns.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["records"] = records_to_columns(self.records)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["records"] = records_from_columns(state["records"])
        self.__dict__.update(state)


@dataclass
class Scan:
    """The units found, plus the files that are not loadable images (path, reason), for the summary."""

    units: list[Unit]
    bad_files: list[tuple[str, str]]
    files_total: int
    headers_read: int
    warnings: list[str]


#: --query keys -> viewer.io.pacs.query.Query fields
QUERY_KEYS = {"modality": "modality", "study-date": "study_date", "patient-id": "patient_id",
              "patient-name": "patient_name", "accession": "accession", "description": "description",
              "study-uid": "study_uid"}


@dataclass(frozen=True)
class PacsOptions:
    """How PACS sources are searched and retrieved: ``query`` text (``key=value`` pairs), our AE title, the
    port of our storage SCP for C-MOVE, the local store folder (None: the default store), and for DIMSE
    nodes ``retrieve``: ``auto`` (C-GET when offered, else C-MOVE), ``get`` or ``move`` (None: the node's
    setting, as ``pacs get --method``)."""

    query: str = ""
    ae_title: str = "DICOMVIEWER"
    port: int = 11112
    store: str | None = None
    retrieve: str | None = None


def parse_query(text: str) -> dict[str, str]:
    """``'modality=CT study-date=20240101-20241231'`` -> Query fields; SourceError names a bad pair."""
    import shlex

    fields: dict[str, str] = {}
    for pair in shlex.split(text):
        key, sep, value = pair.partition("=")
        if not sep or key.strip().lower() not in QUERY_KEYS:
            raise SourceError(f"--query {pair!r}: use key=value with keys {', '.join(QUERY_KEYS)}")
        fields[QUERY_KEYS[key.strip().lower()]] = value.strip()
    return fields


def retrieve_from_pacs(source: str, pacs: PacsOptions, bad: list[tuple[str, str]]) -> list[str]:
    """Search ``source`` (a PACS node) at series level with ``pacs.query``, retrieve the matches into the
    local store and return their folders; series that fail are appended to ``bad`` with the reason."""
    from viewer.io.pacs import DimseNode, PacsError, parse_node
    from viewer.io.pacs import dimse, web
    from viewer.io.pacs.query import Query
    from viewer.io.pacs.retrieve import retrieve
    from viewer.io.pacs.store import LocalStore

    if not pacs.query.strip():
        raise SourceError(f"{source}: a PACS source needs --query (e.g. 'modality=CT study-date=20240101-20241231')")
    try:
        node = parse_node(source)
        q = Query(level="series", **parse_query(pacs.query))
        matches = list(dimse.find(node, q, pacs.ae_title) if isinstance(node, DimseNode) else web.find(node, q))
    except PacsError as exc:
        raise SourceError(f"{source}: {exc}") from None
    by_study: dict[str, dict[str, str]] = {}
    for m in matches:
        if m.series_uid and (not q.modality or m.modality.upper() == q.modality.upper()):
            by_study.setdefault(m.study_uid, {})[m.series_uid] = m.modality
    store = LocalStore(pacs.store) if pacs.store else LocalStore()
    folders: list[str] = []
    for study_uid, series in by_study.items():
        try:
            result = retrieve(node, study_uid, list(series), ae_title=pacs.ae_title, port=pacs.port, store=store,
                              method=pacs.retrieve, modalities=series)
        except PacsError as exc:
            bad.append((f"{source} study {study_uid}", f"not retrieved: {exc}"))
            continue
        for sr in result.series:
            if sr.error or not sr.complete:
                bad.append((f"{source} series {sr.series_uid}", f"retrieved {sr.stored + sr.skipped} of {sr.total} "
                            f"instances: {sr.error or '; '.join(sr.problems) or 'incomplete'}"))
            if sr.stored + sr.skipped:
                folders.append(str(sr.folder))
    return folders


def expand_sources(sources: Sequence[str], pacs: PacsOptions | None = None,
                   bad: list[tuple[str, str]] | None = None) -> list[str]:
    """The paths named by ``sources``: path-list files replaced by the paths they list, PACS nodes by the
    folders of the series retrieved from them (see module doc; failures appended to ``bad``).

    Raises
    ------
    SourceError
        A PACS source without a query or that cannot be searched, or a path list naming nothing.
    """
    out: list[str] = []
    for s in sources:
        if s.lower().startswith(PACS_PREFIXES):
            out.extend(retrieve_from_pacs(s, pacs or PacsOptions(), bad if bad is not None else []))
            continue
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


def scan_sources(sources: Sequence[str], *, index: Any = True, pacs: PacsOptions | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Scan:
    """Scan ``sources`` (see module doc) into units, with the header index ``index`` (True = the default
    cache file; see :func:`viewer.io.series.find_stacks`)."""
    not_retrieved: list[tuple[str, str]] = []
    paths = expand_sources(sources, pacs, not_retrieved)
    if not paths:
        return Scan([], not_retrieved, 0, 0, [])
    scan = units_of(paths, index=index, progress=progress)
    scan.bad_files[:0] = not_retrieved
    return scan


def units_of(paths: Sequence[str], *, index: Any = True, progress: Callable[[int, int], None] | None = None) -> Scan:
    """The units of local ``paths`` (folders, files, DICOMDIRs), scanned with the header index ``index``."""
    from viewer.io.series import find_stacks

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
