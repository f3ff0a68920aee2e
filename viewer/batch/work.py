"""One task of a batch job: load a series, run each model on every slice, return the rows.

Runs in a worker process. Loading uses the scanner's header records and decodes in this process only
(``workers=1``): the job's parallelism is one task per worker thread, and two threads per worker process
make decode (holds the GIL) and inference (ONNX Runtime releases it) of different series overlap.

Nothing a series holds stops the job: every failure (a file that does not decode, geometry the loader
refuses, a model that does not apply without ``force``) becomes a ``failed`` row with its reason.

:class:`TuneWorker` sets up each worker process once for this work (see :func:`restore_malloc_defaults`).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from distributed import WorkerPlugin

from viewer.batch.models import ModelSpec, RunOptions, session_for
from viewer.batch.sources import Unit
from viewer.core.volume import Volume


@dataclass
class ModelRows:
    """What one model said about one unit: per slice (``ok``) or why nothing (``failed``)."""

    model: ModelSpec
    status: str  # "ok" | "failed"
    reason: str = ""
    provider: str = ""
    labels: tuple[str, ...] = ()
    slices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    infer_s: float = 0.0
    forced_reason: str = ""  # why the model did not apply, when --force ran it anyway


@dataclass
class UnitResult:
    """A task's answer: the unit's identity, its per-slice keys, the load time and each model's rows."""

    key: str
    series_uid: str
    study_uid: str
    modality: str
    folder: str
    n_slices: int
    sop_uids: list[str]
    frames: list[int]
    load_s: float
    models: list[ModelRows]
    worker: str
    load_error: str = ""
    warnings: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # model SHA-256 -> viewer.batch.outputs.SeriesOutput
    cpu_s: float = 0.0  # CPU time of the task's thread for this unit (the work; the engine's share is the rest)


# glibc mallopt parameters (malloc.h) and the largest values its own dynamic threshold reaches on 64-bit
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20


def restore_malloc_defaults() -> bool:
    """Undo, in this process, what Dask's ``MALLOC_TRIM_THRESHOLD_=65536`` does to a series' arrays.

    A Dask nanny starts its worker with that variable (``distributed.nanny.pre-spawn-environ``) so that
    freed memory goes back to the OS. glibc then also stops raising its mmap threshold: every array over
    128 KiB (a slice, the preprocessing batches) is a fresh ``mmap`` whose pages are faulted in and zeroed
    again, task after task. Measured on the shared CT series: +19% CPU for the same task, system time
    0.9 -> 2.5 s. Setting the thresholds to the highest values glibc's own dynamic rule would reach (mmap
    32 MiB, trim twice that) gives the task its plain-process cost back and still returns memory beyond
    64 MiB of free heap. False where there is no glibc ``mallopt`` (not Linux, musl).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX))


class TuneWorker(WorkerPlugin):  # type: ignore[misc]  # distributed is not followed by mypy
    """Sets each worker process up for this work once, also one that joins or restarts later (see
    :func:`restore_malloc_defaults`); ``malloc_restored`` records, per process, whether it could."""

    name = "viewer-batch-tune"
    malloc_restored: bool | None = None

    def setup(self, worker: Any) -> None:
        TuneWorker.malloc_restored = restore_malloc_defaults()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if type(exc).__name__ in ("LoadError", "ModelError", "ManifestError") else f"{type(exc).__name__}: {text}"


def load_unit(unit: Unit) -> Any:
    """The unit's Volume, decoded in this process with the scanner's records (see module doc)."""
    from viewer.io.load import SeriesLoader

    loader = SeriesLoader(unit.files, series_uid=unit.series_uid, records=unit.records or None)
    vol = loader.load(workers=1)
    vol.warnings = list(unit.warnings) + vol.warnings
    return vol


def start_unit(unit: Unit, specs: Sequence[ModelSpec]) -> tuple[UnitResult, Volume | None]:
    """The unit's result record and its loaded Volume; on a load failure, the record says why for every
    model and the Volume is None (any file may break the loader in its own way; never raises for it)."""
    res = UnitResult(unit.key, unit.series_uid, unit.study_uid, unit.modality, unit.folder, 0, [], [], 0.0, [],
                     f"{socket.gethostname()}:{os.getpid()}")
    t0 = time.perf_counter()
    try:
        vol = load_unit(unit)
    except Exception as exc:  # noqa: BLE001 - recorded
        res.load_s = time.perf_counter() - t0
        res.load_error = _reason(exc)
        res.models = [ModelRows(s, "failed", f"load: {res.load_error}") for s in specs]
        return res, None
    res.load_s = time.perf_counter() - t0
    res.n_slices = int(vol.shape[0])
    res.modality = vol.modality or unit.modality
    res.study_uid = vol.info.study_uid or unit.study_uid
    res.warnings = list(vol.warnings)
    return res, vol


def applicable_session(spec: ModelSpec, opts: RunOptions, vol: Volume, res: UnitResult) -> tuple[Any, str] | None:
    """``spec``'s session of this worker and, when run under ``--force``, why it is out of scope; None (with
    the refusal recorded in ``res``) when the model does not apply and ``--force`` was not given."""
    from viewer.ai import applicability

    session = session_for(spec, opts)
    ok, why = applicability(session.manifest, vol)
    if not ok and not opts.force:
        res.models.append(ModelRows(spec, "failed", f"not applicable: {why} (use --force to run it anyway)",
                                    session.provider))
        return None
    return session, "" if ok else why


def infer_unit(unit: Unit, specs: Sequence[ModelSpec], opts: RunOptions) -> UnitResult:
    """Load ``unit`` and run ``specs`` on every slice (see module doc). Never raises for the data's sake."""
    from viewer.ai.runner import classify_slices

    res, vol = start_unit(unit, specs)
    if vol is None:
        return res
    info = vol.info
    slices = info.slices if len(info.slices) == res.n_slices else ()
    res.sop_uids = [s.sop_instance_uid for s in slices] or [""] * res.n_slices
    # 1-based DICOM frame number, as the label files key images (viewer.annotations.roi_geometry.slice_keys)
    res.frames = [1 if s.frame is None else s.frame + 1 for s in slices] or [1] * res.n_slices
    for spec in specs:
        t1 = time.perf_counter()
        try:
            run = applicable_session(spec, opts, vol, res)
            if run is None:
                continue
            session, forced = run
            preds = classify_slices(session, vol)
            res.models.append(ModelRows(spec, "ok", provider=session.provider, labels=tuple(preds.labels),
                                        slices=np.asarray(preds.indices, dtype=np.int32),
                                        probabilities=np.asarray(preds.probabilities, dtype=np.float32),
                                        infer_s=time.perf_counter() - t1, forced_reason=forced))
        except Exception as exc:  # noqa: BLE001 - a model failing on one series must not stop the job
            res.models.append(ModelRows(spec, "failed", f"inference: {_reason(exc)}"))
    return res


def ship(pack: Sequence[tuple[Unit, Sequence[ModelSpec]]]) -> bytes:
    """One task's series and models as the task carries them: pickled once, here.

    Dask hands a task's arguments on as objects: the client pickles them into the graph, the scheduler
    unpickles the graph and pickles each task again for its worker. For a pack of :class:`Unit` objects
    with their header records that cost the engine ~7 ms of CPU per task (measured on one 134-file series:
    driver 10.3 ms, worker side 3.9 ms per task, against 4.3 and 2.5 ms with the same pack as bytes), more
    than the pickling itself (~0.2 ms each way with the records in columns, see ``Unit.__getstate__``).
    Bytes travel through Dask untouched.
    """
    return pickle.dumps(list(pack), protocol=pickle.HIGHEST_PROTOCOL)


def run_pack(task: Callable[..., UnitResult], pack: bytes, opts: RunOptions, *extra: Any) -> bytes:
    """``task(unit, models, opts, *extra)`` (:func:`infer_unit`, or one that wraps it) for each (unit, models)
    of one Dask task (:func:`ship`), in order: small series travel together (see
    :func:`viewer.batch.job.next_pack`). The results come back pickled, for the reason :func:`ship` gives;
    :func:`results_of_pack` reads them."""
    units: list[tuple[Unit, Sequence[ModelSpec]]] = pickle.loads(pack)
    results = []
    for unit, specs in units:
        c0 = time.thread_time()  # loading and ONNX Runtime (one intra-op thread) run in this thread
        res = task(unit, specs, opts, *extra)
        res.cpu_s = time.thread_time() - c0
        results.append(res)
    return pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)


def results_of_pack(data: bytes) -> list[UnitResult]:
    """What :func:`run_pack` returned (the driver's side; the bytes come from the job's own workers)."""
    results: list[UnitResult] = pickle.loads(data)
    return results
