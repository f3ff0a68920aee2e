"""Plain (Qt-free) helpers of the labeling UI: the images a session labels, measurements <-> stored ROIs,
and scoring a model against the labels of one loaded series.

Conventions: volumes are (z, y, x) with an LPS affine; measurement points are LPS mm; ROI points are
image pixels (column, row) on one acquired slice (see :mod:`viewer.annotations.model`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from viewer.annotations.labelsets import LabelSet
from viewer.annotations.model import MEASUREMENT_KINDS, ImageKey, Label, Roi
from viewer.annotations.roi_geometry import roi_from_lps, roi_to_lps, slice_keys
from viewer.core.volume import Volume
from viewer.state.measurements import Measurement
from viewer.state.services import Inference, Manifest

# ROI kind -> measurement kind, the inverse of MEASUREMENT_KINDS.
ROI_TO_MEASUREMENT = {v: k for k, v in MEASUREMENT_KINDS.items()}


def session_images(volume: Volume, label_set: LabelSet) -> list[ImageKey]:
    """The keys a labeling session walks: one per slice, or the whole series for a series-scope set.

    Raises
    ------
    ValueError
        When the volume lacks per-slice instance UIDs (see :func:`slice_keys`).
    """
    if label_set.scope == "series":
        return [ImageKey.series(volume.info.study_uid, volume.series_uid)]
    return slice_keys(volume)


def measurement_to_roi(m: Measurement, volume: Volume, keys: Sequence[ImageKey], annotator: str,
                       roi_id: str | None = None) -> Roi:
    """The ROI saved for a measurement (same ``roi_id`` when re-saving an edit).

    Raises
    ------
    ValueError
        When the measurement was drawn in a reformatted plane (not on one acquired slice).
    """
    fields: dict[str, Any] = {"annotator": annotator}
    if roi_id is not None:
        fields["roi_id"] = roi_id
    return roi_from_lps(m.kind, m.points, volume, keys, **fields)


def roi_to_measurement(roi: Roi, volume: Volume, keys: Sequence[ImageKey]) -> Measurement | None:
    """The measurement drawn again from a saved ROI; None for ROIs that are not measurements or whose
    image is not a slice of ``volume``."""
    kind = ROI_TO_MEASUREMENT.get(roi.kind)
    if kind is None or roi.label_set:
        return None
    try:
        z = list(keys).index(roi.key)
    except ValueError:
        return None
    pts = roi_to_lps(roi, volume, z)
    return Measurement(kind, [tuple(float(v) for v in p) for p in pts], "acquired", z)  # type: ignore[misc]


def evaluate_series(manifest: Manifest, volume: Volume, labels: Mapping[ImageKey, Label],
                    inference: Inference) -> dict[str, Any]:
    """Score a model on the labelled slices of one loaded series, run by ``inference`` on those slices.

    Returns
    -------
    dict
        :func:`viewer.core.metrics.classification_report` plus ``model``, ``model_version``,
        ``skipped_labels`` (labels of classes the model lacks) and ``disagreements`` (z, label,
        predicted, probability of the predicted class), sorted by z.

    Raises
    ------
    ValueError
        When no slice of the series has a label among the model's classes.
    """
    from viewer.core.metrics import classification_report

    names = list(manifest.output.labels)
    keys = slice_keys(volume)
    zs = [z for z, k in enumerate(keys) if k in labels and labels[k].label in names]
    skipped = sum(1 for k in keys if k in labels and labels[k].label not in names)
    if not zs:
        raise ValueError(f"no slice of this series has a label among the classes of {manifest.id!r} "
                         f"({', '.join(names)})")
    scores = np.asarray(inference.classify_slices(manifest, volume, zs).result.probabilities, dtype=np.float64)
    y = np.array([names.index(labels[keys[z]].label) for z in zs])
    report = classification_report(y, scores, names)
    top = scores.argmax(axis=1)
    dis = [{"z": z, "label": names[t], "predicted": names[p], "probability": float(scores[i, p])}
           for i, (z, t, p) in enumerate(zip(zs, y, top)) if t != p]
    return {"model": manifest.id, "model_version": manifest.version, "skipped_labels": skipped, **report,
            "disagreements": dis}
