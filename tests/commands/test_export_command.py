"""``python -m viewer export``: a verified lossless copy of a series, with or without de-identification."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("imagecodecs")

from viewer.cli import main  # noqa: E402


def test_export_prints_ratio_and_speed_and_loads_the_same(data_dir, tmp_path, capsys):
    src = data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom"
    out = tmp_path / "copy"
    assert main(["export", str(src), "--out", str(out), "--codec", "htj2k"]) == 0
    text = capsys.readouterr().out
    assert "20 file(s) written as htj2k" in text and "ratio" in text and "MB/s" in text
    assert "verified bit-exact" in text
    from viewer.io import load_series

    np.testing.assert_array_equal(load_series(str(out)).array, load_series(str(src)).array)


def test_deidentified_export_replaces_identity_and_uids_but_not_pixels(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VIEWER_DATA_DIR", str(tmp_path / "data"))
    src = data_dir / "ct" / "crc-chest-ct-ge-100"
    out = tmp_path / "anon"
    assert main(["export", str(src), "--out", str(out), "--codec", "jpeg-ls", "--deidentify"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names[0] == "IMG00001.dcm" and len(names) == 100
    a = pydicom.dcmread(sorted(src.glob("*.dcm"))[0])
    b = pydicom.dcmread(out / "IMG00001.dcm")
    assert b.PatientIdentityRemoved == "YES" and str(b.PatientName).startswith("ANON-")
    assert str(b.PatientName) != str(a.PatientName) and b.SeriesInstanceUID != a.SeriesInstanceUID
    assert b.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"
    from viewer.io import load_series

    np.testing.assert_array_equal(load_series(str(out)).array, load_series(str(src)).array)


def test_export_into_the_source_folder_fails_with_exit_code_1(data_dir, tmp_path, capsys):
    folder = tmp_path / "s"
    folder.mkdir()
    for f in sorted((data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))[:2]:
        (folder / f.name).write_bytes(f.read_bytes())
    assert main(["export", str(folder), "--out", str(folder), "--codec", "rle", "--overwrite"]) == 1
    assert "is one of the source files" in capsys.readouterr().err


def test_unknown_codec_is_a_usage_error():
    res = subprocess.run([sys.executable, "-m", "viewer", "export", ".", "--out", "x", "--codec", "zip"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "invalid choice" in res.stderr
