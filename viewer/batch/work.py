"""One task of a batch job: load a series, run each model on every slice, return the rows.

Runs in a worker process. Loading uses the scanner's header records and decodes in this process only
(``workers=1``): the job's parallelism is one task per worker thread, and two threads per worker process
make decode (holds the GIL) and inference (ONNX Runtime releases it) of different series overlap.

Nothing a series holds stops the job: every failure (a file that does not decode, geometry the loader
refuses, a model that does not apply without ``force``) becomes a ``failed`` row with its reason.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.batch.models import ModelSpec, RunOptions, session_for
from viewer.batch.sources import Unit


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


def infer_unit(unit: Unit, specs: Sequence[ModelSpec], opts: RunOptions) -> UnitResult:
    """Load ``unit`` and run ``specs`` on every slice (see module doc). Never raises for the data's sake."""
    from viewer.ai import applicability
    from viewer.ai.runner import classify_slices

    worker = f"{socket.gethostname()}:{os.getpid()}"
    res = UnitResult(unit.key, unit.series_uid, unit.study_uid, unit.modality, unit.folder, 0, [], [], 0.0, [],
                     worker)
    t0 = time.perf_counter()
    try:
        vol = load_unit(unit)
    except Exception as exc:  # noqa: BLE001 - any file may break the loader in its own way; recorded
        res.load_s = time.perf_counter() - t0
        res.load_error = _reason(exc)
        res.models = [ModelRows(s, "failed", f"load: {res.load_error}") for s in specs]
        return res
    res.load_s = time.perf_counter() - t0
    info = vol.info
    res.n_slices = int(vol.shape[0])
    res.modality = vol.modality or unit.modality
    res.study_uid = info.study_uid or unit.study_uid
    slices = info.slices if len(info.slices) == res.n_slices else ()
    res.sop_uids = [s.sop_instance_uid for s in slices] or [""] * res.n_slices
    # 1-based DICOM frame number, as the label files key images (viewer.annotations.roi_geometry.slice_keys)
    res.frames = [1 if s.frame is None else s.frame + 1 for s in slices] or [1] * res.n_slices
    res.warnings = list(vol.warnings)
    for spec in specs:
        t1 = time.perf_counter()
        try:
            session = session_for(spec, opts)
            ok, why = applicability(session.manifest, vol)
            if not ok and not opts.force:
                res.models.append(ModelRows(spec, "failed", f"not applicable: {why} (use --force to run it anyway)",
                                            session.provider))
                continue
            preds = classify_slices(session, vol)
            res.models.append(ModelRows(spec, "ok", provider=session.provider, labels=tuple(preds.labels),
                                        slices=np.asarray(preds.indices, dtype=np.int32),
                                        probabilities=np.asarray(preds.probabilities, dtype=np.float32),
                                        infer_s=time.perf_counter() - t1, forced_reason="" if ok else why))
        except Exception as exc:  # noqa: BLE001 - a model failing on one series must not stop the job
            res.models.append(ModelRows(spec, "failed", f"inference: {_reason(exc)}"))
    return res
