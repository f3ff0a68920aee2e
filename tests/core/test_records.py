"""The scan's typed records live in a module that ui and state may import: no pydicom or SimpleITK behind it."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO
from viewer.core.records import RECORD_FIELDS, HeaderRecord, ScanResult, Stack


def test_importing_the_records_loads_no_dicom_library() -> None:
    code = ("import sys, viewer.core.records, viewer.state.services; "
            "print(sorted(m for m in ('pydicom', 'SimpleITK', 'highdicom') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_record_fields_are_the_index_columns_in_order() -> None:
    rec = HeaderRecord(path="/a.dcm", rows=512, window_center="40\\400")
    assert RECORD_FIELDS[0] == "path" and "window_center" in RECORD_FIELDS and RECORD_FIELDS[-1] == "digest"
    assert HeaderRecord(*(getattr(rec, f) for f in RECORD_FIELDS)) == rec


def test_position_text_reads_as_floats_or_none() -> None:
    assert HeaderRecord(path="x", position="1.5\\-2\\3e2").floats("position") == (1.5, -2.0, 300.0)
    assert HeaderRecord(path="x", position="1\\b\\3").floats("position") is None
    assert HeaderRecord(path="x").floats("orientation") is None


def test_scan_tree_groups_stacks_by_patient_study_series() -> None:
    a = Stack("1.2.1", ["/s/1.dcm", "/s/2.dcm"], modality="CT", patient_id="P", study_uid="S", series_number="3")
    b = Stack("1.2.1", ["/s/3.dcm"], modality="CT", patient_id="P", study_uid="S", series_number="3",
              split_label="part 2")
    c = Stack("1.2.2", ["/t/1.dcm"], modality="MR", patient_id="Q", study_uid="T")
    (p, q) = ScanResult(stacks=[a, b, c]).tree()
    assert p["patient_id"] == "P" and q["patient_id"] == "Q"
    (series,) = p["studies"][0]["series"]
    assert series["files"] == 3 and series["stacks"] == [0, 1]
    assert q["studies"][0]["series"][0]["stacks"] == [2]
