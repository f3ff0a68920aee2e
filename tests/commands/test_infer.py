"""``python -m viewer infer`` on real CT with a toy model whose answer is known (mean HU in a window)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.ai.helpers import linear_model, write_model_dir
from viewer.cli import main
from viewer.core.windowing import apply_window

# Class "bright" scores the mean of the windowed, area-downsampled slice, class "dark" a constant 0.5.
W = np.concatenate([np.zeros((16, 1)), np.full((16, 1), 1.0 / 16)], axis=1).astype(np.float32)
OPS = [{"op": "window", "center": 40.0, "width": 400.0}, {"op": "resize", "size": [4, 4], "interpolation": "area"}]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_model_dir(root / "toy-ct", lambda p: linear_model(p, W, np.array([0.5, 0.0]), (1, 4, 4)),
                    model_id="toy-ct", labels=["dark", "bright"], preprocess=OPS)
    return root


@pytest.fixture(scope="module")
def pancreas(data_dir: Path) -> Path:
    return data_dir / "ct" / "pancreas-ct-philips-134"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["infer", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_per_slice_matches_the_known_answer(models: Path, pancreas: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, str(pancreas), "--model", "toy-ct", "--models-dir", str(models), "--json",
                      "--slices", "60:70", "--device", "cpu", "--batch", "4")
    assert rc == 0
    doc = json.loads(out)
    assert doc["provider"] == "CPUExecutionProvider" and doc["device"] == "cpu" and doc["message"] is None
    assert doc["model"]["id"] == "toy-ct" and doc["model"]["version"] == "0.1.0"
    (series,) = doc["series"]
    assert series["modality"] == "CT" and series["shape"] == [134, 512, 512]
    preds = series["predictions"]
    assert [p["slice"] for p in preds] == list(range(60, 70))
    from viewer.io import load_series

    vol = load_series(pancreas)
    for p in preds:
        # independent answer: the mean of the windowed slice (area resize to 4x4 keeps the mean: 512 = 4 * 128)
        bright = float(apply_window(vol.array[p["slice"]], 40.0, 400.0).mean())
        want = np.exp([0.5, bright]) / np.exp([0.5, bright]).sum()
        assert p["probabilities"]["dark"] == pytest.approx(want[0], abs=2e-6)
        assert p["probabilities"]["bright"] == pytest.approx(want[1], abs=2e-6)
        assert p["label"] == ("bright" if bright > 0.5 else "dark")
        assert p["probability"] == max(p["probabilities"].values())
        assert p["instance_uid"] == vol.metadata["instance_uids"][p["slice"]]


def test_text_output_and_box(models: Path, pancreas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, str(pancreas), "--model", "toy-ct", "--models-dir", str(models), "--slices", "5",
                      "--top", "2")
    assert rc == 0
    lines = out.strip().splitlines()
    assert "Toy toy-ct 0.1.0" in lines[0] and "CPUExecutionProvider" in lines[0]
    assert lines[-1].startswith("slice    5: ") and "dark" in lines[-1] and "bright" in lines[-1]
    # a box in the air outside the body: windowed mean 0, so "dark" with softmax([0.5, 0])
    rc, out, _ = _run(capsys, str(pancreas), "--model", "toy-ct", "--models-dir", str(models), "--slices", "5",
                      "--box", "0", "0", "16", "16", "--json")
    p = json.loads(out)["series"][0]["predictions"][0]
    assert p["label"] == "dark" and p["probability"] == pytest.approx(1 / (1 + np.exp(-0.5)), abs=1e-6)


def test_csv_over_a_folder_of_studies(models: Path, data_dir: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out_csv = tmp_path / "out.csv"
    rc, out, err = _run(capsys, str(data_dir / "ct"), "--model", "toy-ct", "--models-dir", str(models), "--csv",
                        str(out_csv), "--json")
    assert rc == 0
    summary = json.loads(out)
    assert summary["rows"] == 134 + 100 + 20 and len(summary["series"]) == 3
    with open(out_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 254
    assert {r["modality"] for r in rows} == {"CT"} and {r["provider"] for r in rows} == {"CPUExecutionProvider"}
    for r in rows[:5]:
        assert abs(float(r["p_dark"]) + float(r["p_bright"]) - 1.0) < 1e-5
        assert r["label"] in ("dark", "bright") and float(r["probability"]) >= 0.5
    assert "not loadable DICOM" in err  # the licence and NIfTI files next to the series are reported, once


def test_model_that_does_not_apply_is_refused_unless_forced(models: Path, data_dir: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    mr = data_dir / "dcm_qa" / "sag" / "In"
    rc, _, err = _run(capsys, str(mr), "--model", "toy-ct", "--models-dir", str(models))
    assert rc == 2 and "is for CT images" in err and "MR" in err and "--force" in err
    rc, out, _ = _run(capsys, str(mr), "--model", "toy-ct", "--models-dir", str(models), "--force", "--json")
    assert rc == 0 and "is for CT" in json.loads(out)["series"][0]["note"]


def test_unknown_model_and_cuda_request(models: Path, pancreas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(capsys, str(pancreas), "--model", "nope", "--models-dir", str(models))
    assert rc == 1 and "no model 'nope'" in err and "toy-ct" in err
    rc, out, err = _run(capsys, str(pancreas), "--model", "toy-ct", "--models-dir", str(models), "--device", "cuda",
                        "--slices", "0", "--json")
    doc = json.loads(out)
    assert rc == 0
    if doc["device"] == "cpu":  # no CUDA here: the fallback is said, in JSON and on stderr
        assert "CPU" in doc["message"] and doc["message"] in err
    else:
        assert doc["provider"] == "CUDAExecutionProvider"


def test_sliding_window_class_map(models: Path, pancreas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, str(pancreas), "--model", "toy-ct", "--models-dir", str(models), "--slices", "60",
                      "--sliding", "--window-mm", "64.44", "64.44", "--stride-mm", "32.22", "32.22", "--json")
    assert rc == 0
    (s,) = json.loads(out)["series"][0]["sliding"]
    # 1.074 mm pixels: 64.44 mm = 60 px windows every 30 px; the last one ends at the edge (512 - 60 = 452)
    assert s["window_px"] == [60, 60] and s["stride_px"] == [30, 30]
    assert s["rows"] == list(range(0, 452, 30)) + [452] and s["cols"] == s["rows"]
    grid = np.array(s["class_map"])
    assert grid.shape == (17, 17)
    assert grid[0, 0] == 0 and grid[8, 8] == 1  # the corner is air ("dark"); the abdomen's centre is soft tissue
    rc, out, _ = _run(capsys, str(pancreas), "--model", "toy-ct", "--models-dir", str(models), "--slices", "60",
                      "--sliding", "--window-mm", "64.44", "64.44")
    assert rc == 0 and "60x60 px windows every 30x30 px (289)" in out
