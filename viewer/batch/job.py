"""The driver of a batch job: clusters, task submission, results, progress.

:func:`local_cluster` starts a Dask ``LocalCluster`` of worker *processes* (decoders and ORT hold the GIL
differently; threads in one process would serialise the decoders); :func:`connect` joins a cluster started
with ``dask scheduler`` / ``dask worker``. :func:`run_job` runs the units on a client's cluster: it keeps
a bounded number of tasks in flight (a few per worker thread), so the scheduler holds a window of the job,
never all of it, and the memory of the scheduler and of the writer stays flat with the archive's size.
Results are written by one :class:`~viewer.batch.results.ResultsWriter` here, in the order tasks finish;
Dask reruns the task of a worker that died (up to ``distributed.scheduler.allowed-failures`` times, then
the series is recorded as ``lost``), and each task's result is taken once, so rows are never doubled.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from viewer.ai.manifest import Manifest
from viewer.batch.models import RunOptions, ShipModels, spec_of
from viewer.batch.outputs import OutputOptions, is_image_to_image, run_unit
from viewer.batch.pacs_feed import PacsFeed
from viewer.batch.results import LOST, ResultsWriter, finished_keys, rows_of
from viewer.batch.sources import Unit
from viewer.batch.work import ModelRows, UnitResult, infer_unit

#: Tasks in flight per worker thread: enough that no worker waits for the driver, few enough that the
#: scheduler's memory does not grow with the archive.
IN_FLIGHT_PER_THREAD = 2
THREADS_PER_WORKER = 2  # one series decoding while another is in ONNX Runtime (see viewer.batch.work)


@dataclass
class Progress:
    """Where a job stands; handed to ``on_progress`` after every series."""

    series_total: int
    series_done: int = 0
    series_failed: int = 0
    series_skipped: int = 0  # already in the results (--resume)
    slices: int = 0
    elapsed_s: float = 0.0
    last_failure: str = ""

    @property
    def slices_per_s(self) -> float:
        return self.slices / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class Summary:
    """The end of a job: counts, throughput and every failed series with its reason."""

    out: str
    progress: Progress
    failures: list[dict[str, str]] = field(default_factory=list)
    engine_setup_s: dict[str, float] = field(default_factory=dict)  # worker -> seconds spent starting models
    task_s: float = 0.0  # sum over tasks of load + inference time (the work itself)
    dashboard: str = ""
    workers: int = 0
    threads: int = 0
    parts_written: int = 0
    rows_written: int = 0
    interrupted: bool = False


def local_cluster(workers: int | None = None, *, threads_per_worker: int = THREADS_PER_WORKER,
                  dashboard: bool = True) -> Any:
    """A ``distributed.LocalCluster`` of ``workers`` processes (default: one per usable core)."""
    from distributed import LocalCluster

    from viewer.ai.session import default_threads

    n = workers or default_threads()
    address = "127.0.0.1:0" if dashboard and _has_bokeh() else None
    return LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                        dashboard_address=address, host="127.0.0.1", silence_logs=logging.ERROR)


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def connect(address: str, timeout_s: float = 30.0) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address`` (``tcp://host:8786``)."""
    from distributed import Client

    return Client(address, timeout=timeout_s)


def run_job(client: Any, units: Sequence[Unit], manifests: Sequence[Manifest], out: str, *,
            opts: RunOptions = RunOptions(), resume: bool = False, outputs: OutputOptions | None = None,
            feed: PacsFeed | None = None,
            on_progress: Callable[[Progress], None] | None = None, chunk_rows: int = 20000,
            flush_s: float = 10.0) -> Summary:
    """Run ``manifests`` on every unit with ``client``'s cluster and write the rows to the folder ``out``.

    With ``resume``, (unit, model) pairs already in ``out`` are skipped; without it, ``out`` must not hold
    results yet (ValueError). KeyboardInterrupt writes what has arrived, then propagates. ``outputs``: DICOM
    written and sent per series by the tasks (:mod:`viewer.batch.outputs`; image-to-image models need it).
    ``feed``: PACS series found but not yet retrieved (:mod:`viewer.batch.pacs_feed`); retrieved on a thread
    while the job runs, each series' units join the job as soon as it is stored.
    """
    from distributed import as_completed

    done = finished_keys(out) if resume else set()
    if not resume and done_any(out):
        raise ValueError(f"{out} already holds results: give --resume to continue that job, or another --out")
    specs = [spec_of(m) for m in manifests]
    # a job with DICOM outputs (or a denoiser) runs the outputs' task, which wraps infer_unit
    task, extra = ((run_unit, (outputs or OutputOptions(),))
                   if outputs is not None or any(is_image_to_image(s) for s in specs) else (infer_unit, ()))
    todo: deque[tuple[Unit, list[Any]]] = deque()
    prog = Progress(series_total=len(units))
    writer = ResultsWriter(out, chunk_rows=chunk_rows, flush_s=flush_s)
    summary = Summary(out=str(out), progress=prog, dashboard=str(getattr(client, "dashboard_link", "") or ""))
    job_id = uuid.uuid4().hex[:12]
    t0 = time.perf_counter()
    rejected_of: dict[str, list[ModelRows]] = {}

    def admit(u: Unit) -> None:
        need = [(m, s) for m, s in zip(manifests, specs) if (u.key, s.sha256) not in done]
        if not need:
            prog.series_skipped += 1
            return
        # As `infer --csv`: the modality in the scanned header already rules a model out, so a series no
        # model applies to is never sent to a worker or decoded.
        run = [s for m, s in need if opts.force or (u.modality or "").upper() in m.applies_to.modalities]
        if run:
            todo.append((u, run))
        rejected = [ModelRows(s, "failed", f"not applicable: {m.name} is for {', '.join(m.applies_to.modalities)} "
                              f"images; this series is {u.modality or 'of unknown modality'} (use --force to run "
                              "it anyway)") for m, s in need if s not in run]
        if rejected and run:
            rejected_of[u.key] = rejected  # written with the task's rows, so a unit's rows stay in one part
        elif rejected:
            res = UnitResult(u.key, u.series_uid, u.study_uid, u.modality, u.folder, 0, [], [], 0.0, rejected, "")
            writer.add(rows_of(res, forced=opts.force, job_id=job_id))
            _account(prog, summary, res, "")

    for u in units:
        admit(u)
    n_fed = 0
    if feed is not None:
        feed.start(skip=lambda uid: all((uid, s.sha256) in done for s in specs))
    prog.elapsed_s = time.perf_counter() - t0
    if on_progress is not None:
        on_progress(prog)
    client.register_plugin(ShipModels(manifests, opts))
    pending = as_completed()
    in_flight: dict[str, tuple[Unit, list[Any]]] = {}
    threads = _threads(client)
    n_submitted = 0

    prog_fed_skipped = [0]  # series the feed skipped (done before), counted into prog so far

    def refill() -> None:
        nonlocal n_submitted, n_fed
        window = max(2, IN_FLIGHT_PER_THREAD * threads)
        if feed is not None and len(todo) < window:  # PACS series stored meanwhile join the job
            fed = feed.take(window - len(todo))
            n_fed += len(fed)
            for u in fed:
                admit(u)
            skipped = feed.skipped
            prog.series_total = len(units) + n_fed + feed.remaining + skipped
            prog.series_skipped += skipped - prog_fed_skipped[0]
            prog_fed_skipped[0] = skipped
        while todo and len(in_flight) < window:
            unit, need = todo.popleft()
            fut = client.submit(task, unit, need, opts, *extra, key=f"viewer-batch-{job_id}-{n_submitted}",
                                pure=False)
            n_submitted += 1
            in_flight[fut.key] = (unit, need)
            pending.add(fut)

    def next_done() -> list[Any]:
        """Finished tasks; while the feed still retrieves, wait for a task or a new series, whichever first."""
        while feed is not None and not feed.done:
            refill()
            got = pending.next_batch(block=False)
            if got:
                return list(got)
            feed.wait(0.05)
        refill()
        return [next(pending)] if in_flight else []

    try:
        refill()
        last_threads_check = time.monotonic()
        while batch := next_done():
            for fut in batch:
                unit, ran = in_flight.pop(fut.key)
                res, lost = _result_of(fut, unit, ran)
                fut.release()
                res.models += rejected_of.pop(unit.key, [])
                writer.add(rows_of(res, forced=opts.force, job_id=job_id))
                summary.task_s += res.load_s + sum(m.infer_s for m in res.models)
                _account(prog, summary, res, lost)
                prog.elapsed_s = time.perf_counter() - t0
                if on_progress is not None:
                    on_progress(prog)
                if time.monotonic() - last_threads_check > 2.0:  # workers may join or leave during the job
                    threads, last_threads_check = _threads(client), time.monotonic()
                refill()
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        if feed is not None:
            feed.close()
        writer.close()
        summary.parts_written, summary.rows_written = writer.parts_written, writer.rows_written
        prog.elapsed_s = time.perf_counter() - t0
        info = _workers(client)
        summary.workers, summary.threads = len(info), sum(info.values())
    summary.engine_setup_s = _engine_setup(client)
    return summary


def done_any(out: str) -> bool:
    from viewer.batch.results import part_files

    return bool(part_files(out))


def _result_of(fut: Any, unit: Unit, ran: Sequence[Any]) -> tuple[UnitResult, str]:
    """The task's UnitResult, or a stand-in with the reason when the task itself failed (worker lost)."""
    from distributed import KilledWorker

    try:
        return fut.result(), ""
    except KilledWorker as exc:
        why = f"workers died while running this series ({exc}); rerun with --resume to retry it"
    except Exception as exc:  # noqa: BLE001 - e.g. a result that could not be sent back: recorded, job goes on
        why = f"task failed: {type(exc).__name__}: {exc}"
    res = UnitResult(unit.key, unit.series_uid, unit.study_uid, unit.modality, unit.folder, 0, [], [], 0.0,
                     [ModelRows(s, LOST, why) for s in ran], "")
    return res, why


def _account(prog: Progress, summary: Summary, res: UnitResult, lost: str) -> None:
    prog.series_done += 1
    failed = [m for m in res.models if m.status != "ok"]
    prog.slices += sum(len(m.slices) for m in res.models if m.status == "ok")
    if lost or failed:
        prog.series_failed += 1
        reason = lost or "; ".join(f"{m.model.id}: {m.reason}" for m in failed)
        prog.last_failure = reason
        summary.failures.append({"unit_key": res.key, "series_instance_uid": res.series_uid,
                                 "folder": res.folder, "status": LOST if lost else "failed", "reason": reason})


def _workers(client: Any) -> dict[str, int]:
    try:
        return {str(k): int(v) for k, v in client.nthreads().items()}
    except Exception:  # noqa: BLE001 - the cluster went away; counts are informative only
        return {}


def _threads(client: Any) -> int:
    return max(1, sum(_workers(client).values()))


def _engine_setup(client: Any) -> dict[str, float]:
    """Seconds each worker spent materialising models and starting sessions (the engine's own cost)."""
    def setup_seconds() -> float:
        from viewer.batch import models

        return float(models.setup_seconds)

    try:
        return {str(k): float(v) for k, v in client.run(setup_seconds).items()}
    except Exception:  # noqa: BLE001 - informative only
        return {}
