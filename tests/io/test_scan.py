"""find_stacks on the real data: grouping, splitting, DICOMDIR, progress and cancel."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest

from viewer.io import series
from viewer.io.series import find_stacks

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def dicoms(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.dcm"))


@pytest.mark.parametrize("name, n", [("pancreas-ct-philips-134", 134), ("crc-chest-ct-ge-100", 100)])
def test_ct_series_is_one_stack(data_dir: Path, name: str, n: int) -> None:
    res = find_stacks(data_dir / "ct" / name)
    assert len(res.stacks) == 1
    s = res.stacks[0]
    assert len(s.files) == n and s.modality == "CT" and s.split_reason is None and not s.warnings
    assert s.series_uid and s.study_uid and s.patient_id
    assert (s.rows, s.columns) == (512, 512)
    # LICENSE, PROVENANCE.json ... are listed as not DICOM, not silently dropped.
    assert res.bad_files and all("not DICOM" in reason for _, reason in res.bad_files)


def test_empty_uids_still_group(data_dir: Path) -> None:
    folder = data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom"
    res = find_stacks(folder)
    assert len(res.stacks) == 1
    s = res.stacks[0]
    assert len(s.files) == 20 and s.series_uid == "" and s.study_uid == "" and s.modality == "CT"


def test_dcm_qa_series(data_dir: Path) -> None:
    qa = data_dir / "dcm_qa"

    def sizes(sub: str) -> list[int]:
        return sorted(len(s.files) for s in find_stacks(qa / sub).stacks)

    # One image per transfer syntax, all sharing one SeriesInstanceUID and position: SeriesNumber tells
    # them apart, so 9 one-image stacks (not one stack of 9 slices at the same place).
    ts = find_stacks(qa / "ts" / "In")
    assert [len(s.files) for s in ts.stacks] == [1] * 9
    assert all("SeriesNumber" in (s.split_reason or "") for s in ts.stacks)
    assert sizes("12bit/In") == [1, 1, 1]
    # Enhanced multi-frame: 4 Siemens volumes (one file each: one 4D stack) + 1 Philips 64-frame file.
    enh = find_stacks(qa / "enh" / "In")
    assert sorted((len(s.files), s.frames) for s in enh.stacks) == [(1, 64), (4, 24)]
    # Sagittal: a 5-slice field map, and two 6-volume mosaic fMRI runs: one 4D stack each (not one
    # browser row per time point), the volumes told apart by AcquisitionNumber.
    sag = find_stacks(qa / "sag" / "In")
    assert sorted(len(s.files) for s in sag.stacks) == [5, 6, 6]
    fmri = [s for s in sag.stacks if len(s.files) == 6]
    assert [s.volumes for s in fmri] == [6, 6]
    assert all(s.split_label == "4D: 6 time points (AcquisitionNumber)" and s.split_reason is None for s in fmri)
    assert not any(s.warnings for s in sag.stacks)


def test_two_series_linked_into_one_folder_split(data_dir: Path, tmp_path: Path) -> None:
    a = dicoms(data_dir / "ct" / "pancreas-ct-philips-134")
    b = dicoms(data_dir / "ct" / "crc-chest-ct-ge-100")
    for i, p in enumerate(a):
        os.symlink(p, tmp_path / f"x{i:03d}.dcm")
    for i, p in enumerate(b[:40]):  # copies, interleaved by name with the links
        (tmp_path / f"x{i:03d}b.dcm").write_bytes(p.read_bytes())
    res = find_stacks(tmp_path)
    assert sorted(len(s.files) for s in res.stacks) == [40, 134]
    assert not res.bad_files
    uids = {s.series_uid for s in res.stacks}
    assert len(uids) == 2
    # Files keep the path they were found under (the link), not the link's target.
    assert all(f.startswith(str(tmp_path)) for s in res.stacks for f in s.files)


def test_tree_groups_patient_study_series(data_dir: Path) -> None:
    res = find_stacks([data_dir / "ct" / "pancreas-ct-philips-134", data_dir / "dcm_qa" / "sag" / "In"])
    tree = res.tree()
    assert sorted(p["patient_id"] for p in tree) == ["23.11.28-15:22:51-STD-1.3.12.2.1107.5.2.43.167006",
                                                     "Pancreas-CT-CB_001", "jflab"]
    jflab = next(p for p in tree if p["patient_id"] == "jflab")
    (study,) = jflab["studies"]
    assert sorted((s["description"], s["files"], len(s["stacks"])) for s in study["series"]) == [
        ("fmri_SagAP", 6, 1), ("fmri_SagHF", 6, 1)]
    indices = [i for p in tree for st in p["studies"] for se in st["series"] for i in se["stacks"]]
    assert sorted(indices) == list(range(len(res.stacks)))


def test_dicomdir_lists_its_files() -> None:
    dicomdir = PYDICOM_FILES / "dicomdirtests" / "DICOMDIR"
    res = find_stacks(dicomdir)
    assert res.files_total == 31  # the records of pydicom's test DICOMDIR
    assert all(f.startswith(str(dicomdir.parent)) for s in res.stacks for f in s.files)
    assert not res.bad_files
    assert any("DICOMDIR" in reason for _, reason in res.non_image)


def test_non_image_objects_are_listed_not_bad() -> None:
    res = find_stacks([PYDICOM_FILES / "rtstruct.dcm", PYDICOM_FILES / "test-SR.dcm", PYDICOM_FILES / "CT_small.dcm"])
    assert len(res.stacks) == 1 and not res.bad_files
    reasons = dict(res.non_image)
    assert "RT Structure Set" in reasons[str(PYDICOM_FILES / "rtstruct.dcm")]
    assert "SR" in reasons[str(PYDICOM_FILES / "test-SR.dcm")]


def test_progress_and_cancel(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series, "BATCH", 16)
    calls: list[tuple[int, int]] = []
    res = find_stacks(data_dir / "ct" / "pancreas-ct-philips-134", progress=lambda d, t: calls.append((d, t)),
                      cancel=lambda: len(calls) > 2)
    assert res.cancelled
    assert res.headers_read == 32 < res.files_total
    assert calls[-1] == (32, res.files_total)
    full: list[tuple[int, int]] = []
    res = find_stacks(data_dir / "ct" / "pancreas-ct-philips-134", progress=lambda d, t: full.append((d, t)))
    assert not res.cancelled and full[-1] == (res.files_total, res.files_total)
    assert [d for d, _ in full] == sorted(d for d, _ in full)


def test_process_pool_gives_the_same_result(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series, "BATCH", 16)  # several batches, so the pool really runs
    folder = data_dir / "ct" / "crc-chest-ct-ge-100"
    one = find_stacks(folder, workers=1)
    two = find_stacks(folder, workers=2)
    assert [s.files for s in one.stacks] == [s.files for s in two.stacks]
    assert one.bad_files == two.bad_files


def test_stacks_are_handed_out_while_scanning(data_dir: Path) -> None:
    """Each folder's stacks come out as soon as the folder is read, before the scan ends, and the
    result reuses those very objects."""
    events: list[tuple[str, object]] = []
    result = find_stacks(data_dir / "ct", on_stack=lambda s: events.append(("stack", s)),
                         progress=lambda d, t: events.append(("progress", d)))
    early = [s for kind, s in events if kind == "stack"]
    assert len(early) == len(result.stacks) == 3
    assert {id(s) for s in early} == {id(s) for s in result.stacks}
    first_stack = next(i for i, (kind, _) in enumerate(events) if kind == "stack")
    last_progress = max(i for i, (kind, _) in enumerate(events) if kind == "progress")
    assert first_stack < last_progress  # listed while files were still being read


def test_a_series_spread_over_two_folders_is_regrouped(data_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series, "BATCH", 8)  # folder a is done batches before folder b
    src = sorted((data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))
    for i, f in enumerate(src):
        d = tmp_path / ("a" if i % 2 else "b")
        d.mkdir(exist_ok=True)
        os.symlink(f, d / f.name)
    early: list[object] = []
    result = find_stacks(tmp_path, on_stack=early.append)
    assert [len(s.files) for s in result.stacks] == [100]
    assert sorted(len(s.files) for s in early) == [50, 50]  # each folder listed on its own first,
    assert all(s is not result.stacks[0] for s in early)  # then regrouped: the caller drops them
