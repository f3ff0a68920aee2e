"""A list of files is scanned like their folder: the DICOMDIR probe reads only the file meta group."""

from __future__ import annotations

from pathlib import Path

import pytest

pydicom = pytest.importorskip("pydicom")

from viewer.io.dicomdir import DICOMDIR_CLASS, is_dicomdir, media_storage_class  # noqa: E402
from viewer.io.series import find_stacks  # noqa: E402

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def test_media_storage_class_matches_pydicom_on_real_files(data_dir):
    files = [*sorted((data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))[:3],
             *sorted(TEST_FILES.rglob("DICOMDIR*")), TEST_FILES / "CT_small.dcm", TEST_FILES / "JPEG2000.dcm"]
    for f in files:
        meta = pydicom.dcmread(f, stop_before_pixels=True).file_meta
        assert media_storage_class(f.read_bytes()[:4096]) == str(meta.MediaStorageSOPClassUID), f.name
    assert is_dicomdir(str(next(TEST_FILES.rglob("DICOMDIR-empty.dcm"))))  # a DICOMDIR under another name
    assert not is_dicomdir(str(TEST_FILES / "CT_small.dcm"))
    assert media_storage_class(b"\0" * 200) is None
    assert DICOMDIR_CLASS == "1.2.840.10008.1.3.10"


def test_a_list_of_files_gives_the_stacks_of_their_folder(data_dir, monkeypatch):
    folder = data_dir / "ct" / "pancreas-ct-philips-134"
    files = sorted(str(f) for f in folder.glob("*.dcm"))
    by_folder = find_stacks(folder)
    import pydicom as pd

    calls = []
    real = pd.dcmread
    monkeypatch.setattr(pd, "dcmread", lambda *a, **k: calls.append(a) or real(*a, **k))
    by_list = find_stacks(files)
    assert calls == []  # neither the DICOMDIR probe nor the header pass parses a file with pydicom
    assert [sorted(s.files) for s in by_list.stacks] == [sorted(s.files) for s in by_folder.stacks]
