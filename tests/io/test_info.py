"""``python -m viewer info PATH --json``: the product.md keys, values that match the data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

KEYS = {"series_uid", "modality", "shape", "spacing", "affine", "dtype", "value_range", "warnings"}


def _info(*args: str) -> tuple[int, list[dict]]:
    res = subprocess.run([sys.executable, "-m", "viewer", "info", *args, "--json"], capture_output=True,
                         text=True, timeout=300)
    return res.returncode, json.loads(res.stdout) if res.stdout.strip() else []


def test_info_json_totalseg(data_dir):
    rc, out = _info(str(data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom"))
    assert rc == 0 and len(out) == 1
    obj = out[0]
    assert KEYS <= set(obj)
    assert obj["modality"] == "CT" and obj["series_uid"] == ""
    assert obj["shape"] == [20, 512, 512]
    assert obj["spacing"][2] == pytest.approx(2.0)  # from positions; SliceThickness says 3
    aff = np.array(obj["affine"])
    assert aff.shape == (4, 4) and aff[3].tolist() == [0, 0, 0, 1]
    assert np.linalg.norm(aff[:3, 0]) == pytest.approx(obj["spacing"][0])
    assert obj["dtype"] == "int16"
    lo, hi = obj["value_range"]
    assert -1100 <= lo < -900 and 1000 < hi < 4000  # HU: air and bone


def test_info_series_selection_and_errors(data_dir):
    rc, out = _info(str(data_dir / "dcm_qa" / "enh" / "In"), "--series", "2")  # counted from 1
    assert rc == 0 and len(out) == 1 and out[0]["shape"] == [32, 64, 64]
    assert out[0]["number"] == 2 and out[0]["index"] == 1
    assert out[0]["volumes"]["count"] == 2 and out[0]["volumes"]["kind"] == "echo"
    rc, out = _info(str(data_dir / "dcm_qa" / "enh" / "In"), "--series", "9.9.9")
    assert rc == 2 and out == []


def test_info_text_numbers_series_from_1_as_the_viewer_does(data_dir):
    folder = str(data_dir / "dcm_qa" / "enh" / "In")
    rc, objs = _info(folder)
    res = subprocess.run([sys.executable, "-m", "viewer", "info", folder], capture_output=True, text=True)
    assert res.returncode == rc == 0
    lines = [line for line in res.stdout.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in lines] == [f"[{k}" for k in range(1, len(objs) + 1)]
    assert [o["number"] for o in objs] == list(range(1, len(objs) + 1))
    for line, obj in zip(lines, objs):  # the text line N describes the JSON object of number N
        assert obj["series_uid"] in line and str(obj["shape"]) in line
    res = subprocess.run([sys.executable, "-m", "viewer", "info", folder, "--series", "0"], capture_output=True,
                         text=True)
    assert res.returncode == 2 and f"series 0 is outside 1..{len(objs)}" in res.stderr
