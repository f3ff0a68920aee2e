"""``python -m viewer evaluate``: its figures equal scikit-learn's on the model's own outputs (an independent
implementation of every metric), and the test split is the one the model cards report on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from viewer.cli import main
from viewer.commands.evaluate import evaluate
from viewer.core.decision import decide

MODELS = Path(__file__).resolve().parents[2] / "models"
CASES = [("organ-ct", "organamnist.npz"), ("pneumonia-cxr", "pneumoniamnist.npz")]


@pytest.mark.parametrize(("model_id", "dataset"), CASES)
def test_evaluate_reproduces_the_model_card_test_numbers(data_dir: Path, model_id: str, dataset: str) -> None:
    metrics = json.loads((MODELS / model_id / "metrics.json").read_text())
    card = metrics["test"]
    r = evaluate(model_id, data_dir / "labeled" / dataset, "test")
    op = metrics.get("operating_point")
    if op:  # the manifest's threshold decides, as in the card; the arg-max figures are reported beside
        assert r["decision"] == f"threshold {op['threshold']:g}" == card["decision"]
        assert abs(r["argmax"]["accuracy"] - metrics["test_argmax"]["accuracy"]) <= 0.005
    cal = metrics.get("calibration")
    if cal and cal["folded_into_graph"]:  # the card's calibrated ECE is what the shipped graph gives
        assert abs(r["ece"] - cal["test"]["ece_after"]) <= 0.005
    assert r["n"] == card["n"]
    assert abs(r["accuracy"] - card["accuracy"]) <= 0.005
    assert abs(r["auc"] - card["auc"]) <= 0.005
    # The confusion matrix is what accuracy is made of: it must hardly move either.
    diff = np.abs(np.array(r["confusion_matrix"]) - np.array(card["confusion_matrix"])).sum()
    assert diff <= 0.005 * card["n"]
    for name, pc in card["per_class"].items():
        assert abs(r["per_class"][name]["recall"] - pc["recall"]) <= 0.02


@pytest.mark.parametrize(("model_id", "dataset"), CASES)
def test_evaluate_figures_equal_scikit_learns(data_dir: Path, model_id: str, dataset: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn import metrics as sk

    import viewer.core.metrics

    seen: dict[str, np.ndarray] = {}
    report = viewer.core.metrics.classification_report

    def spy(y_true: np.ndarray, scores: np.ndarray, names: list[str], **rule: object) -> dict[str, object]:
        if "y" not in seen:  # the first call scores with the manifest's decision rule (a second, arg-max)
            seen["y"], seen["p"] = np.asarray(y_true), np.asarray(scores)  # the model's outputs, as scored
            seen["rule"] = rule  # type: ignore[assignment]
        return report(y_true, scores, names, **rule)

    monkeypatch.setattr(viewer.core.metrics, "classification_report", spy)
    r = evaluate(model_id, data_dir / "labeled" / dataset, "test")
    y, p = seen["y"], seen["p"]
    k = p.shape[1]
    y_pred = decide(p, **seen["rule"])  # the manifest's operating point (arg-max without one)
    assert r["n"] == len(y) == json.loads((MODELS / model_id / "metrics.json").read_text())["test"]["n"]
    assert r["accuracy"] == pytest.approx(sk.accuracy_score(y, y_pred), abs=1e-9)
    auc = sk.roc_auc_score(y, p[:, 1]) if k == 2 else sk.roc_auc_score(y, p, multi_class="ovr", average="macro")
    assert r["auc"] == pytest.approx(auc, abs=1e-6)
    np.testing.assert_array_equal(np.array(r["confusion_matrix"]), sk.confusion_matrix(y, y_pred, labels=range(k)))
    recall = sk.recall_score(y, y_pred, labels=range(k), average=None, zero_division=np.nan)
    precision = sk.precision_score(y, y_pred, labels=range(k), average=None, zero_division=np.nan)
    for j, name in enumerate(r["class_names"]):
        pc = r["per_class"][name]
        assert pc["recall"] == pytest.approx(recall[j], abs=1e-9, nan_ok=True)
        assert pc["precision"] == pytest.approx(precision[j], abs=1e-9, nan_ok=True)


def test_cli_json_output(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["evaluate", "--model", "pneumonia-cxr", "--dataset", str(data_dir / "labeled" / "pneumoniamnist.npz"),
               "--split", "val", "--json"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert r["split"] == "val" and r["n"] == 524
    assert set(r) >= {"accuracy", "auc", "ece", "confusion_matrix", "per_class"}
    assert sum(map(sum, r["confusion_matrix"])) == 524
    assert r["accuracy"] > 0.85  # the model was selected on this split


def test_cli_text_output(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["evaluate", "--model", "organ-ct", "--dataset", str(data_dir / "labeled" / "organamnist.npz"),
               "--split", "val", "--limit", "300"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "accuracy" in out and "kidney-left" in out and "confusion matrix" in out and "n = 300" in out


def test_labels_option_names_a_missing_label_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # --labels itself is tested in test_evaluate_labels.py.
    rc = main(["evaluate", "--model", "organ-ct", "--labels", str(tmp_path / "labels.csv")])
    assert rc == 2
    assert "labels.csv not found" in capsys.readouterr().err


def test_bad_inputs_give_clear_messages(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npz = str(data_dir / "labeled" / "pneumoniamnist.npz")
    assert main(["evaluate", "--model", "no-such-model", "--dataset", npz]) == 2
    assert "no model 'no-such-model'" in capsys.readouterr().err
    assert main(["evaluate", "--model", "pneumonia-cxr", "--dataset", npz, "--split", "holdout"]) == 2
    err = capsys.readouterr().err
    assert "no split 'holdout'" in err and "test" in err
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    assert main(["evaluate", "--model", "pneumonia-cxr", "--dataset", str(junk)]) == 2
    assert "not a readable .npz" in capsys.readouterr().err
    # organ labels 0..10 do not fit the 2-class pneumonia model
    assert main(["evaluate", "--model", "pneumonia-cxr", "--dataset", str(data_dir / "labeled" / "organamnist.npz"),
                 "--limit", "500"]) == 2
    assert "2 classes" in capsys.readouterr().err
