"""PS3.15 Basic Profile de-identification: identity replaced consistently, UIDs remapped consistently."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from viewer.annotations.deid import Deidentifier, user_secret


@pytest.fixture(scope="module")
def two_files(data_dir: Path) -> list[pydicom.Dataset]:
    files = sorted((data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))[:2]
    return [pydicom.dcmread(f, stop_before_pixels=True) for f in files]


def test_identity_and_uids_consistent_across_files(two_files: list) -> None:
    d = Deidentifier(b"k" * 16)
    a, b = (d.dataset(ds) for ds in two_files)
    src = two_files[0]
    assert a.PatientName == b.PatientName == a.PatientID == d.pseudonym(str(src.PatientID))
    assert str(a.PatientName) != str(src.PatientName)
    assert a.StudyInstanceUID == b.StudyInstanceUID != src.StudyInstanceUID
    assert a.SeriesInstanceUID == b.SeriesInstanceUID and a.FrameOfReferenceUID == b.FrameOfReferenceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID and a.SOPInstanceUID.startswith("2.25.")
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert a.SOPClassUID == src.SOPClassUID  # classes are not instances: kept
    # A second de-identifier with the same key maps identically (consistency across runs)...
    again = Deidentifier(b"k" * 16).dataset(two_files[0])
    assert again.SOPInstanceUID == a.SOPInstanceUID and again.PatientID == a.PatientID
    # ...and one with another key does not (nobody without the key can recompute the mapping).
    assert Deidentifier(b"x" * 16).dataset(two_files[0]).SOPInstanceUID != a.SOPInstanceUID
    assert len(a.SOPInstanceUID) <= 64


def test_phi_absent_and_profile_recorded(two_files: list, tmp_path: Path) -> None:
    src = two_files[0].copy()
    src.InstitutionName = "St. Example Hospital"
    src.ReferringPhysicianName = "Who^Doctor"
    src.PatientBirthDate = "19600329"
    src.OperatorsName = "Op^Erator"
    src.AccessionNumber = "ACC123456"
    src.add_new(0x00091001, "LO", "private vendor secret")
    out = Deidentifier(b"k" * 16).dataset(src)
    path = tmp_path / "x.dcm"
    out.save_as(path, enforce_file_format=True)
    raw = path.read_bytes()
    for phi in ["St. Example Hospital", "Who^Doctor", "19600329", "Op^Erator", "ACC123456", "private vendor",
                str(src.PatientID), str(src.StudyInstanceUID), str(src.SOPInstanceUID)]:
        assert phi.encode() not in raw, phi
    assert out.StudyDate == "" and "AcquisitionDate" not in out and "SeriesDate" not in out
    assert out.PatientIdentityRemoved == "YES"
    code = out.DeidentificationMethodCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert src.InstitutionName == "St. Example Hospital" and 0x00091001 in src  # the input is not modified


def test_user_secret_is_created_once(tmp_path: Path) -> None:
    key = user_secret(tmp_path / "deid.key")
    assert len(key) == 32 and user_secret(tmp_path / "deid.key") == key
    with pytest.raises(ValueError, match="at least 8 bytes"):
        Deidentifier(b"short")
