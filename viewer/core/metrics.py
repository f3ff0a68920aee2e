"""Classification metrics in plain numpy: what model cards and ``evaluate`` report.

Conventions: ``y_true`` holds integer class indices 0..K-1 (shape (N,)); ``scores`` holds per-class
probabilities (shape (N, K), rows summing to 1) or, for the binary functions, the probability of the
positive class (shape (N,)). Nothing here depends on scikit-learn; the definitions follow it
(``roc_auc_score`` with ties counted half, one-vs-rest macro average) so figures are comparable with
the MedMNIST benchmark, which used scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from viewer.core.decision import balanced_accuracy, decide


def _labels(y_true: np.ndarray) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # MedMNIST stores labels as (N, 1)
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,) or (N, 1), got {y.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer) and not np.all(y == np.round(y))):
        raise ValueError("labels must be integer class indices")
    return y.astype(np.int64)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of predictions equal to the label (0..1)."""
    y, p = _labels(y_true), _labels(y_pred)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ in length")
    if y.size == 0:
        raise ValueError("no samples")
    return float(np.mean(y == p))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (K, K): row = true class, column = predicted class (the scikit-learn layout)."""
    y, p = _labels(y_true), _labels(y_pred)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ in length")
    for name, a in (("label", y), ("prediction", p)):
        if a.size and (a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"{name} outside 0..{n_classes - 1}")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    return cm


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall (sensitivity) per class from a confusion matrix; NaN for a class with no samples."""
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def per_class_precision(cm: np.ndarray) -> np.ndarray:
    """Precision (positive predictive value) per class; NaN for a class never predicted."""
    cm = np.asarray(cm, dtype=np.float64)
    predicted = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(predicted > 0, np.diag(cm) / predicted, np.nan)


def roc_auc_binary(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve for labels {0, 1} and a score that is higher for class 1.

    Computed as the Mann-Whitney U statistic with average ranks, so tied scores count one half
    (identical to the trapezoidal ROC area). Raises if only one class is present.
    """
    y = _labels(y_true)
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in length")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("binary AUC needs labels 0 and 1")
    n_pos = int(np.sum(y == 1))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC is undefined when only one class is present")
    ranks = _average_ranks(s)
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Tied values share the mean of the ranks they span (1-based).
    boundaries = np.flatnonzero(np.diff(sorted_x)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [x.size]))
    ranks_sorted = np.empty(x.size, dtype=np.float64)
    for a, b in zip(starts, ends):
        ranks_sorted[a:b] = (a + 1 + b) / 2.0
    ranks = np.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks


def roc_auc_ovr(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Macro-averaged one-vs-rest ROC AUC over the classes present; binary AUC when K == 2.

    For K == 2 the score of class 1 is used, matching scikit-learn and the MedMNIST evaluator.
    """
    y = _labels(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != y.size:
        raise ValueError(f"scores must have shape (N, K) with N={y.size}, got {s.shape}")
    k = s.shape[1]
    if k == 2:
        return roc_auc_binary(y, s[:, 1])
    aucs = [roc_auc_binary((y == c).astype(np.int64), s[:, c]) for c in range(k)
            if 0 < np.sum(y == c) < y.size]
    if not aucs:
        raise ValueError("AUC is undefined when only one class is present")
    return float(np.mean(aucs))


def expected_calibration_error(y_true: np.ndarray, scores: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence, equal-width bins on (0, 1].

    ECE = sum over bins of (bin size / N) * |accuracy in bin - mean confidence in bin| (Guo et al.
    2017). 0 is perfectly calibrated.
    """
    y = _labels(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != y.size:
        raise ValueError(f"scores must have shape (N, K) with N={y.size}, got {s.shape}")
    conf = s.max(axis=1)
    correct = (s.argmax(axis=1) == y).astype(np.float64)
    # Bin i holds confidences in (i/n, (i+1)/n]; a confidence of exactly 0 goes to the first bin.
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def classification_report(y_true: np.ndarray, scores: np.ndarray,
                          class_names: list[str] | None = None, *, threshold: float | None = None,
                          bias: Sequence[float] | None = None) -> dict[str, Any]:
    """Everything a model card states, as JSON-ready Python values.

    Keys: n, accuracy, balanced_accuracy, auc (macro one-vs-rest; binary for 2 classes; None when
    undefined: one class), ece, confusion_matrix (rows = true), per_class {name: {recall, precision,
    support}}, class_names, and ``decision`` (``"argmax"``, ``"threshold 0.xx"`` or ``"bias [...]"``). Accuracy, recall, precision
    and the confusion matrix use the decision rule (:func:`viewer.core.decision.decide`); AUC and ECE
    are properties of the probabilities and do not depend on it.
    """
    y = _labels(y_true)
    s = np.asarray(scores, dtype=np.float64)
    k = s.shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} score columns")
    pred = decide(s, threshold, bias)
    cm = confusion_matrix(y, pred, k)
    rec, prec = per_class_recall(cm), per_class_precision(cm)

    def _f(v: float) -> float | None:
        return None if np.isnan(v) else float(v)

    try:
        auc: float | None = _f(roc_auc_ovr(y, s))
    except ValueError:
        auc = None  # one class only: AUC is undefined, accuracy and the rest still hold
    return {
        "n": int(y.size),
        "accuracy": accuracy(y, pred),
        "balanced_accuracy": balanced_accuracy(y, pred, k),
        "decision": "argmax" if threshold is None and bias is None else
        (f"threshold {threshold:g}" if threshold is not None else f"bias {list(bias or [])}"),
        "auc": auc,
        "ece": expected_calibration_error(y, s),
        "confusion_matrix": cm.tolist(),
        "class_names": names,
        "per_class": {n: {"recall": _f(rec[i]), "precision": _f(prec[i]), "support": int(cm[i].sum())}
                      for i, n in enumerate(names)},
    }
