"""The byte-level header fast path gives exactly what the pydicom path gives, on every file we have."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pydicom
import pytest
from data_store import __file__ as store

from tests.io.badcorpus import make_corpus
from viewer.io import headers
from viewer.io.headers import read_header


def both(path: str) -> tuple[headers.HeaderRecord, headers.HeaderRecord]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = read_header(path)
        headers.FAST_PATH = False
        try:
            slow = read_header(path)
        finally:
            headers.FAST_PATH = True
    return fast, slow


def differences(files: list[str]) -> list[tuple[str, dict[str, object]]]:
    out = []
    for f in files:
        a, b = (dataclasses.asdict(r) for r in both(f))
        if a != b:
            out.append((f, {k: (a[k], b[k]) for k in a if a[k] != b[k]}))
    return out


def test_fast_path_matches_pydicom_on_library_files() -> None:
    folders = [Path(pydicom.__file__).parent / "data" / "test_files", Path(store).parent / "data"]
    files = sorted(str(p) for d in folders for p in d.rglob("*") if p.is_file())
    assert len(files) > 200
    assert differences(files) == []


def test_fast_path_matches_pydicom_on_real_and_broken_files(data_dir: Path, tmp_path: Path) -> None:
    corpus = make_corpus(data_dir, tmp_path / "bad", seed=11)
    files = sorted(str(p) for p in corpus.folder.iterdir() if p.is_file())
    files += sorted(str(p) for p in (data_dir / "dcm_qa").rglob("*.dcm"))
    assert differences(files) == []


def test_fast_path_reads_real_ct(data_dir: Path) -> None:
    f = sorted((data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))[0]
    rec = read_header(str(f))
    assert rec.status == "image" and rec.modality == "CT" and (rec.rows, rec.columns) == (512, 512)
    assert rec.floats("orientation") == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert rec.transfer_syntax == "1.2.840.10008.1.2.1" and rec.image_type == "ORIGINAL\\PRIMARY\\AXIAL"


@pytest.mark.parametrize("name", ["emri_small_jpeg_2k_lossless_too_short.dcm"])
def test_truncated_encapsulated_pixels_are_not_an_image(name: str) -> None:
    path = Path(store).parent / "data" / name
    assert read_header(str(path)).status == "bad"


def test_a_file_that_takes_too_long_is_cut_off(data_dir: Path) -> None:
    f = str(sorted((data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))[0])
    headers.FAST_PATH = False  # the byte-level path is bounded by the file size; pydicom's gets a deadline
    try:
        rec = read_header(f, time_limit_s=-1.0)
    finally:
        headers.FAST_PATH = True
    assert rec.status == "bad" and rec.reason.startswith("timed out")
