"""DICOM outputs of a batch job, written by the task that ran the series, and sent to a PACS node.

``batch infer ... --sr FOLDER``: per series and classifier, one DICOM SR of the model's findings
(:mod:`viewer.annotations.findings_sr`: the decided class of every image, as the rows' ``label``) at
``FOLDER/<model id>/<series key>.dcm``. Its UIDs derive from the series, the model's SHA-256 and its
operating point, so a rerun (``--resume`` after a kill) writes, and sends, the same instance again.

``--dicom-out FOLDER``: an image-to-image model (a denoiser) writes its output as a derived series, as
``infer --model ct-denoise --out DIR`` does (:func:`viewer.io.derived.write_derived_series`: new Series
and SOP Instance UIDs, ImageType DERIVED\\SECONDARY, uncompressed so lossless, the source image referenced),
at ``FOLDER/<model id>/<series key>/``. Such a model needs ``--dicom-out``; it has no class rows.

``--send NODE`` (``dimse://AE@host:port``, a DICOMweb URL or a saved node's name): each series' outputs
are sent (C-STORE / STOW-RS, :mod:`viewer.io.pacs`) as soon as the task has written them. A send that
fails is recorded in that series' rows (``send_status`` ``failed``, ``send_error``) and the job goes on;
``pacs send FOLDER`` sends them later.

Everything runs in the worker that ran the series (:func:`run_unit` is the task), which reads the sources
already: FOLDER must be a path the workers can write (a local cluster: any; other machines: a shared file
system), as the SOURCEs must be paths they can read. A failure to write is recorded (``output_error``),
never fatal to the job.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viewer.batch.models import ModelSpec, RunOptions
from viewer.batch.sources import Unit
from viewer.batch.work import ModelRows, UnitResult, _reason, applicable_session, infer_unit, start_unit

IMAGE_TO_IMAGE = "image-to-image"


@dataclass(frozen=True)
class OutputOptions:
    """Where a job's DICOM outputs go (see module doc); all None: rows only."""

    sr_dir: str | None = None
    dicom_dir: str | None = None
    send: str | None = None
    ae_title: str = "DICOMVIEWER"

    @property
    def wanted(self) -> bool:
        return bool(self.sr_dir or self.dicom_dir)


@dataclass
class SeriesOutput:
    """What one model wrote (and sent) for one series; the ``output_*``/``send_*`` result columns."""

    kind: str  # "sr" | "dicom"
    series_uid: str = ""
    path: str = ""
    ms: float = 0.0
    error: str = ""
    send_status: str | None = None  # None: not asked; "sent" | "failed"
    send_error: str = ""
    send_ms: float = 0.0

    def columns(self) -> dict[str, Any]:
        return {"output_kind": self.kind, "output_series_uid": self.series_uid or None,
                "output_path": self.path or None, "output_ms": self.ms, "output_error": self.error or None,
                "send_status": self.send_status, "send_error": self.send_error or None,
                "send_ms": self.send_ms if self.send_status else None}


def is_image_to_image(spec: ModelSpec) -> bool:
    return spec.task == IMAGE_TO_IMAGE


def safe_name(key: str) -> str:
    """A unit key (a UID, or ``UID#hash``) as a file name."""
    return re.sub(r"[^0-9A-Za-z._#-]", "_", key) or "series"


def run_unit(unit: Unit, specs: Sequence[ModelSpec], opts: RunOptions, outputs: OutputOptions) -> UnitResult:
    """The task of a job with DICOM outputs: classifiers as :func:`~viewer.batch.work.infer_unit` plus
    their SR, image-to-image models with their derived series; then the send. Never raises for the data."""
    classifiers = [s for s in specs if not is_image_to_image(s)]
    derivers = [s for s in specs if is_image_to_image(s)]
    res = infer_unit(unit, classifiers, opts) if classifiers else None
    if derivers:
        derived = derive_unit(unit, derivers, opts, outputs)
        if res is None:
            res = derived
        else:
            res.models += derived.models
            res.outputs.update(derived.outputs)
    assert res is not None  # specs is never empty (the driver sends only units with work)
    if outputs.sr_dir:
        for mr in res.models:
            if mr.status == "ok" and not is_image_to_image(mr.model):
                res.outputs[mr.model.sha256] = write_findings_sr(unit, res, mr, outputs.sr_dir)
    if outputs.send:
        for out in res.outputs.values():
            if out.path and not out.error:
                send_output(out, outputs)
    return res


def write_findings_sr(unit: Unit, res: UnitResult, mr: ModelRows, sr_dir: str) -> SeriesOutput:
    """The SR of ``mr``'s findings on the unit (see module doc); errors are recorded in the output."""
    from viewer.annotations.findings_sr import (
        Algorithm,
        ImageFinding,
        ImageRef,
        build_findings_sr,
        derived_uid,
        source_datasets,
    )
    from viewer.core.atomic import write_atomically
    from viewer.core.decision import decide, describe
    from viewer.io.rawread import read_header_dataset

    spec = mr.model
    point = f"{spec.threshold}|{spec.bias}"
    out = SeriesOutput("sr", series_uid=derived_uid("batch-sr-series", res.key, spec.sha256, point))
    t0 = time.perf_counter()
    try:
        decided = decide(mr.probabilities, spec.threshold, spec.bias)
        findings = []
        for i, k in enumerate(int(k) for k in mr.slices):
            if k >= len(res.sop_uids) or not res.sop_uids[k]:
                raise ValueError(f"slice {k} has no SOP Instance UID; an SR cannot reference it")
            findings.append(ImageFinding(res.sop_uids[k], res.frames[k], mr.labels[int(decided[i])],
                                         {lab: float(p) for lab, p in zip(mr.labels, mr.probabilities[i])}))
        first = read_header_dataset(unit.files[0])
        refs = [ImageRef(r.sop_class_uid, r.sop_uid, r.series_uid, r.study_uid, r.frames) for r in unit.records]
        sources = source_datasets(first, refs) if refs else [read_header_dataset(f) for f in unit.files]
        algo = Algorithm(spec.id, spec.version, spec.id, (describe(mr.labels, spec.threshold, spec.bias),))
        ds = build_findings_sr(sources, findings, algo, series_uid=out.series_uid,
                               sop_uid=derived_uid("batch-sr", res.key, spec.sha256, point))
        path = Path(sr_dir) / safe_name(spec.id) / f"{safe_name(res.key)}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda tmp: ds.save_as(str(tmp), enforce_file_format=True))
        out.path = str(path)
    except Exception as exc:  # noqa: BLE001 - e.g. a series without UIDs, an unwritable folder: recorded
        out.error = f"SR not written: {_reason(exc)}"
    out.ms = (time.perf_counter() - t0) * 1000.0
    return out


def derive_unit(unit: Unit, specs: Sequence[ModelSpec], opts: RunOptions, outputs: OutputOptions) -> UnitResult:
    """Run image-to-image ``specs`` on the unit and write each output as a derived series (module doc)."""
    from viewer.ai.image_to_image import run_on_volume
    from viewer.io.derived import write_derived_series
    from viewer.io.rawread import read_header_dataset

    res, vol = start_unit(unit, specs)
    if vol is None:
        return res
    files = list(vol.info.files)
    for spec in specs:
        t1 = time.perf_counter()
        try:
            run = applicable_session(spec, opts, vol, res)
            if run is None:
                continue
            session, forced = run
            if not outputs.dicom_dir:
                raise ValueError("an image-to-image model needs --dicom-out FOLDER for its output series")
            if len(files) != res.n_slices or len(set(files)) != len(files):
                raise ValueError("the series is not one single-frame file per slice; cannot write it as DICOM")
            values = run_on_volume(session, vol)
            infer_s = time.perf_counter() - t1
            m = session.manifest
            folder = Path(outputs.dicom_dir) / safe_name(spec.id) / safe_name(unit.key)
            t2 = time.perf_counter()
            desc = (vol.info.series_description or vol.modality or "series") + f" [{m.id}]"
            written = write_derived_series(files, values, folder, description=desc,
                                           derivation=f"{m.title}: {m.intended_use}")
            out = SeriesOutput("dicom", series_uid=str(read_header_dataset(str(written[0])).SeriesInstanceUID),
                               path=str(folder), ms=(time.perf_counter() - t2) * 1000.0)
            res.outputs[spec.sha256] = out
            res.models.append(ModelRows(spec, "ok", provider=session.provider, infer_s=infer_s,
                                        forced_reason=forced))
        except Exception as exc:  # noqa: BLE001 - a model failing on one series must not stop the job
            res.models.append(ModelRows(spec, "failed", f"inference: {_reason(exc)}"))
    return res


def send_output(out: SeriesOutput, outputs: OutputOptions) -> None:
    """Send ``out``'s file(s) to ``outputs.send``; the outcome goes into ``out`` (never raises)."""
    from viewer.io.pacs import DimseNode, parse_node
    from viewer.io.pacs import dimse, web

    t0 = time.perf_counter()
    path = Path(out.path)
    files = [str(path)] if path.is_file() else sorted(str(p) for p in path.glob("*.dcm"))
    try:
        node = parse_node(outputs.send or "")
        if isinstance(node, DimseNode):
            sent, problems = dimse.send_files(node, outputs.ae_title, files)
        else:
            sent, problems = web.send_files(node, files)
        if sent == len(files) and not problems:
            out.send_status = "sent"
        else:
            out.send_status = "failed"
            out.send_error = f"{sent} of {len(files)} files stored: " + "; ".join(problems[:3])
    except Exception as exc:  # noqa: BLE001 - a PACS that refuses or is down: recorded, the job goes on
        out.send_status, out.send_error = "failed", _reason(exc)
    out.send_ms = (time.perf_counter() - t0) * 1000.0
