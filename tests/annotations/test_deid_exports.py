"""Every element of every de-identified export (SEG, SR, NIfTI and its sidecar, CSV, JSON) read back and
checked against PS3.15 Table E.1-1; nothing identifying from the sources appears in any of them."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from viewer.annotations.deid import Deidentifier, action_of, profile
from viewer.annotations.model import ImageKey, Label, Roi
from viewer.annotations.store import LabelStore
from viewer.cli import main

ORGANS = "Abdominal organs"
LOGIN = "jdoe-login"


def _with_phi(ds: Dataset, k: int) -> Dataset:
    """A real slice with the attributes the audit found leaking, and more, filled in."""
    ds.InstitutionName = "St. Example Hospital"
    ds.ReferringPhysicianName = "Who^Doctor"
    ds.OperatorsName = "Op^Erator"
    ds.AccessionNumber = "ACC123456"
    ds.PatientBirthDate = "19600329"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20110613"
    ds.ClinicalTrialTimePointID = "TP-VISIT-3"
    ds.ClinicalTrialTimePointDescription = "third visit after surgery"
    ds.ClinicalTrialSubjectID = "SUBJ-0042"
    item = Dataset()
    item.Manufacturer = "ACME"
    item.ContributionDateTime = "20110613101500"
    item.ContributionDescription = "reconstructed by Dr Smith at St. Example"
    ds.ContributingEquipmentSequence = Sequence([item])
    ds.add_new(0x00091010, "LO", "private vendor secret")
    return ds


@pytest.fixture(scope="module")
def series_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("phi")
    for k, f in enumerate(sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[60:64]):
        _with_phi(pydicom.dcmread(f), k).save_as(folder / f.name, enforce_file_format=False)
    return folder


def _phi_of(sources: list[Dataset]) -> set[str]:
    """Every value of every attribute the profile names (and every UID, date, person name) in the
    sources: none of them may appear in a de-identified export."""
    out: set[str] = {LOGIN}

    def walk(ds: Dataset) -> None:
        for elem in ds:
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)
                continue
            named = action_of(int(elem.tag)) is not None or elem.tag.is_private
            if named or elem.VR in ("UI", "PN", "DA", "DT"):
                if elem.VR == "UI" and str(elem.value).startswith("1.2.840.10008."):
                    continue  # classes and transfer syntaxes are the standard's, not the patient's
                values = elem.value if elem.VM > 1 else [elem.value]
                out.update(str(v).strip() for v in values if len(str(v).strip()) >= 6)

    for ds in sources:
        walk(ds)
    return out


def _check_dicom(path: Path, sources: list[Dataset]) -> None:
    """Each element against the table: X absent, Z empty, D and U changed from every source value."""
    ds = pydicom.dcmread(path)
    source_values: dict[int, set[str]] = {}
    for src in sources:
        for elem in src.iterall():
            if elem.VR != "SQ":
                source_values.setdefault(int(elem.tag), set()).add(str(elem.value))
    problems = []
    for elem in ds.iterall():
        if elem.tag.is_private:
            problems.append(f"private {elem.tag} kept")
            continue
        action = action_of(int(elem.tag))
        if action is None or elem.keyword in ("PatientName", "PatientID"):
            continue
        if action == "X":
            problems.append(f"{elem.keyword} present (X: remove)")
        elif action == "Z" and elem.VR != "SQ" and elem.value not in ("", None, b""):
            problems.append(f"{elem.keyword} = {elem.value!r} (Z: empty)")
        elif action in ("D", "U") and elem.VR != "SQ" and str(elem.value) in source_values.get(int(elem.tag), ()):
            problems.append(f"{elem.keyword} kept its source value (action {action})")
    assert problems == [], path.name
    assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "REMOVED"


def test_every_export_against_the_profile(data_dir: Path, series_dir: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from viewer.annotations.roi_geometry import slice_keys
    from viewer.io import load_series

    monkeypatch.setenv("VIEWER_DATA_DIR", str(tmp_path / "data"))
    keys: list[ImageKey] = slice_keys(load_series(series_dir))
    mask = np.zeros((len(keys), 512, 512), bool)
    mask[1, 200:240, 100:180] = True
    with LabelStore() as store:
        store.put_labels([Label(k, "Image quality", "diagnostic", LOGIN) for k in keys])
        store.save_mask(keys[0].series_uid, ORGANS, "liver", mask, keys, annotator=LOGIN)
        store.put_rois([Roi(keys[1], "box", ((100, 120), (150, 160)), ORGANS, "liver", LOGIN)])
    sources = [pydicom.dcmread(f) for f in sorted(series_dir.iterdir())]
    phi = _phi_of(sources)
    assert {"St. Example Hospital", "TP-VISIT-3", "20110613101500", "ACC123456"} <= phi
    outs = {}
    for fmt, name in (("csv", "l.csv"), ("json", "l.json"), ("seg", "s.dcm"), ("sr", "r.dcm"),
                      ("nifti", "m.nii.gz")):
        out = tmp_path / name
        args = ["labels", "export", "--format", fmt, "--out", str(out), "--deidentify"]
        if fmt in ("seg", "sr", "nifti"):
            args += ["--series", str(series_dir)]
        assert main(args) == 0, fmt
        outs[fmt] = out
    outs["sidecar"] = Path(str(outs["nifti"]) + ".labels.json")
    for fmt in ("seg", "sr"):
        _check_dicom(outs[fmt], sources)
    import gzip

    for fmt, path in outs.items():
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        leaked = sorted(v for v in phi if v.encode() in data)
        assert leaked == [], fmt
    key = tmp_path / "data" / "deid.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def test_profile_covers_the_whole_table_and_the_audit_findings() -> None:
    exact, masked = profile()
    assert len(exact) + len(masked) > 600  # PS3.15 Table E.1-1 has ~650 rows
    kw = {pydicom.datadict.keyword_for_tag(t): a for t, a in exact.items()}
    assert kw["ContributionDateTime"] == "X" and kw["ContributionDescription"] == "X"
    assert kw["ClinicalTrialTimePointID"] == "Z" and kw["ClinicalTrialTimePointDescription"] == "X"
    assert action_of(0x50001234) == "X" and action_of(0x60024000) == "X"  # curves, overlay comments


def test_dates_shifted_per_patient_with_the_key(data_dir: Path, series_dir: Path) -> None:
    src = pydicom.dcmread(sorted(series_dir.iterdir())[0])
    on = Deidentifier(b"k" * 16, shift_dates=True)
    out = on.dataset(src)
    days = on.date_shift_days(str(src.PatientID))
    assert 365 <= days <= 3651 and days == Deidentifier(b"k" * 16).date_shift_days(str(src.PatientID))
    import datetime as dt

    assert dt.datetime.strptime(out.StudyDate, "%Y%m%d") == dt.datetime(2011, 6, 13) - dt.timedelta(days=days)
    assert out.ContributingEquipmentSequence[0].ContributionDateTime == \
        (dt.date(2011, 6, 13) - dt.timedelta(days=days)).strftime("%Y%m%d") + "101500"
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    assert [c.CodeValue for c in out.DeidentificationMethodCodeSequence] == ["113100", "113107"]
    off = Deidentifier(b"k" * 16).dataset(src)
    assert off.StudyDate == "" and "ContributionDateTime" not in off.ContributingEquipmentSequence[0]


def test_burned_in_annotation_needs_an_opt_in(series_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from viewer.annotations.roi_geometry import slice_keys
    from viewer.io import load_series

    monkeypatch.setenv("VIEWER_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "burned"
    folder.mkdir()
    for f in sorted(series_dir.iterdir()):
        ds = pydicom.dcmread(f)
        ds.BurnedInAnnotation = "YES"
        ds.save_as(folder / f.name, enforce_file_format=False)
    keys = slice_keys(load_series(folder))
    with LabelStore() as store:
        store.put_rois([Roi(keys[1], "box", ((100, 120), (150, 160)), ORGANS, "liver", LOGIN)])
    out = tmp_path / "r.dcm"
    args = ["labels", "export", "--format", "sr", "--series", str(folder), "--out", str(out), "--deidentify"]
    assert main(args) == 2 and not out.exists()
    assert "BurnedInAnnotation YES" in capsys.readouterr().err
    assert main(args + ["--accept-burned-in"]) == 0 and out.exists()
    assert "warning:" in capsys.readouterr().err
