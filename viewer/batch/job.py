"""The driver of a batch job: clusters, task submission, results, progress.

:func:`local_cluster` starts a Dask ``LocalCluster`` of worker *processes* (decoders and ORT hold the GIL
differently; threads in one process would serialise the decoders); :func:`connect` joins a cluster started
with ``dask scheduler`` / ``dask worker``. :func:`run_job` runs the units on a client's cluster: it keeps
a bounded number of tasks in flight (a few per worker thread), so the scheduler holds a window of the job,
never all of it, and the memory of the scheduler and of the writer stays flat with the archive's size; a
task is one series, or several small ones packed (:func:`next_pack`).
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
from viewer.batch.work import ModelRows, TuneWorker, UnitResult, infer_unit, results_of_pack, run_pack, ship

#: Tasks in flight per worker thread: enough that no worker waits for the driver, few enough that the
#: scheduler's memory does not grow with the archive.
IN_FLIGHT_PER_THREAD = 2
#: Small series travel together: a task costs the engine ~12 ms of CPU (scheduler, transfers, result),
#: more than a one-image series' whole work (~7 ms for a CT slice), so consecutive series are packed into
#: one task up to this many files, at most PACK_MAX_SERIES of them, and never so many that the job has
#: fewer than PACK_TASKS_PER_THREAD tasks per worker thread left to balance.
PACK_FILES = 64
PACK_MAX_SERIES = 32
PACK_TASKS_PER_THREAD = 4
THREADS_PER_WORKER = 2  # one series decoding while another is in ONNX Runtime (see viewer.batch.work)
#: Dask settings of the clusters this module starts. Idle, a 1-worker cluster with Dask's defaults burns
#: 0.05 of a core (measured: 23 ms/s in the driver, 29 in the worker), most of it the worker's statistical
#: profiler sampling every 10 ms (also while idle), the scheduler's 20 ms event-loop tick and the 100 ms
#: memory monitors of nanny and worker; with these, 8 ms/s. The price: no Profile page on the dashboard (a
#: cluster of one's own, ``--scheduler``, keeps whatever it was started with), a blocked event loop noticed
#: after a 1 s tick, and memory limits checked every 0.5 s.
LOCAL_CLUSTER_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
                        "distributed.admin.system-monitor.interval": "2s",
                        "distributed.worker.memory.monitor-interval": "500ms"}
#: Dask keeps its last 1,000 messages per connection (and 1,000 task events per worker) for debugging, each
#: message under 1 MB kept whole. A task carries its series' header records (~0.75 KB a file), so those
#: logs held up to ~100 MB per worker connection and grew with the job (measured: the scheduler +3.3 MB per
#: 1,000 one-file series); 100 bounds them at a tenth. Set in every process this module starts or connects
#: from; `dask scheduler` / `dask worker` take it from DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH=100.
LOG_CONFIG = {"distributed.admin.low-level-log-length": 100}


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
    task_cpu_s: float = 0.0  # sum over tasks of their threads' CPU time (the work; the engine's is the rest)
    dashboard: str = ""
    workers: int = 0
    threads: int = 0
    parts_written: int = 0
    rows_written: int = 0
    interrupted: bool = False


def local_cluster(workers: int | None = None, *, threads_per_worker: int = THREADS_PER_WORKER,
                  dashboard: bool = True) -> Any:
    """A ``distributed.LocalCluster`` of ``workers`` processes (default: one per usable core), set up with
    :data:`LOCAL_CLUSTER_CONFIG` (its workers take the configuration they are started with)."""
    import dask
    from distributed import LocalCluster

    from viewer.ai.session import default_threads

    n = workers or default_threads()
    address = "127.0.0.1:0" if dashboard and _has_bokeh() else None
    with dask.config.set({**LOCAL_CLUSTER_CONFIG, **LOG_CONFIG}):
        return LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                            dashboard_address=address, host="127.0.0.1", silence_logs=logging.ERROR)


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def connect(address: str, timeout_s: float = 30.0) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address`` (``tcp://host:8786``), with :data:`LOG_CONFIG`."""
    import dask
    from distributed import Client

    with dask.config.set(LOG_CONFIG):
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
    client.register_plugin(TuneWorker())
    client.register_plugin(ShipModels(manifests, opts))
    pending = as_completed()
    in_flight: dict[str, list[tuple[Unit, list[Any]]]] = {}
    threads = _threads(client)
    n_submitted = 0

    prog_fed_skipped = [0]  # series the feed skipped (done before), counted into prog so far
    prog_fed_failed = [0]  # series the feed could not retrieve, counted into prog so far

    def refill() -> None:
        nonlocal n_submitted, n_fed
        window = max(2, IN_FLIGHT_PER_THREAD * threads)
        if feed is not None and len(todo) < window:  # PACS series stored meanwhile join the job
            fed = feed.take(window - len(todo))
            n_fed += len(fed)
            for u in fed:
                admit(u)
            skipped, failed = feed.skipped, feed.failed
            prog.series_total = len(units) + n_fed + feed.remaining + skipped + len(failed)
            prog.series_skipped += skipped - prog_fed_skipped[0]
            prog_fed_skipped[0] = skipped
            for rec in failed[prog_fed_failed[0]:]:  # not retrieved: failed here, no rows (--resume asks again)
                prog_fed_failed[0] += 1
                res = UnitResult(rec.series_instance_uid, rec.series_instance_uid, "", "", rec.source, 0, [], [], 0.0,
                                 [], "")
                _account(prog, summary, res, f"{rec.reason} (no rows written: --resume retries it)", status="failed")
        while todo and len(in_flight) < window:
            pack = next_pack(todo, threads)
            fut = client.submit(run_pack, task, ship(pack), opts, *extra, key=f"viewer-batch-{job_id}-{n_submitted}",
                                pure=False)
            n_submitted += 1
            in_flight[fut.key] = pack
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
                pack = in_flight.pop(fut.key)
                results, lost = _results_of(fut, pack)
                fut.release()
                for (unit, _), res in zip(pack, results):
                    res.models += rejected_of.pop(unit.key, [])
                    writer.add(rows_of(res, forced=opts.force, job_id=job_id))
                    summary.task_s += res.load_s + sum(m.infer_s for m in res.models)
                    summary.task_cpu_s += res.cpu_s
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


def next_pack(todo: deque[tuple[Unit, list[Any]]], threads: int) -> list[tuple[Unit, list[Any]]]:
    """The next task's series, taken from the front of ``todo``: one, or consecutive small ones packed
    (see :data:`PACK_FILES`)."""
    most = max(1, min(PACK_MAX_SERIES, len(todo) // (PACK_TASKS_PER_THREAD * threads)))
    pack = [todo.popleft()]
    files = len(pack[0][0].files)
    while todo and len(pack) < most and files + len(todo[0][0].files) <= PACK_FILES:
        files += len(todo[0][0].files)
        pack.append(todo.popleft())
    return pack


def _results_of(fut: Any, pack: Sequence[tuple[Unit, Sequence[Any]]]) -> tuple[list[UnitResult], str]:
    """The task's UnitResults, or stand-ins with the reason when the task itself failed (worker lost)."""
    from distributed import KilledWorker

    try:
        return results_of_pack(fut.result()), ""
    except KilledWorker as exc:
        why = f"workers died while running this series ({exc}); rerun with --resume to retry it"
    except Exception as exc:  # noqa: BLE001 - e.g. a result that could not be sent back: recorded, job goes on
        why = f"task failed: {type(exc).__name__}: {exc}"
    return [UnitResult(unit.key, unit.series_uid, unit.study_uid, unit.modality, unit.folder, 0, [], [], 0.0,
                       [ModelRows(s, LOST, why) for s in ran], "") for unit, ran in pack], why


def _account(prog: Progress, summary: Summary, res: UnitResult, lost: str, status: str = LOST) -> None:
    """Count ``res`` into ``prog``; a failure, with ``lost`` (why the task itself failed; recorded with
    ``status``) or its models' reasons, into ``summary.failures``."""
    prog.series_done += 1
    failed = [m for m in res.models if m.status != "ok"]
    prog.slices += sum(len(m.slices) for m in res.models if m.status == "ok")
    if lost or failed:
        prog.series_failed += 1
        reason = lost or "; ".join(f"{m.model.id}: {m.reason}" for m in failed)
        prog.last_failure = reason
        summary.failures.append({"unit_key": res.key, "series_instance_uid": res.series_uid,
                                 "folder": res.folder, "status": status if lost else "failed", "reason": reason})


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
