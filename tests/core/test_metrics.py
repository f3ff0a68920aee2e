"""viewer.core.metrics against cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.core import metrics as m


def test_accuracy_and_confusion_matrix_by_hand() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    assert m.accuracy(y, p) == pytest.approx(4 / 6)
    cm = m.confusion_matrix(y, p, 3)
    # rows = true, columns = predicted
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    np.testing.assert_allclose(m.per_class_recall(cm), [0.5, 1.0, 0.5])
    np.testing.assert_allclose(m.per_class_precision(cm), [0.5, 2 / 3, 1.0])


def test_medmnist_label_shape_n_by_1_is_accepted() -> None:
    assert m.accuracy(np.array([[1], [0]]), np.array([1, 1])) == 0.5


def test_recall_of_an_absent_class_is_nan_not_zero() -> None:
    cm = m.confusion_matrix(np.array([0, 0]), np.array([0, 1]), 3)
    rec = m.per_class_recall(cm)
    assert rec[0] == 0.5 and np.isnan(rec[2])


def test_binary_auc_by_hand_with_a_tie() -> None:
    # positives 0.8, 0.4; negatives 0.4, 0.1. Pairs (pos>neg): 0.8>0.4, 0.8>0.1, 0.4>0.1 = 3, the tie 0.4=0.4 = 1/2.
    y = np.array([1, 1, 0, 0])
    s = np.array([0.8, 0.4, 0.4, 0.1])
    assert m.roc_auc_binary(y, s) == pytest.approx(3.5 / 4)
    assert m.roc_auc_binary(y, -s) == pytest.approx(0.5 / 4)


def test_auc_perfect_and_reversed() -> None:
    y = np.array([0, 0, 1, 1])
    assert m.roc_auc_binary(y, np.array([0.1, 0.2, 0.3, 0.9])) == 1.0
    assert m.roc_auc_binary(y, np.array([0.9, 0.8, 0.3, 0.1])) == 0.0


def test_auc_matches_pairwise_definition_on_random_data() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) + 0.3 * y, 2)  # rounding makes many ties
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    expected = (np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size
    assert m.roc_auc_binary(y, s) == pytest.approx(expected)


def test_ovr_auc_is_mean_of_one_vs_rest_and_binary_for_two_columns() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    s = np.array([[.8, .1, .1], [.2, .7, .1], [.1, .2, .7], [.3, .4, .3], [.5, .3, .2], [.2, .2, .6]])
    per = [m.roc_auc_binary((y == c).astype(int), s[:, c]) for c in range(3)]
    assert m.roc_auc_ovr(y, s) == pytest.approx(np.mean(per))
    # class 1: positives .7, .3; negatives .1 .2 .4 .2 -> pairs won: 4 + 3 of 8
    assert per[1] == pytest.approx(7 / 8)
    y2 = np.array([0, 1, 1, 0])
    s2 = np.array([[.9, .1], [.3, .7], [.6, .4], [.2, .8]])
    assert m.roc_auc_ovr(y2, s2) == m.roc_auc_binary(y2, s2[:, 1]) == pytest.approx(0.5)


def test_auc_with_one_class_is_an_error() -> None:
    with pytest.raises(ValueError, match="only one class"):
        m.roc_auc_binary(np.array([1, 1]), np.array([0.2, 0.3]))


def test_ece_by_hand() -> None:
    # Two bins used (10 bins): confidences 0.95 (right), 0.95 (wrong) -> |0.5-0.95| * 2/4;
    # 0.65 (right), 0.65 (right) -> |1-0.65| * 2/4.
    s = np.array([[.95, .05], [.95, .05], [.35, .65], [.35, .65]])
    y = np.array([0, 1, 1, 1])
    assert m.expected_calibration_error(y, s, n_bins=10) == pytest.approx(0.5 * 0.45 + 0.5 * 0.35)


def test_ece_zero_when_confidence_equals_accuracy() -> None:
    s = np.tile([[0.75, 0.25]], (4, 1))
    y = np.array([0, 0, 0, 1])
    assert m.expected_calibration_error(y, s) == pytest.approx(0.0)


def test_report_keys_and_values() -> None:
    y = np.array([0, 1, 1])
    s = np.array([[.9, .1], [.2, .8], [.6, .4]])
    r = m.classification_report(y, s, ["normal", "pneumonia"])
    assert r["n"] == 3 and r["accuracy"] == pytest.approx(2 / 3)
    assert r["confusion_matrix"] == [[1, 0], [1, 1]]
    assert r["per_class"]["pneumonia"] == {"recall": 0.5, "precision": 1.0, "support": 2}
    assert r["auc"] == pytest.approx(1.0)


def test_bad_input_messages() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        m.accuracy(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="outside 0..1"):
        m.confusion_matrix(np.array([0, 2]), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match="class names"):
        m.classification_report(np.array([0]), np.array([[1.0, 0.0]]), ["a"])
