"""``batch evaluate``: score a results folder against labels, with the metrics of ``evaluate``.

Labels come from a CSV with a ``label`` column and the image's key: ``sop_instance_uid`` (or ``sop_uid``,
with an optional 1-based ``frame``) for a slice label, else ``series_instance_uid`` (or ``series_uid``)
for a series label. The viewer's own label export (:mod:`viewer.annotations.tabular`) has these columns,
so a labelled cohort is scored as it is exported; a label set may be chosen with ``label_set``.

A slice label is matched to that slice's row; a series label to the series' prediction, which is the mean
of its slices' probabilities (the class the model's operating point decides from that mean is the series' label). Only ``ok`` rows count;
labels naming classes the model lacks are counted in ``skipped_labels``, labels of images not in the
results in ``unmatched``. Scoring is :func:`viewer.core.metrics.classification_report`, as in ``evaluate``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from viewer.batch.export import class_names_by_model
from viewer.batch.results import OK, read_results
from viewer.core.decision import decide

_SOP = ("sop_instance_uid", "sop_uid")
_SERIES = ("series_instance_uid", "series_uid")


def read_label_csv(path: str | os.PathLike[str]) -> tuple[dict[tuple[str, int], str], dict[str, str]]:
    """(slice labels by (SOP Instance UID, frame), series labels by Series Instance UID) of a labels CSV."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"label file {p} not found")
    slices: dict[tuple[str, int], str] = {}
    series: dict[str, str] = {}
    with open(p, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        if "label" not in cols:
            raise ValueError(f"{p}: no 'label' column (columns: {', '.join(cols) or 'none'})")
        sop_col = next((cols[c] for c in _SOP if c in cols), None)
        ser_col = next((cols[c] for c in _SERIES if c in cols), None)
        if sop_col is None and ser_col is None:
            raise ValueError(f"{p}: needs a sop_instance_uid (per slice) or series_instance_uid (per series) column")
        frame_col = cols.get("frame")
        for line, row in enumerate(reader, start=2):
            label = (row.get(cols["label"]) or "").strip()
            if not label:
                raise ValueError(f"{p} line {line}: empty label")
            sop = (row.get(sop_col) or "").strip() if sop_col else ""
            if sop:
                frame_text = (row.get(frame_col) or "").strip() if frame_col else ""
                try:
                    frame = int(frame_text) if frame_text else 1
                except ValueError:
                    raise ValueError(f"{p} line {line}: frame {frame_text!r} is not a number") from None
                slices[(sop, frame)] = label
                continue
            uid = (row.get(ser_col) or "").strip() if ser_col else ""
            if not uid:
                raise ValueError(f"{p} line {line}: neither a SOP Instance UID nor a Series Instance UID")
            series[uid] = label
    if not slices and not series:
        raise ValueError(f"{p} holds no labels")
    return slices, series


def evaluate_results(results: str | os.PathLike[str], labels: str | os.PathLike[str], *,
                     model: str | None = None) -> list[dict[str, Any]]:
    """One report per model in ``results`` (or only ``model``): classification_report's keys plus
    ``model``, ``model_version``, ``model_sha256``, ``results``, ``labels``, ``slice_labels``,
    ``series_labels`` (how many were scored), ``skipped_labels``, ``unmatched`` and ``disagreements``."""
    import pyarrow.compute as pc

    from viewer.core.metrics import classification_report

    slice_labels, series_labels = read_label_csv(labels)
    table = read_results(results)
    # a classifier's rows (an image-to-image model's one row per series has no slice and no probabilities)
    table = table.filter(pc.and_(pc.equal(table.column("status"), OK), pc.is_valid(table.column("slice"))))
    if model is not None:
        table = table.filter(pc.equal(table.column("model_id"), model))
    if table.num_rows == 0:
        raise ValueError(f"{results} holds no successful predictions" + (f" of model {model!r}" if model else ""))
    reports = []
    for sha, names in class_names_by_model(table).items():
        rows = table.filter(pc.equal(table.column("model_sha256"), sha))
        reports.append(_score(rows, names, slice_labels, series_labels, classification_report)
                       | {"results": str(results), "labels": str(labels)})
    return reports


def _score(rows: Any, names: list[str], slice_labels: dict[tuple[str, int], str], series_labels: dict[str, str],
           report: Any) -> dict[str, Any]:
    cols = rows.select(["model_id", "model_version", "model_sha256", "series_instance_uid", "sop_instance_uid",
                        "frame", "slice", "folder", "probabilities", "threshold", "bias"]).to_pydict()
    probs = np.asarray(cols["probabilities"], dtype=np.float64)
    # (label, scores, where) of every label that names an image of the results
    matches: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    index = {(s, f): i for i, (s, f) in enumerate(zip(cols["sop_instance_uid"], cols["frame"]))}
    for key, label in slice_labels.items():
        i = index.get(key)
        if i is not None:
            matches.append((label, probs[i], {"series_instance_uid": cols["series_instance_uid"][i],
                                              "sop_instance_uid": key[0], "frame": key[1], "slice": cols["slice"][i],
                                              "folder": cols["folder"][i]}))
    matched_slices = len(matches)
    by_series: dict[str, list[int]] = {}
    for i, uid in enumerate(cols["series_instance_uid"]):
        by_series.setdefault(uid, []).append(i)
    for uid, label in series_labels.items():
        idx = by_series.get(uid)
        if idx:
            matches.append((label, probs[idx].mean(axis=0), {"series_instance_uid": uid, "sop_instance_uid": None,
                                                             "frame": None, "slice": None,
                                                             "folder": cols["folder"][idx[0]]}))
    matched_series = len(matches) - matched_slices
    scored = [m for m in matches if m[0] in names]
    skipped = len(matches) - len(scored)
    y_true = [names.index(label) for label, _, _ in scored]
    scores = [score for _, score, _ in scored]
    where = [w for _, _, w in scored]
    n_labels = len(slice_labels) + len(series_labels)
    head = {"model": cols["model_id"][0], "model_version": cols["model_version"][0],
            "model_sha256": cols["model_sha256"][0]}
    if not y_true:
        raise ValueError(f"none of the {n_labels} labels matches an image of model {head['model']}'s results "
                         f"with one of its classes ({matched_slices + matched_series} matched an image; labels "
                         "are matched by SOP Instance UID and frame, or by Series Instance UID)")
    s = np.stack(scores)
    # the model's operating point, as the rows' labels were decided (viewer.core.decision)
    threshold, bias = cols["threshold"][0], cols["bias"][0]
    top = decide(s, threshold, bias)
    disagreements = [w | {"label": names[t], "predicted": names[p], "probability": float(s[i, p])}
                     for i, (w, t, p) in enumerate(zip(where, y_true, top)) if t != p]
    return head | {"slice_labels": matched_slices, "series_labels": matched_series, "skipped_labels": skipped,
                   "unmatched": n_labels - matched_slices - matched_series,
                   **report(np.asarray(y_true), s, names, threshold=threshold, bias=bias),
                   "disagreements": disagreements}
