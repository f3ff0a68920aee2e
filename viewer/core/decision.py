"""Decision rules: which class a model's probabilities stand for (its operating point).

A classifier's manifest may set an operating point (``[output] threshold`` for two classes, or
``[output] bias`` per class); without one the rule is the arg-max. The same function is used by the
viewer's overlays, ``infer``, ``evaluate`` and the training scripts, so a figure in a model card is
the rule the user sees applied.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def decide(probabilities: np.ndarray, threshold: float | None = None,
           bias: Sequence[float] | None = None) -> np.ndarray:
    """(N,) predicted class index from (N, K) probabilities.

    ``threshold`` (K = 2 only): class 1 when its probability is at or above it, else class 0.
    ``bias`` (K numbers): arg-max of ``log(p) + bias`` (a per-class shift of the logits). Neither: arg-max.
    Ties go to the lower index, as ``numpy.argmax``.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be (N, K), got shape {p.shape}")
    if threshold is not None and bias is not None:
        raise ValueError("give a threshold or a bias, not both")
    if threshold is not None:
        if p.shape[1] != 2:
            raise ValueError(f"a threshold needs exactly 2 classes, got {p.shape[1]}")
        return np.asarray(p[:, 1] >= threshold, dtype=np.int64)
    if bias is not None:
        b = np.asarray(bias, dtype=np.float64)
        if b.shape != (p.shape[1],):
            raise ValueError(f"bias needs {p.shape[1]} numbers, got {b.shape[0] if b.ndim else 1}")
        with np.errstate(divide="ignore"):
            return np.asarray(np.argmax(np.log(p) + b, axis=1), dtype=np.int64)
    return np.asarray(np.argmax(p, axis=1), dtype=np.int64)


def describe(labels: Sequence[str], threshold: float | None = None, bias: Sequence[float] | None = None) -> str:
    """The rule :func:`decide` applies, in words, for every place that shows a prediction."""
    if threshold is not None and len(labels) == 2:
        return f"{labels[1]} if P({labels[1]}) >= {threshold:g}"
    if bias is not None:
        return "arg-max of log P + bias [" + ", ".join(f"{b:g}" for b in bias) + "]"
    return "most probable class"


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean per-class recall over the classes present in ``y_true`` (prevalence-independent; for two
    classes (sensitivity + specificity) / 2 = (Youden J + 1) / 2)."""
    y, q = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    recalls = [float(np.mean(q[y == c] == c)) for c in range(n_classes) if np.any(y == c)]
    return float(np.mean(recalls)) if recalls else float("nan")


def choose_threshold(y_true: np.ndarray, p_positive: np.ndarray, *, step: float = 0.01,
                     smooth: float = 0.05) -> tuple[float, float]:
    """The binary threshold with the best balanced accuracy, smoothed for stability.

    Every candidate ``step, 2*step, ..., 1 - step`` is scored by the mean balanced accuracy of the
    candidates within ``+-smooth`` of it, so a lone spike does not win over a plateau. Returns
    (threshold, balanced accuracy at that threshold). Meant for out-of-fold predictions, never test.
    """
    y = np.asarray(y_true).reshape(-1)
    s = np.asarray(p_positive, dtype=np.float64).reshape(-1)
    grid = np.round(np.arange(step, 1.0 - step / 2, step), 6)
    ba = np.array([balanced_accuracy(y, (s >= t).astype(np.int64), 2) for t in grid])
    half = int(round(smooth / step))
    padded = np.pad(ba, half, mode="edge")
    smoothed = np.convolve(padded, np.ones(2 * half + 1) / (2 * half + 1), mode="valid")
    i = int(np.argmax(smoothed))
    return float(grid[i]), float(ba[i])
