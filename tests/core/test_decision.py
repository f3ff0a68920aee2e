"""Operating points: the decision rule, balanced accuracy, and the threshold chosen on a plateau."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.core.decision import balanced_accuracy, choose_threshold, decide, describe
from viewer.core.metrics import classification_report


def test_threshold_bias_and_argmax() -> None:
    p = np.array([[0.7, 0.3], [0.45, 0.55], [0.2, 0.8]])
    assert decide(p).tolist() == [0, 1, 1]
    assert decide(p, threshold=0.6).tolist() == [0, 0, 1]
    assert decide(p, threshold=0.3).tolist() == [1, 1, 1]  # "at or above"
    assert decide(p, bias=[np.log(3.0), 0.0]).tolist() == [0, 0, 1]  # same as threshold 0.75
    with pytest.raises(ValueError, match="exactly 2 classes"):
        decide(np.full((1, 3), 1 / 3), threshold=0.5)
    with pytest.raises(ValueError, match="bias needs 2"):
        decide(p, bias=[1.0])
    assert describe(["normal", "pneumonia"], 0.62) == "pneumonia if P(pneumonia) >= 0.62"
    assert describe(["a", "b"]) == "most probable class"


def test_report_uses_the_rule_but_auc_does_not_depend_on_it() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.4, 0.6, 0.55, 0.7, 0.9])
    p = np.stack([1 - p1, p1], 1)
    plain = classification_report(y, p, ["n", "p"])
    moved = classification_report(y, p, ["n", "p"], threshold=0.65)
    assert plain["decision"] == "argmax" and moved["decision"] == "threshold 0.65"
    assert plain["confusion_matrix"] == [[2, 1], [0, 3]]
    assert moved["confusion_matrix"] == [[3, 0], [1, 2]]
    assert moved["auc"] == plain["auc"] and moved["ece"] == plain["ece"]
    assert moved["balanced_accuracy"] == pytest.approx((1.0 + 2 / 3) / 2)


def test_balanced_accuracy_ignores_prevalence() -> None:
    y = np.array([0] * 10 + [1] * 90)
    always_one = np.ones(100, dtype=int)
    assert balanced_accuracy(y, always_one, 2) == 0.5


def test_threshold_prefers_a_plateau_over_a_spike() -> None:
    rng = np.random.default_rng(0)
    # normals around 0.3, pneumonia around 0.7: the best cut is the plateau near 0.5, whatever the prevalence
    y = np.array([0] * 300 + [1] * 900)
    s = np.concatenate([rng.normal(0.3, 0.08, 300), rng.normal(0.7, 0.08, 900)]).clip(0.001, 0.999)
    t, ba = choose_threshold(y, s)
    assert 0.4 <= t <= 0.6 and ba > 0.95
