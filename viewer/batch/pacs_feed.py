"""PACS sources streamed into a batch job: series are retrieved one after another on a driver thread, and
each becomes tasks as soon as it is in the local store, so series i+1 arrives while series i is inferred.

:meth:`PacsFeed.find` searches every PACS SOURCE at series level with ``--query`` (C-FIND / QIDO-RS), so
a bad node or query fails before a cluster starts and the job knows its size. :meth:`PacsFeed.start` then
retrieves the matches (C-GET, falling back to C-MOVE; WADO-RS) into the local store
(:class:`viewer.io.pacs.store.LocalStore`: ``<store>/<StudyUID>/<SeriesUID>/``, put into the scan index),
scans each finished series with the header index and hands its units to :func:`viewer.batch.job.run_job`
through a bounded queue: the thread waits when ``lookahead`` units are ready and not yet taken, so a fast
PACS does not fill the disk far ahead of the cluster.

Resume: a series whose every model is already in the results is not retrieved at all (``skip``), and a
series partly or wholly in the store from an earlier run asks only for the instances it lacks (the
store's own resume), so ``--resume`` re-fetches nothing. A series that cannot be retrieved
(:attr:`PacsFeed.failed`) counts as a failed series of the job, with its reason, and writes no rows, so
``--resume`` asks for it again. Per series, :attr:`PacsFeed.retrieved` records how many instances came over
the network and how many were already stored, how (C-GET, C-MOVE, WADO-RS), and when the series was ready.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from viewer.batch.sources import PacsOptions, SourceError, Unit, parse_query, units_of


@dataclass
class _Series:
    source: str
    node: Any
    study_uid: str
    series_uid: str
    modality: str


@dataclass
class RetrievedSeries:
    """One series as the feed handled it (the ``retrieved`` list of the job's summary)."""

    source: str
    series_instance_uid: str
    status: str  # "retrieved" | "skipped" (done before, --resume) | "failed"
    instances_fetched: int = 0
    already_stored: int = 0
    units: int = 0
    method: str = ""  # how it came: C-GET, C-MOVE, WADO-RS ("none (already stored)" when nothing was missing)
    seconds: float = 0.0
    ready_at_s: float = 0.0  # since start(): when its units were handed to the job
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


_END = object()


@dataclass
class PacsFeed:
    """Units of PACS sources, retrieved and scanned on a thread while the job runs (see module doc)."""

    sources: Sequence[str]
    pacs: PacsOptions
    index: Any = True
    lookahead: int = 4
    #: called on the feed's thread with each series' UID before it is retrieved (tests hold it there)
    before_series: Callable[[str], None] | None = None
    series: list[_Series] = field(default_factory=list)
    retrieved: list[RetrievedSeries] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max(1, self.lookahead))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ended = False
        self._pending = 0  # series not yet handed over (or skipped / failed)
        self._t0 = 0.0

    def find(self) -> int:
        """Search every source (SourceError names a bad node, query or answer); returns the series found."""
        from viewer.io.pacs import DimseNode, PacsError, dimse, parse_node, web
        from viewer.io.pacs.query import Query

        if not self.pacs.query.strip():
            raise SourceError(f"{self.sources[0]}: a PACS source needs --query (e.g. 'modality=CT "
                              "study-date=20240101-20241231')")
        for source in self.sources:
            try:
                node = parse_node(source)
                q = Query(level="series", **parse_query(self.pacs.query))
                matches = list(dimse.find(node, q, self.pacs.ae_title) if isinstance(node, DimseNode)
                               else web.find(node, q))
            except PacsError as exc:
                raise SourceError(f"{source}: {exc}") from None
            seen = {(s.study_uid, s.series_uid) for s in self.series}
            for m in matches:
                if m.series_uid and (m.study_uid, m.series_uid) not in seen and (
                        not q.modality or m.modality.upper() == q.modality.upper()):
                    self.series.append(_Series(source, node, m.study_uid, m.series_uid, m.modality))
                    seen.add((m.study_uid, m.series_uid))
        self._pending = len(self.series)
        return len(self.series)

    def start(self, skip: Callable[[str], bool] | None = None) -> None:
        """Retrieve on a thread; ``skip(series_uid)``: True for a series already done (not retrieved)."""
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, args=(skip,), name="batch-pacs-feed", daemon=True)
        self._thread.start()

    @property
    def remaining(self) -> int:
        """Series not yet handed to the job (nor skipped or failed)."""
        return self._pending

    @property
    def skipped(self) -> int:
        """Series not retrieved because every model already ran on them (``--resume``)."""
        return sum(1 for r in self.retrieved if r.status == "skipped")

    @property
    def failed(self) -> list[RetrievedSeries]:
        """Series that could not be retrieved (nothing of them stored), in the order they failed."""
        return [r for r in self.retrieved if r.status == "failed"]

    @property
    def done(self) -> bool:
        """Every series handed over and taken (or the feed was never started)."""
        return self._thread is None or (self._ended and self._q.empty())

    def take(self, limit: int) -> list[Unit]:
        """Up to ``limit`` ready units, without waiting."""
        out: list[Unit] = []
        while len(out) < limit:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                self._ended = True
                break
            out.append(item)
        return out

    def wait(self, timeout_s: float) -> None:
        """Until a unit is ready or the feed ends (at most ``timeout_s``)."""
        if self._ended:
            return
        deadline = time.monotonic() + timeout_s
        while self._q.empty() and time.monotonic() < deadline and self._thread is not None \
                and self._thread.is_alive():
            time.sleep(0.01)

    def close(self) -> None:
        """Stop retrieving (a job that ends early) and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():
                try:
                    self._q.get(timeout=0.05)  # unblock a put waiting for room
                except queue.Empty:
                    pass
            self._thread.join()

    # -- the feed's thread ----------------------------------------------------------------------------
    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, skip: Callable[[str], bool] | None) -> None:
        from viewer.io.pacs import PacsCancelled, PacsError
        from viewer.io.pacs.retrieve import retrieve
        from viewer.io.pacs.store import LocalStore

        store = LocalStore(self.pacs.store) if self.pacs.store else LocalStore()
        try:
            for s in self.series:
                if self._stop.is_set():
                    return
                rec = RetrievedSeries(s.source, s.series_uid, "retrieved")
                self.retrieved.append(rec)
                if skip is not None and skip(s.series_uid):
                    rec.status = "skipped"
                    self._pending -= 1
                    continue
                if self.before_series is not None:
                    self.before_series(s.series_uid)
                t0 = time.perf_counter()
                try:
                    result = retrieve(s.node, s.study_uid, [s.series_uid], ae_title=self.pacs.ae_title,
                                      port=self.pacs.port, store=store, method=self.pacs.retrieve,
                                      modalities={s.series_uid: s.modality}, cancel=self._stop.is_set)
                except PacsCancelled:
                    return
                except PacsError as exc:
                    result, rec.reason = None, f"not retrieved: {exc}"
                units: list[Unit] = []
                for sr in result.series if result is not None else []:
                    rec.instances_fetched += sr.stored
                    rec.already_stored += sr.skipped
                    rec.method = sr.method
                    if sr.error or not sr.complete:
                        rec.reason = (f"retrieved {sr.stored + sr.skipped} of {sr.total} instances: "
                                      f"{sr.error or '; '.join(sr.problems) or 'incomplete'}")
                    if sr.stored + sr.skipped:
                        scan = units_of([str(sr.folder)], index=self.index)
                        units += scan.units
                        self.bad += scan.bad_files
                rec.seconds = time.perf_counter() - t0
                if not units and not rec.reason:
                    rec.reason = f"no loadable image series among the {rec.instances_fetched + rec.already_stored} " \
                                 "instances retrieved"
                rec.status = "retrieved" if units else "failed"  # the job reads it: the reason is set before
                if rec.reason and units:  # the job runs on what arrived; the shortfall is listed with the files
                    self.bad.append((f"{s.source} series {s.series_uid}", rec.reason))
                rec.units = len(units)
                rec.ready_at_s = time.perf_counter() - self._t0
                self._pending -= 1
                for u in units:
                    if not self._put(u):
                        return
        except BaseException as exc:  # noqa: BLE001 - the job goes on with what arrived; the reason is kept
            self.bad.append(("PACS feed", f"stopped: {type(exc).__name__}: {exc}"))
        finally:
            self._pending = 0
            self._put(_END)
