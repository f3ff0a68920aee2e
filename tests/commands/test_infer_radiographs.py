"""``infer`` with the shipped pneumonia-cxr on real radiographs: applicability from the header and the
manifest's operating point (pydicom's test data: RG1 a chest PA CR, RG3 an extremity AP CR)."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from viewer.ai import load_manifest
from viewer.cli import main

MODELS = Path(__file__).resolve().parents[2] / "models"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["infer", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_cr_of_a_limb_is_refused_naming_field_and_value(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, get_testdata_file("RG3_UNCR.dcm"), "--model", "pneumonia-cxr")
    assert rc == 2 and out == ""
    assert "BodyPartExamined EXTREMITY" in err and "CHEST" in err and "--force" in err


def test_a_chest_cr_is_decided_by_the_manifest_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    m = load_manifest(MODELS / "pneumonia-cxr")
    rc, out, err = _run(capsys, get_testdata_file("RG1_UNCR.dcm"), "--model", "pneumonia-cxr", "--json")
    assert rc == 0 and "warning" not in err
    r = json.loads(out)
    assert r["model"]["threshold"] == m.output.threshold and r["model"]["decision"] == m.output.decision
    row = r["series"][0]["predictions"][0]
    p = row["probabilities"]["pneumonia"]
    if m.output.threshold is not None:
        assert row["label"] == ("pneumonia" if p >= m.output.threshold else "normal")
    rc, out, _ = _run(capsys, get_testdata_file("RG1_UNCR.dcm"), "--model", "pneumonia-cxr")
    assert f"decision: {m.output.decision}" in out


def test_unknown_body_part_runs_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    del ds.BodyPartExamined
    ds.save_as(tmp_path / "cr.dcm")
    rc, out, err = _run(capsys, str(tmp_path / "cr.dcm"), "--model", "pneumonia-cxr", "--json")
    assert rc == 0 and "warning: " in err and "BodyPartExamined is empty" in err
    assert "BodyPartExamined is empty" in json.loads(out)["series"][0]["note"]
