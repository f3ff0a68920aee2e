"""``python -m viewer scan PATH [--json]``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from viewer.cli import main


def test_scan_json(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(data_dir / "ct"), "--json", "--no-index"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["index"] is None and not doc["cancelled"]
    assert sorted(s["files"] for s in doc["stacks"]) == [20, 100, 134]
    assert {b["reason"].split(":")[0] for b in doc["bad_files"]} == {"not DICOM"}
    n_series = sum(len(st["series"]) for p in doc["patients"] for st in p["studies"])
    assert n_series == 3
    assert doc["files"] == sum(s["files"] for s in doc["stacks"]) + len(doc["bad_files"]) + len(doc["non_image"])


def test_scan_text_tree(data_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty.dcm").write_bytes(b"")
    assert main(["scan", str(data_dir / "dcm_qa" / "sag" / "In"), str(tmp_path), "--no-index"]) == 0
    out = capsys.readouterr().out
    assert "Patient dtiferesh [jflab]" in out
    assert "Series #3 MR fmri_SagHF: 6 files  uid=" in out
    assert "4D: 6 time points (AcquisitionNumber)" in out
    assert f"{tmp_path / 'empty.dcm'}: empty file (0 bytes)" in out


def test_scan_missing_path_fails_clearly(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "viewer", "scan", str(tmp_path / "nope")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "no such file or folder" in proc.stderr and proc.stdout == ""


def test_scan_uses_the_index(data_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIEWER_CACHE_DIR", str(tmp_path))
    folder = str(data_dir / "ct" / "totalseg-ct-j2k-20")
    assert main(["scan", folder, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["scan", folder, "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["index"] == str(tmp_path / "index.sqlite")
    assert first["headers_read"] == first["files"] > 0 and second["headers_read"] == 0
    assert first["stacks"] == second["stacks"]
