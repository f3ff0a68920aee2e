"""``evaluate --labels``: score a model against the labels users set in the viewer.

The labels come from a CSV/JSON export (:mod:`viewer.annotations.tabular`) or a label store (SQLite,
``.db``/``.sqlite``). Labels are keyed by DICOM UIDs, not paths, so the images are found by loading the
series given with ``--series`` and matching each slice's (Study, Series, SOP Instance UID, frame) to the
labels (:func:`viewer.annotations.roi_geometry.slice_keys`). Each labelled slice goes through the model
exactly as in the viewer (:func:`viewer.ai.runner.classify_slices`).

Only labels whose name is one of the model's output classes are scored; the others are counted in
``skipped_labels`` (a label set may hold more classes than the model knows).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def read_labels(path: Path, label_set: str | None = None) -> list[Any]:
    """The :class:`~viewer.annotations.model.Label` rows of a CSV/JSON export or a label store.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; unknown suffix or a malformed file (the reader's message names the row).
    """
    from viewer.annotations.store import LabelStore
    from viewer.annotations.tabular import read_labels_csv, read_labels_json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        labels = read_labels_csv(path)
    elif suffix == ".json":
        labels, _rois = read_labels_json(path)
    elif suffix in STORE_SUFFIXES:
        with LabelStore(path) as store:
            labels = store.labels(label_set)
    else:
        raise ValueError(f"{path}: a label file is .csv, .json or a label store ({', '.join(STORE_SUFFIXES)})")
    if label_set is not None:
        labels = [lab for lab in labels if lab.label_set == label_set]
    return list(labels)


def evaluate_labels(model: str | Path, labels_file: Path, series: Sequence[str | Path], *, device: str = "cpu",
                    label_set: str | None = None, force: bool = False) -> dict[str, Any]:
    """Score ``model`` on the labelled slices of ``series``.

    Returns
    -------
    dict
        :func:`viewer.core.metrics.classification_report` (n, accuracy, auc, ece, confusion_matrix with
        rows = true, per_class, class_names) plus ``model``, ``model_version``, ``labels`` (the file),
        ``provider``, ``skipped_labels`` (labels of classes the model lacks), ``unmatched`` (labels of
        images not found in ``series``) and ``disagreements``: one dict per slice where the model's top
        class differs from the label (study/series/sop uid, frame, z, series path, label, predicted,
        probability of the predicted class).
    """
    import numpy as np

    from viewer.ai.manifest import load_manifest
    from viewer.ai.runner import classify_slices
    from viewer.ai.session import ModelSession
    from viewer.annotations.roi_geometry import slice_keys
    from viewer.commands.evaluate import resolve_model
    from viewer.core.decision import decide
    from viewer.core.metrics import classification_report
    from viewer.io import load_series

    manifest = load_manifest(resolve_model(str(model)))
    names = list(manifest.output.labels)
    labels = read_labels(Path(labels_file), label_set)
    if not labels:
        raise ValueError(f"{labels_file} holds no labels" + (f" of label set {label_set!r}" if label_set else ""))
    if not series:
        raise ValueError("--labels needs the images: give --series PATH (a folder or files of the labelled series)")
    scored = [lab for lab in labels if lab.label in names]
    skipped = len(labels) - len(scored)
    by_key = {lab.key: lab for lab in scored}

    session = ModelSession.get(manifest, device)
    y_true: list[int] = []
    scores: list[np.ndarray] = []
    where: list[tuple[Any, int, str]] = []
    found: set[Any] = set()
    for path in series:
        volume = load_series(str(path))
        modality = (volume.modality or "").upper()
        if not force and modality not in manifest.applies_to.modalities:
            raise ValueError(f"{path} is {modality or 'of no modality'}, but model {manifest.id!r} is for "
                             f"{', '.join(manifest.applies_to.modalities)} (--force to score anyway)")
        keys = slice_keys(volume)
        zs = [z for z, k in enumerate(keys) if k in by_key]
        if not zs:
            continue
        pred = classify_slices(session, volume, zs)
        for row, z in enumerate(zs):
            lab = by_key[keys[z]]
            found.add(keys[z])
            y_true.append(names.index(lab.label))
            scores.append(pred.probabilities[row])
            where.append((keys[z], z, str(path)))
    if not y_true:
        raise ValueError(f"none of the {len(scored)} labels of the model's classes names an image of "
                         f"{', '.join(str(s) for s in series)} (labels are matched by Study/Series/SOP "
                         f"Instance UID and frame)")
    s = np.stack(scores).astype(np.float64)
    report = classification_report(np.asarray(y_true), s, names, threshold=manifest.output.threshold,
                                   bias=manifest.output.bias)
    top = decide(s, manifest.output.threshold, manifest.output.bias)
    disagreements = [
        {"study_uid": key.study_uid, "series_uid": key.series_uid, "sop_uid": key.sop_uid, "frame": key.frame,
         "z": z, "series": spath, "label": names[t], "predicted": names[p], "probability": float(s[i, p])}
        for i, ((key, z, spath), t, p) in enumerate(zip(where, y_true, top)) if t != p]
    return {"model": manifest.id, "model_version": manifest.version, "labels": str(labels_file),
            "dataset": str(labels_file), "split": "labels", "provider": session_provider(session),
            "decision_rule": manifest.output.decision, "skipped_labels": skipped, "unmatched": len(scored) - len(found), **report,
            "disagreements": disagreements}


def session_provider(session: Any) -> str:
    """The execution provider a session runs on ("CPUExecutionProvider", ...), "" when unknown."""
    provider = getattr(session, "provider", "")
    return str(provider or "")


def text_report(r: dict[str, Any]) -> str:
    """The plain-text report: the dataset report of ``evaluate`` and the disagreements."""
    from viewer.commands.evaluate import _text

    lines = [_text(r)]
    if r.get("skipped_labels") or r.get("unmatched"):
        lines.append(f"\n{r['skipped_labels']} labels not among the model's classes, "
                     f"{r['unmatched']} labels of images not in --series")
    lines.append(f"\ndisagreements ({len(r['disagreements'])}):")
    for d in r["disagreements"]:
        lines.append(f"  {d['series']} z={d['z']} sop={d['sop_uid']} frame={d['frame']}: label {d['label']}, "
                     f"model {d['predicted']} ({d['probability']:.3f})")
    return "\n".join(lines)
