"""Retrieve series into the local store: C-GET or C-MOVE (DIMSE), WADO-RS (DICOMweb); resume; concurrency.

A series not stored at all is asked whole at once, its instance list (C-FIND IMAGE level; over DICOMweb
only the count, the list only when fewer arrived) asked alongside. For a series partly stored the list is
asked first; what is already in the series folder (by SOP Instance UID) is skipped, so a broken transfer
resumes where it stopped; only the missing instances are asked for (a UID list at IMAGE level; over
WADO-RS one request each, several at a time). ``auto`` tries C-GET and falls back to C-MOVE when the PACS
does not offer C-GET (many do not); C-MOVE sends the series to our own storage SCP on ``port``, which the
PACS must know under our AE title (README: node set-up); when nothing comes, the error says why
(:func:`viewer.io.pacs.dimse.move_failure`).

Callbacks run on network threads: ``progress(SeriesProgress)`` after each stored instance and
``on_stored(path, SeriesProgress)`` with the file just stored (the streaming API: a viewer opens the
series on the first one and fills in the rest); ``cancel()`` is polled. Series run ``workers`` at a time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from viewer.core.pacs_records import RetrieveResult as RetrieveResult
from viewer.core.pacs_records import SeriesProgress as SeriesProgress
from viewer.core.pacs_records import SeriesResult as SeriesResult
from viewer.core.records import HeaderRecord
from viewer.io.pacs import dimse, web
from viewer.io.pacs.errors import PacsCancelled, PacsError
from viewer.io.pacs.nodes import DEFAULT_AE, DEFAULT_PORT, DimseNode, Node, WebNode
from viewer.io.pacs.query import Query
from viewer.io.pacs.store import (
    InstanceInfo,
    LocalStore,
    check_instance,
    fsync_folder,
    stored_sop_uids,
    sweep_partials,
)

log = logging.getLogger(__name__)

#: A WADO-RS resume streams the whole series (the present instances dropped on arrival) when more than this
#: fraction is missing, else asks for each missing instance: on loopback Orthanc one request per instance
#: costs more than re-sending the few present ones past ~90 % missing (bench_pacs.py --parts resume).
WADO_WHOLE_ABOVE = 0.9

#: Writer threads per series and instances that may wait for them in memory (~0.5 MB each for CT).
WRITERS = 4
MAX_PENDING = 32


class _Job:
    """One series: counts and stores what arrives, whichever thread it arrives on.

    ``expected`` (SOP Instance UID -> SOP Class UID) may come later (:meth:`expect`): a fresh retrieve
    starts at once and lists the instances meanwhile; ``total`` is -1 until then.
    """

    def __init__(self, store: LocalStore, study_uid: str, series_uid: str,
                 progress: Callable[[SeriesProgress], None] | None,
                 on_stored: Callable[[Path, SeriesProgress], None] | None, cancel: Callable[[], bool] | None) -> None:
        self.store = store
        self.folder = store.folder(study_uid, series_uid)
        sweep_partials(self.folder)
        self.present = stored_sop_uids(self.folder)
        self.expected: dict[str, str] = {}
        self.state = SeriesProgress(study_uid, series_uid, self.folder, total=-1)
        self.files: list[Path] = []
        self.arrived: dict[str, str] = {}  # SOP Instance UID -> SOP Class UID of what this job stored
        self.records: list[HeaderRecord] = []  # their index records, put in one transaction at the end
        self.write_errors: list[str] = []
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="pacs-write")
        self._slots = threading.BoundedSemaphore(MAX_PENDING)
        self._t0 = time.perf_counter()
        self._progress, self._on_stored, self._cancel = progress, on_stored, cancel

    def expect(self, expected: dict[str, str]) -> None:
        with self._lock:
            self.expected = expected
            self.state.total = len(expected)
            self.state.skipped = len(self.present & set(expected))
            self.state.done = self.state.skipped + len(self.files)

    def expect_count(self, total: int) -> None:
        """The series' size before its instance list is known (progress shows done / total early)."""
        with self._lock:
            if not self.expected:
                self.state.total = total

    def progress(self) -> SeriesProgress:
        """Where the series stands now (a copy)."""
        with self._lock:
            return SeriesProgress(**vars(self.state))

    @property
    def missing(self) -> list[str]:
        self.drain_pending()
        have = stored_sop_uids(self.folder)
        return sorted(u for u in self.expected if u not in have)

    def sink(self, data: bytes) -> None:
        """Check an arrived instance and queue it for writing; returns before it is on disk.

        Writes (temp file, fsync, rename) run on a few writer threads so that the network never waits for
        the disk (~10 ms an fsync here); at most ``MAX_PENDING`` instances wait in memory. The PACS keeps
        its copy, so answering success before our fsync loses nothing: an instance not on disk after a
        crash is fetched again by the next retrieve.
        """
        if self._cancel is not None and self._cancel():
            raise PacsCancelled("retrieve cancelled")
        info = check_instance(data)
        if info.series_uid != self.state.series_uid:
            raise PacsError(f"instance {info.sop_uid} belongs to series {info.series_uid}, not the one asked for")
        if info.sop_uid in self.present:
            return  # a whole-series stream during a resume: this one is already here
        self._slots.acquire()
        self._writer.submit(self._write, data, info)

    def _write(self, data: bytes, info: InstanceInfo) -> None:
        # The slot is given back only once the instance is counted: drain_pending() then sees it all.
        try:
            try:
                path = self.store.store(data, info, sync_folder=False, index=False)
            except OSError as exc:
                with self._lock:
                    self.write_errors.append(f"cannot write instance {info.sop_uid}: {exc.strerror or exc}")
                return
            record = self.store.record(path)
            with self._lock:
                self.files.append(path)
                self.arrived[info.sop_uid] = info.sop_class_uid
                if record is not None:
                    self.records.append(record)
                self.state.done += 1
                self.state.bytes += len(data)
                self.state.seconds = time.perf_counter() - self._t0
                snapshot = SeriesProgress(**vars(self.state))
        finally:
            self._slots.release()
        if self._progress is not None:
            self._progress(snapshot)
        if self._on_stored is not None:
            self._on_stored(path, snapshot)

    def drain(self) -> None:
        """Wait until every queued instance is written (no more writes after this)."""
        self._writer.shutdown(wait=True)

    def drain_pending(self) -> None:
        """Wait until what is queued now is written (more may be queued after)."""
        for _ in range(MAX_PENDING):
            self._slots.acquire()
        for _ in range(MAX_PENDING):
            self._slots.release()

    def finish(self, method: str, problems: list[str], error: str | None) -> SeriesResult:
        self.drain()
        problems += self.write_errors
        if self.files:
            fsync_folder(self.folder)
            try:
                self.store.put(self.records)
            except Exception as exc:  # noqa: BLE001 - the files are stored; a scan indexes them later
                problems.append(f"not indexed now ({exc}); a scan of the folder will index them")
        present = stored_sop_uids(self.folder)
        still = [u for u in self.expected if u not in present]
        if still and error is None:
            error = f"{len(still)} of {len(self.expected)} instances did not arrive; run the retrieve again to " \
                    "fetch only those"
        s = self.state
        return SeriesResult(s.study_uid, s.series_uid, self.folder, method, s.total, len(self.files), s.skipped,
                            s.bytes, time.perf_counter() - self._t0, list(self.files), problems, error)


def list_series(node: Node, study_uid: str, ae_title: str = DEFAULT_AE) -> dict[str, str]:
    """Series Instance UID -> Modality of a study."""
    if isinstance(node, DimseNode):
        return dimse.series_modalities(node, ae_title, study_uid)
    return {m.series_uid: m.modality for m in web.find(node, Query(level="series", study_uid=study_uid))}


def retrieve(node: Node, study_uid: str, series_uids: list[str] | None = None, *, ae_title: str = DEFAULT_AE,
             port: int = DEFAULT_PORT, store: LocalStore | None = None, method: str | None = None,
             workers: int = 2, progress: Callable[[SeriesProgress], None] | None = None,
             on_stored: Callable[[Path, SeriesProgress], None] | None = None,
             cancel: Callable[[], bool] | None = None, server: dimse.StorageServer | None = None,
             modalities: dict[str, str] | None = None) -> RetrieveResult:
    """Retrieve a study (or some of its series) into ``store``; see the module docstring.

    ``method``: ``auto``/``get``/``move`` for DIMSE nodes (default: the node's setting), ignored for
    DICOMweb (WADO-RS). ``server``: a running storage SCP to use for C-MOVE (else one is started on
    ``port`` when needed and closed at the end). ``modalities``: Series UID -> Modality when the caller
    knows them (a C-GET then offers only that modality's SOP classes; else one series-level query asks).
    Raises PacsError when the study cannot even be listed; per-series failures are in the result
    (``error``) so the other series still arrive.
    """
    store = store or LocalStore()
    method = method or (node.retrieve if isinstance(node, DimseNode) else "wado")
    modalities = dict(modalities or {})
    if not series_uids or (isinstance(node, DimseNode) and method != "move"
                           and any(u not in modalities for u in series_uids)):
        modalities = {**list_series(node, study_uid, ae_title), **modalities}
    series = series_uids or list(modalities)
    if not series:
        raise PacsError(f"{node.url}: study {study_uid} has no series (or is not there)")
    state = {"method": method, "server": server}
    lock = threading.Lock()
    started_server: list[dimse.StorageServer] = []

    def get_server() -> dimse.StorageServer:
        with lock:
            if state["server"] is None:
                srv = dimse.StorageServer(ae_title, port, timeout_s=node.timeout_s, tls=_move_tls(node))
                started_server.append(srv)
                state["server"] = srv
            return state["server"]  # type: ignore[return-value]

    def list_instances(series_uid: str) -> dict[str, str]:
        if isinstance(node, DimseNode):
            return dimse.list_instances(node, ae_title, study_uid, series_uid)
        return web.list_instances(node, study_uid, series_uid)

    def list_or_count(job: _Job) -> dict[str, str] | int | None:
        """The instance list (DIMSE: C-GET's SOP classes come from it), or over DICOMweb the count alone
        (None when the server does not say), shown as the series' total at once: reported to ``progress``
        as soon as it is in, so that a viewer showing the series while it arrives sizes its volume once
        instead of growing it blind."""
        found: dict[str, str] | int
        if isinstance(node, WebNode):
            try:
                count = web.count_instances(node, study_uid, job.state.series_uid)
            except PacsError:
                return None  # the stream says for itself; the list is asked after it
            if count is None:
                return None
            job.expect_count(count)
            found = count
        else:
            found = list_instances(job.state.series_uid)
            job.expect(found)
        if progress is not None:
            progress(job.progress())
        return found

    def fetch(job: _Job, subset: list[str] | None, problems: list[str]) -> str:
        if isinstance(node, WebNode):
            problems += web.retrieve_series(node, study_uid, job.state.series_uid, job.sink, sop_uids=subset,
                                            cancel=cancel)
            return "WADO-RS"
        return _dimse_retrieve(node, ae_title, job, subset, cancel, state, lock, get_server, problems,
                               dimse.classes_for_modality(modalities.get(job.state.series_uid, "")))

    def one(series_uid: str) -> SeriesResult:
        job = _Job(store, study_uid, series_uid, progress, on_stored, cancel)
        problems: list[str] = []
        used = ""
        error: str | None = None
        try:
            if job.present:
                # Resume: list first, then ask only for what is missing (one UID-list request over DIMSE;
                # over DICOMweb one request per instance, several at a time, unless nearly all are missing).
                job.expect(list_instances(series_uid))
                missing = job.missing
                subset: list[str] | None = missing if len(missing) < len(job.expected) else None
                if isinstance(node, WebNode) and subset and len(subset) > WADO_WHOLE_ABOVE * len(job.expected):
                    subset = None
                if progress is not None:
                    progress(job.progress())
                used = fetch(job, subset, problems) if missing else "none (already stored)"
            else:
                # Fresh: the whole series at once, listing it meanwhile (Orthanc takes ~2 ms an instance
                # to list: 0.2-0.6 s before the first image otherwise); then whatever the first pass
                # missed (an unusual SOP class our C-GET did not offer) in a second pass.
                # Over DICOMweb only the count is asked meanwhile: a multipart stream that ends cleanly
                # holds what the server has, so the list (~150 ms of Orthanc's CPU for 134 instances,
                # taken from the stream it serves at the same time) is asked only when fewer arrived.
                listing: dict[str, Any] = {}
                lister = threading.Thread(target=_into, args=(listing, list_or_count, job), name="pacs-list",
                                          daemon=True)
                lister.start()
                try:
                    used = fetch(job, None, problems)
                finally:
                    lister.join()
                    if isinstance(listing.get("value"), dict):
                        job.expect(listing["value"])  # the total is known even when the fetch failed
                if "error" in listing:
                    raise listing["error"]
                count = listing["value"]
                if not isinstance(count, dict):  # DICOMweb: the list (above) was only a count, or unknown
                    job.drain_pending()
                    arrived = dict(job.arrived)
                    job.expect(arrived if count is not None and len(arrived) >= count
                               else list_instances(series_uid))
                if progress is not None:
                    progress(job.progress())
                missing = job.missing
                if missing:
                    # e.g. a SOP class the first C-GET did not offer: asked again with the exact classes;
                    # when that completes the series, the first pass's failures were not failures.
                    second: list[str] = []
                    fetch(job, missing if len(missing) < len(job.expected) else None, second)
                    problems[:] = second if not job.missing else problems + second
        except PacsCancelled:
            job.drain()
            raise
        except PacsError as exc:
            job.drain()
            used = used or _METHOD_NAMES.get(str(state["method"]), "")
            error = str(exc)
            if job.files:
                error = f"the transfer stopped after {len(job.files)} instances: {error}"
            log.warning("series %s: %s", series_uid, error)
        return job.finish(used, problems, error)

    results: list[SeriesResult] = []
    cancelled = False
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(series))), thread_name_prefix="pacs-get") as ex:
            futures = [ex.submit(one, uid) for uid in series]
            for f in futures:
                try:
                    results.append(f.result())
                except PacsCancelled:
                    cancelled = True
    finally:
        for srv in started_server:
            srv.close()
    return RetrieveResult(node.url, store.root, results, cancelled)


#: What a failed series reports as its method (the one that failed).
_METHOD_NAMES = {"get": "C-GET", "move": "C-MOVE", "wado": "WADO-RS"}


def _dimse_retrieve(node: DimseNode, ae_title: str, job: _Job, subset: list[str] | None,
                    cancel: Callable[[], bool] | None, state: dict[str, Any], lock: threading.Lock,
                    get_server: Callable[[], dimse.StorageServer], problems: list[str],
                    guessed: set[str] | None) -> str:
    exact = {job.expected[u] for u in (subset or job.expected) if job.expected.get(u)}
    classes = exact or guessed
    s = job.state
    # A failure status is noted, not raised: which instances are missing is the listing's to say, and a
    # second pass (exact SOP classes) may still fetch them.
    if state["method"] in ("auto", "get"):
        try:
            problems += dimse.get_series(node, ae_title, s.study_uid, s.series_uid, job.sink, sop_uids=subset,
                                         sop_classes=classes, cancel=cancel)
        except dimse.NotOffered:
            if state["method"] == "get":
                raise
            with lock:
                state["method"] = "move"  # the other series go straight to C-MOVE
        except dimse.SubOperationsFailed as exc:
            problems.append(str(exc))
            return "C-GET"
        else:
            return "C-GET"
    server = get_server()
    server.route(s.series_uid, job.sink)
    # What the server saw before this C-MOVE (it may serve other series' C-MOVEs at the same time: a
    # connection for those still shows that the PACS reaches us).
    connections, refusals, stored = server.connections, len(server.errors), len(job.files)
    failure: dimse.SubOperationsFailed | None = None
    sent: int | None = None
    try:
        sent = dimse.move_series(node, ae_title, s.study_uid, s.series_uid, sop_uids=subset, cancel=cancel,
                                 errors=problems, port=server.port)
    except dimse.SubOperationsFailed as exc:
        failure = exc
    finally:
        server.unroute(s.series_uid)
    job.drain_pending()
    if len(job.files) == stored:
        if failure is not None or sent != 0:
            # Nothing came: say why (the PACS's answer, and whether it reached our storage SCP at all)
            # rather than "N of N did not arrive"; a second pass would fail the same way.
            raise PacsError(dimse.move_failure(node, ae_title, server.port, failure, sent,
                                               server.connections > connections, server.errors[refusals:]))
        problems.append(f"{node.called_ae} reported the C-MOVE as done with nothing to send")
    if failure is not None:
        problems.append(str(failure))
    return "C-MOVE"


def _move_tls(node: Node) -> Any:
    """TLS for the storage SCP a C-MOVE from ``node`` connects back to: when we talk TLS to the node with a
    certificate of ours, the PACS is expected to send over TLS too (to our certificate, checked against the
    node's CA when verifying); else plain DICOM."""
    if not (isinstance(node, DimseNode) and node.tls and node.tls_cert):
        return None
    return dimse.server_tls_context(node.tls_cert, node.tls_key, node.tls_ca if node.tls_verify else "")


def _into(out: dict[str, Any], fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` on a thread: its value or its exception into ``out``."""
    try:
        out["value"] = fn(*args)
    except BaseException as exc:  # noqa: BLE001 - handed back to the thread that waits
        out["error"] = exc


_DONE = object()


def iter_retrieve(node: Node, study_uid: str, series_uids: list[str] | None = None, **kwargs: Any
                  ) -> Iterator[tuple[Path, SeriesProgress] | RetrieveResult]:
    """The streaming form of :func:`retrieve`: yields ``(path, progress)`` as each instance is stored, then
    the :class:`RetrieveResult` last. Runs the retrieve on a thread; closing the iterator cancels it."""
    q: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    user_cancel = kwargs.pop("cancel", None)

    def cancel() -> bool:
        return stop.is_set() or bool(user_cancel is not None and user_cancel())

    def run() -> None:
        try:
            q.put(retrieve(node, study_uid, series_uids, on_stored=lambda p, s: q.put((p, s)), cancel=cancel,
                           **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)
        q.put(_DONE)

    t = threading.Thread(target=run, name="pacs-stream", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join()
