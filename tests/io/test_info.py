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
    rc, out = _info(str(data_dir / "dcm_qa" / "enh" / "In"), "--series", "1")
    assert rc == 0 and len(out) == 1 and out[0]["shape"] == [32, 64, 64]
    assert out[0]["volumes"]["count"] == 2 and out[0]["volumes"]["kind"] == "echo"
    rc, out = _info(str(data_dir / "dcm_qa" / "enh" / "In"), "--series", "9.9.9")
    assert rc == 2 and out == []
