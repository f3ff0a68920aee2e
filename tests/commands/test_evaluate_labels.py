"""``evaluate --labels``: a hand-made label set on the real pancreas CT with known right and wrong labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from viewer.cli import main

SLICES = list(range(40, 100, 6))  # 10 slices through the abdomen
WRONG = {SLICES[1], SLICES[4], SLICES[7]}  # labelled with a class the model did not pick


@pytest.fixture(scope="module")
def labelled(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A CSV export labelling 10 slices: 7 with the model's own top class, 3 with another class."""
    from viewer.ai.manifest import load_manifest
    from viewer.ai.runner import classify_slices
    from viewer.ai.session import ModelSession
    from viewer.annotations.model import Label
    from viewer.annotations.roi_geometry import slice_keys
    from viewer.annotations.tabular import labels_to_csv
    from viewer.commands.evaluate import resolve_model
    from viewer.io import load_series

    series = data_dir / "ct" / "pancreas-ct-philips-134"
    volume = load_series(str(series))
    manifest = load_manifest(resolve_model("organ-ct"))
    names = list(manifest.output.labels)
    top = classify_slices(ModelSession.get(manifest, "cpu"), volume, SLICES).top_index
    keys = slice_keys(volume)
    labels, truth = [], {}
    for z, t in zip(SLICES, top):
        name = names[(int(t) + 3) % len(names)] if z in WRONG else names[int(t)]
        truth[z] = (name, names[int(t)])
        labels.append(Label(keys[z], "Abdominal organs", name, "tester"))
    # A label of a class the model lacks is skipped, not scored.
    labels.append(Label(keys[10], "Normal / abnormal", "normal", "tester"))
    path = tmp_path_factory.mktemp("labels") / "labels.csv"
    labels_to_csv(labels, path)
    return {"csv": path, "series": series, "truth": truth, "names": names}


def test_accuracy_confusion_and_disagreements_match_the_known_set(labelled: dict,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["evaluate", "--model", "organ-ct", "--labels", str(labelled["csv"]), "--series",
               str(labelled["series"]), "--json"])
    assert rc == 0, capsys.readouterr().err
    r = json.loads(capsys.readouterr().out)
    assert r["n"] == len(SLICES)
    assert r["accuracy"] == pytest.approx(1 - len(WRONG) / len(SLICES))
    assert r["skipped_labels"] == 1 and r["unmatched"] == 0
    assert sorted(d["z"] for d in r["disagreements"]) == sorted(WRONG)
    for d in r["disagreements"]:
        assert (d["label"], d["predicted"]) == labelled["truth"][d["z"]]
        assert 0.0 < d["probability"] <= 1.0  # a probability, not a logit
    assert 0.0 <= r["ece"] <= 1.0
    cm = np.array(r["confusion_matrix"])
    names = labelled["names"]
    expected = np.zeros_like(cm)
    for label, pred in labelled["truth"].values():
        expected[names.index(label), names.index(pred)] += 1
    np.testing.assert_array_equal(cm, expected)
    assert np.trace(cm) == len(SLICES) - len(WRONG)


def test_text_report_lists_disagreements(labelled: dict, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["evaluate", "--model", "organ-ct", "--labels", str(labelled["csv"]), "--series",
               str(labelled["series"])])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"disagreements ({len(WRONG)})" in out and "accuracy  0.7000" in out


def test_labels_without_series_or_with_a_bad_file_give_clear_messages(labelled: dict, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--model", "organ-ct", "--labels", str(labelled["csv"])]) == 2
    assert "--series" in capsys.readouterr().err
    bad = tmp_path / "labels.txt"
    bad.write_text("x")
    assert main(["evaluate", "--model", "organ-ct", "--labels", str(bad), "--series", "x"]) == 2
    assert ".csv, .json" in capsys.readouterr().err
    assert main(["evaluate", "--model", "organ-ct", "--labels", str(tmp_path / "none.csv"), "--series", "x"]) == 2
    assert "not found" in capsys.readouterr().err
