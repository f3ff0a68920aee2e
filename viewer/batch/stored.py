"""A batch results folder read back per series, for the viewer: stored predictions, no re-run.

:func:`read_stored` gives, per SeriesInstanceUID, the slice predictions of one model as the
:class:`~viewer.ai.results.Predictions` record the AI panel draws (``indices`` = slice z, 0-based in display
order, as written by ``batch infer``) and the series' label: the class the model's operating point decides
from the mean of its slices' probabilities (as ``batch evaluate`` scores a series label). Raw network outputs are not stored, so
``scores`` holds the probabilities.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from viewer.ai.results import Predictions
from viewer.batch.results import OK, read_results
from viewer.core.decision import decide


@dataclass(frozen=True)
class StoredSeries:
    """One series' stored result: per-slice ``predictions`` and the series ``label`` with its mean
    ``probability``."""

    series_uid: str
    predictions: Predictions
    label: str
    probability: float


def read_stored(results: str | os.PathLike[str], model: str | None = None) -> dict[str, StoredSeries]:
    """Per SeriesInstanceUID, the stored predictions of ``model`` (default: the first model id in sorted
    order). Series without a UID are left out: nothing could match them to an opened series."""
    import pyarrow.compute as pc

    t = read_results(results, ["series_instance_uid", "model_id", "model_version", "provider", "status", "slice",
                               "class_names", "probabilities", "threshold", "bias"])
    t = t.filter(pc.and_(pc.equal(t.column("status"), OK), pc.is_valid(t.column("slice"))))  # not a denoiser's
    if t.num_rows == 0:
        return {}
    ids = sorted(pc.unique(t.column("model_id")).to_pylist())
    chosen = model if model is not None else ids[0]
    if chosen not in ids:
        raise ValueError(f"{results} holds no predictions of model {chosen!r} (it has {', '.join(ids)})")
    d = t.filter(pc.equal(t.column("model_id"), chosen)).to_pydict()
    rows: dict[str, list[int]] = {}
    for i, uid in enumerate(d["series_instance_uid"]):
        if uid:
            rows.setdefault(uid, []).append(i)
    out: dict[str, StoredSeries] = {}
    for uid, idx in rows.items():
        idx.sort(key=lambda i: d["slice"][i])
        probs = np.asarray([d["probabilities"][i] for i in idx], dtype=np.float32)
        labels = tuple(d["class_names"][idx[0]])
        threshold, bias = d["threshold"][idx[0]], d["bias"][idx[0]]
        pred = Predictions(probs, probs.copy(), labels, np.asarray([d["slice"][i] for i in idx], dtype=np.int64),
                           chosen, d["model_version"][idx[0]], f"{chosen} (batch results)", d["provider"][idx[0]],
                           threshold, tuple(bias) if bias is not None else None)
        mean = probs.mean(axis=0)
        top = int(decide(mean[None, :], threshold, bias)[0])  # the operating point, as the rows' labels
        out[uid] = StoredSeries(uid, pred, labels[top], float(mean[top]))
    return out
