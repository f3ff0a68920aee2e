"""Finding loadable stacks in files, folders and DICOMDIRs.

CONTRACT (other modules rely on it; keep it when this module grows):
``find_stacks(paths, *, progress=None, cancel=None) -> ScanResult`` where ``ScanResult.stacks`` is a list
of ``Stack`` (``series_uid``, ``files`` [str paths], ``modality``, ``description``, ``split_reason``,
``warnings``) and ``ScanResult.bad_files`` a list of (path, reason). The loader sorts files itself.

Beyond the contract:

- ``find_stacks(..., index=None | True | path | Index)``: with an index (True = the default cache
  file, see :mod:`viewer.io.index`) only new or changed files (path, size, mtime_ns) are read; files
  gone from disk leave the index. ``workers``: processes for header reading (default 1; see the benchmark).
- ``Stack.records``: the :class:`~viewer.core.records.HeaderRecord` of each file, which
  :func:`viewer.io.load.load_stack` hands to the loader so that headers are not read twice.
- ``Stack`` also carries patient/study/series text (``patient_id``, ``patient_name``, ``study_uid``,
  ``study_date``, ``study_description``, ``series_number``, ``series_date``), ``rows``, ``columns``,
  ``frames`` (total), ``image_type``, ``split_label`` (what tells a split stack from its siblings) and
  ``volumes`` (of a 4D stack). Stacks are ordered patient -> study -> series number -> split.
- ``ScanResult.non_image``: (path, reason) for valid DICOM without pixel data (SR, RT, DICOMDIR ...):
  not bad, not loadable. ``cancelled``, ``files_total``, ``headers_read`` (files parsed in this call;
  the rest came from the index), ``warnings``, and ``tree()`` for the patient -> study -> series view.

Grouping: by SeriesInstanceUID; files with an EMPTY SeriesInstanceUID group by folder, Modality,
SeriesNumber, SeriesDescription and FrameOfReferenceUID. Each series is then split into stacks by
:func:`viewer.io.split.split_series` (orientation, size, ImageType, repeated positions), each split with
a ``split_reason``. Hidden files and folders (names starting with ".") are skipped: they are OS litter
(.DS_Store, AppleDouble ``._*``), never DICOM a user meant to open.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from viewer.core.records import HeaderRecord, ScanResult, Stack
from viewer.io.headers import read_header, same_file
from viewer.io.split import split_series

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]
PathArg = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

#: Headers read (and committed to the index) per batch; also the progress/cancel granularity.
BATCH = 128


def _as_list(paths: PathArg) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [os.path.abspath(os.fspath(p)) for p in paths]


def find_stacks(paths: PathArg, *, progress: Progress | None = None, cancel: Cancel | None = None,
                index: Any = None, workers: int | None = None,
                on_stack: Callable[[Stack], None] | None = None) -> ScanResult:
    """Scan ``paths`` (folders recursively, files, DICOMDIRs) into loadable stacks.

    Parameters
    ----------
    paths
        One path or several: folders, DICOM files, DICOMDIR files (their referenced files are scanned).
    progress
        Called as ``progress(done, total)`` in files, after each batch of header reads.
    cancel
        Polled between batches; when it returns True the scan stops and returns what it has, with
        ``cancelled`` set. Work already read stays in the index.
    index
        None: no persistence. True: the default index file. A path or an :class:`~viewer.io.index.Index`:
        that index. With an index only new or changed files are read.
    workers
        Header-reading processes (None = 1: a pool measured slower than the byte-level reader).
    on_stack
        Called with each stack as soon as every file of its folder has been read, so a browser can list
        series while the scan goes on. The returned ``stacks`` reuse those objects where the final
        grouping agrees; a stack that the final grouping changed (a series spread over several
        folders) is not in ``stacks``, and the caller should drop it.

    Returns
    -------
    ScanResult
    """
    from viewer.io.dicomdir import is_dicomdir, referenced_files

    result = ScanResult()
    roots = _as_list(paths)
    dirs: list[str] = []
    entries: dict[str, tuple[int, int]] = {}
    for root in roots:
        if os.path.isdir(root):
            dirs.append(root)
            _walk(root, entries, result)
        elif not os.path.lexists(root):
            result.bad_files.append((root, "no such file or folder"))
        elif is_dicomdir(root):
            result.non_image.append((root, "DICOMDIR (media directory): its referenced files are scanned"))
            files, problems = referenced_files(root)
            result.bad_files.extend(problems)
            for f in files:
                _add_file(f, entries, result)
        else:
            _add_file(root, entries, result)
    result.files_total = len(entries)

    idx, owned = _open_index(index, result)
    try:
        known: dict[str, HeaderRecord] = {}
        if idx is not None:
            for d in dirs:
                known.update(idx.under(d))
            known.update(idx.get(p for p in entries if p not in known))
            gone = [p for p in known if p not in entries and _is_under_dirs(p, dirs)]
            idx.remove(gone)
        records: list[HeaderRecord] = []
        todo: list[str] = []
        for path, (size, mtime) in entries.items():
            rec = known.get(path)
            # Trusted only while the file is the same: size and mtime (from the walk), then ctime and a
            # digest of its header bytes (a RescaleIntercept edited in place, mtime restored).
            if rec is not None and rec.size == size and rec.mtime_ns == mtime and (
                    rec.status != "image" or same_file(rec)):
                records.append(rec)
            else:
                todo.append(path)
        done = len(records)
        early = _EarlyStacks(todo, on_stack) if on_stack is not None else None
        if early is not None:
            early.add(records)
        if progress is not None:
            progress(done, len(entries))
        for batch in _read_batches(todo, cancel, workers):
            if batch is None:
                result.cancelled = True
                break
            if idx is not None:
                idx.put(batch)
            if early is not None:
                early.add(batch)
            records.extend(batch)
            result.headers_read += len(batch)
            done += len(batch)
            if progress is not None:
                progress(done, len(entries))
    finally:
        if idx is not None:
            result.warnings.extend(idx.warnings)
            idx.warnings.clear()
        if owned and idx is not None:
            idx.close()
    stacks, non_image, bad = group_records(records)
    result.stacks = early.reuse(stacks) if early is not None else stacks
    result.non_image.extend(non_image)
    result.bad_files.extend(bad)
    return result


class _EarlyStacks:
    """Stacks of folders whose files are all read, handed out while the scan is still running.

    A folder's records are grouped on their own once its last unread file comes in; most series live in
    one folder, so these stacks usually equal the final ones, which then reuse the same objects.
    """

    def __init__(self, todo: list[str], emit: Callable[[Stack], None]) -> None:
        self.unread = set(todo)
        self.pending: dict[str, int] = {}
        for path in todo:
            d = os.path.dirname(path)
            self.pending[d] = self.pending.get(d, 0) + 1
        self.waiting: dict[str, list[HeaderRecord]] = {}
        self.emitted: dict[frozenset[str], Stack] = {}
        self.emit = emit

    def add(self, batch: Iterable[HeaderRecord]) -> None:
        complete: list[HeaderRecord] = []
        touched: set[str] = set()
        for rec in batch:
            d = os.path.dirname(rec.path)
            self.waiting.setdefault(d, []).append(rec)
            touched.add(d)
            if rec.path in self.unread:
                self.unread.discard(rec.path)
                self.pending[d] -= 1
        for d in sorted(touched):
            if self.pending.get(d, 0) <= 0:
                complete.extend(self.waiting.pop(d))
        if complete:
            for stack in group_records(complete)[0]:
                self.emitted[frozenset(stack.files)] = stack
                self.emit(stack)

    def reuse(self, stacks: list[Stack]) -> list[Stack]:
        return [self.emitted.get(frozenset(s.files), s) for s in stacks]


def _walk(root: str, entries: dict[str, tuple[int, int]], result: ScanResult) -> None:
    stack = [root]
    found: list[tuple[str, os.DirEntry[str]]] = []
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name.startswith("."):
                        continue
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        else:
                            found.append((e.path, e))
                    except OSError as exc:
                        result.bad_files.append((e.path, f"cannot open: {exc.strerror or exc}"))
        except OSError as exc:
            result.bad_files.append((d, f"cannot list folder: {exc.strerror or exc}"))
    found.sort(key=lambda t: t[0])
    for path, e in found:
        try:
            st = e.stat()  # follows symlinks: a link to a file indexes by the link's path, the file's stamp
        except OSError as exc:
            result.bad_files.append((path, f"cannot open: {exc.strerror or exc} (broken link?)"))
            continue
        entries[path] = (st.st_size, st.st_mtime_ns)


def _add_file(path: str, entries: dict[str, tuple[int, int]], result: ScanResult) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        result.bad_files.append((path, f"cannot open: {exc.strerror or exc}"))
        return
    entries[path] = (st.st_size, st.st_mtime_ns)


def _is_under_dirs(path: str, dirs: Sequence[str]) -> bool:
    return any(path.startswith(d.rstrip(os.sep) + os.sep) for d in dirs)


def _open_index(index: Any, result: ScanResult) -> tuple[Any, bool]:
    if index is None or index is False:
        return None, False
    from viewer.io.index import Index, IndexUnavailable

    if isinstance(index, Index):
        return index, False
    try:
        return Index(None if index is True else index), True
    except IndexUnavailable as exc:
        result.warnings.append(f"{exc}; scanned without the index")
        return None, False


def _read_all(paths: Sequence[str]) -> list[HeaderRecord]:
    with warnings.catch_warnings():
        # pydicom warns about every odd value; bad files get a reason instead, so the warnings are noise.
        warnings.simplefilter("ignore")
        return [read_header(p) for p in paths]


def _read_batches(todo: list[str], cancel: Cancel | None,
                  workers: int | None) -> Iterator[list[HeaderRecord] | None]:
    """Header records of ``todo`` in batches of BATCH; yields None (and stops) when cancelled."""
    batches = [todo[i:i + BATCH] for i in range(0, len(todo), BATCH)]
    if workers is None:
        # Measured (benchmarks/bench_scan.py): the byte-level header path reads ~6,000 files/s in one
        # process; a pool's start-up and pickling made 2 processes slower on 2 cores, so it is opt-in.
        workers = 1
    if workers <= 1 or len(batches) < 2:
        for b in batches:
            if cancel is not None and cancel():
                yield None
                return
            yield _read_all(b)
        return
    import concurrent.futures as cf
    import multiprocessing as mp

    # forkserver: forking a process that runs Qt threads is unsafe; spawn would re-import the app.
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: list[cf.Future[list[HeaderRecord]]] = []
        it = iter(batches)
        try:
            for b in _take(it, workers * 2):
                pending.append(pool.submit(_read_all, b))
            while pending:
                if cancel is not None and cancel():
                    yield None
                    return
                batch = pending.pop(0).result()
                for b in _take(it, 1):
                    pending.append(pool.submit(_read_all, b))
                yield batch
        finally:
            for f in pending:
                f.cancel()


def _take(it: Iterator[list[str]], n: int) -> Iterable[list[str]]:
    for _ in range(n):
        b = next(it, None)
        if b is None:
            return
        yield b


def _series_key(r: HeaderRecord) -> tuple[str, ...]:
    if r.series_uid:
        return ("uid", r.series_uid)
    # No SeriesInstanceUID (anonymisers sometimes blank it): the folder plus the series' own attributes.
    return ("nouid", os.path.dirname(r.path), r.modality, r.series_number, r.series_description,
            r.frame_of_reference_uid, r.study_uid)


def group_records(records: Iterable[HeaderRecord]
                  ) -> tuple[list[Stack], list[tuple[str, str]], list[tuple[str, str]]]:
    """Stacks of the image records, plus (path, reason) of non-image and bad records.

    Stacks are ordered by patient, study date/UID, series number, series UID, then split order.
    """
    series: dict[tuple[str, ...], list[HeaderRecord]] = {}
    non_image: list[tuple[str, str]] = []
    bad: list[tuple[str, str]] = []
    for r in records:
        if r.status == "image":
            series.setdefault(_series_key(r), []).append(r)
        elif r.status == "nonimage":
            non_image.append((r.path, r.reason))
        else:
            bad.append((r.path, r.reason))
    keyed: list[tuple[tuple[Any, ...], Stack]] = []
    for recs in series.values():
        first = min(recs, key=lambda r: r.path)
        try:
            parts = split_series(recs)
        except Exception as exc:  # noqa: BLE001 - one series' odd values must not end the folder's scan
            why = f"its series could not be split into stacks: {type(exc).__name__}: {exc}"[:300]
            bad.extend((r.path, why) for r in recs)
            continue
        for n, part in enumerate(parts):
            files = [r.path for r in part.records]
            head = part.records[0]
            stack = Stack(
                series_uid=first.series_uid, files=files, modality=first.modality,
                description=first.series_description, split_reason=part.reason,
                warnings=list(part.warnings), patient_id=first.patient_id, patient_name=first.patient_name,
                study_uid=first.study_uid, study_date=first.study_date,
                study_description=first.study_description, series_number=head.series_number,
                series_date=first.series_date, rows=head.rows, columns=head.columns,
                frames=sum(r.frames for r in part.records), image_type=head.image_type,
                split_label=part.label, volumes=part.volumes, records=list(part.records))
            keyed.append(((first.patient_name, first.patient_id, first.study_date, first.study_uid,
                           _num(first.series_number), first.series_uid, first.path, n), stack))
    keyed.sort(key=lambda t: t[0])
    return ([s for _, s in keyed], sorted(non_image), sorted(bad))


def _num(v: str) -> tuple[int, float, str]:
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)
