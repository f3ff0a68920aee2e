"""``python -m viewer labels``: export/import round trips through the command line on real CT."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

from viewer.annotations.model import ImageKey, Label, Roi
from viewer.annotations.store import LabelStore
from viewer.cli import main

ORGANS = "Abdominal organs"


@pytest.fixture(scope="module")
def series_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 slices of the Philips pancreas CT, linked (not copied) into a folder of their own."""
    folder = tmp_path_factory.mktemp("ct6")
    for f in sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[:6]:
        os.symlink(f, folder / f.name)
    return folder


@pytest.fixture(scope="module")
def keys(series_dir: Path) -> list[ImageKey]:
    """ImageKey per z, in the order viewer.io loads the series."""
    from viewer.annotations.roi_geometry import slice_keys
    from viewer.io import load_series

    keys = slice_keys(load_series(series_dir))
    assert all(k.frame == 1 and k.sop_uid for k in keys)
    return keys


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VIEWER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VIEWER_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path


def test_csv_export_import_and_deidentified(env: Path, keys: list[ImageKey], capsys: pytest.CaptureFixture) -> None:
    with LabelStore() as store:  # the user's default store, under $VIEWER_DATA_DIR
        store.put_labels([Label(k, "Image quality", "diagnostic", "a") for k in keys[:3]])
    out = env / "l.csv"
    assert main(["labels", "export", "--format", "csv", "--out", str(out)]) == 0
    assert "exported 3 labels" in capsys.readouterr().out
    other = env / "other.sqlite"
    assert main(["labels", "import", "--format", "csv", str(out), "--store", str(other)]) == 0
    with LabelStore(other) as s2, LabelStore() as s1:
        assert s2.labels() == s1.labels()
    anon = env / "anon.csv"
    assert main(["labels", "export", "--format", "csv", "--out", str(anon), "--deidentify"]) == 0
    text = anon.read_text()
    assert keys[0].sop_uid not in text and keys[0].study_uid not in text and text.count("2.25.") == 9
    assert (env / "data" / "deid.key").is_file()


def test_malformed_import_exit_2_and_store_unchanged(env: Path, capsys: pytest.CaptureFixture) -> None:
    bad = env / "bad.json"
    bad.write_text('{"format": "dicom-viewer-labels", "version": 1, "labels": [{"study_uid": "1.2"}]}')
    assert main(["labels", "import", "--format", "json", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "labels[0]: field 'series_uid' is missing" in err
    with LabelStore() as store:
        assert store.labels() == []
    assert main(["labels", "import", "--format", "csv", str(env / "none.csv")]) == 2
    assert main(["labels", "export", "--format", "seg", "--out", str(env / "x.dcm")]) == 2
    assert "--series PATH is needed" in capsys.readouterr().err


def test_seg_and_nifti_export_import(env: Path, series_dir: Path, keys: list[ImageKey],
                                     capsys: pytest.CaptureFixture) -> None:
    mask = np.zeros((6, 512, 512), bool)
    mask[2, 200:240, 100:180] = True
    mask[3, 205:235, 110:170] = True
    spleen = np.zeros_like(mask)
    spleen[4, 10:20, 30:40] = True
    with LabelStore() as store:
        store.save_mask(keys[0].series_uid, ORGANS, "liver", mask, keys, annotator="a")
        store.save_mask(keys[0].series_uid, ORGANS, "spleen", spleen, keys, annotator="a")
    seg = env / "seg.dcm"
    assert main(["labels", "export", "--format", "seg", "--series", str(series_dir), "--out", str(seg)]) == 0
    ds = pydicom.dcmread(seg)
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["liver", "spleen"]
    assert ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"  # from the set
    nii = env / "m.nii.gz"
    assert main(["labels", "export", "--format", "nifti", "--series", str(series_dir), "--out", str(nii)]) == 0
    for fmt, path in (("seg", seg), ("nifti", nii)):
        other = env / f"{fmt}.sqlite"
        assert main(["labels", "import", "--format", fmt, str(path), "--store", str(other), "--series",
                     str(series_dir), "--label-set", ORGANS, "--annotator", "importer"]) == 0
        with LabelStore(other) as s2:
            assert s2.mask_labels(keys[0].series_uid) == [(ORGANS, "liver"), (ORGANS, "spleen")]
            assert np.array_equal(s2.load_mask(keys[0].series_uid, ORGANS, "liver", mask.shape), mask)
            assert np.array_equal(s2.load_mask(keys[0].series_uid, ORGANS, "spleen", mask.shape), spleen)
            assert s2.mask_slice_refs(keys[0].series_uid, ORGANS, "liver")[2] == (keys[2].study_uid,
                                                                                 keys[2].sop_uid, 1)
    # A label set that lacks the labels: refused, nothing written.
    other = env / "refused.sqlite"
    assert main(["labels", "import", "--format", "seg", str(seg), "--store", str(other), "--series",
                 str(series_dir), "--label-set", "Image quality"]) == 2
    assert "not in label set 'Image quality'" in capsys.readouterr().err
    with LabelStore(other) as s3:
        assert s3.mask_labels(keys[0].series_uid) == []


def test_sr_export_import(env: Path, series_dir: Path, keys: list[ImageKey]) -> None:
    rois = [Roi(keys[1], "line", ((10, 10), (40, 50)), annotator="Doe^Jane"),
            Roi(keys[2], "box", ((100, 120), (150, 160)), ORGANS, "liver", "Doe^Jane")]
    with LabelStore() as store:
        store.put_rois(rois)
    sr = env / "sr.dcm"
    assert main(["labels", "export", "--format", "sr", "--series", str(series_dir), "--out", str(sr)]) == 0
    other = env / "sr.sqlite"
    assert main(["labels", "import", "--format", "sr", str(sr), "--store", str(other)]) == 0
    with LabelStore(other) as s2:
        back = s2.rois()
    assert sorted((r.roi_id, r.kind, r.points, r.key, r.label) for r in back) == \
        sorted((r.roi_id, r.kind, r.points, r.key, r.label) for r in rois)
    anon = env / "anon_sr.dcm"
    assert main(["labels", "export", "--format", "sr", "--series", str(series_dir), "--out", str(anon),
                 "--deidentify"]) == 0
    assert keys[0].study_uid.encode() not in anon.read_bytes()


def test_seg_of_a_multiframe_file(env: Path, data_dir: Path) -> None:
    from viewer.annotations.roi_geometry import slice_keys
    from viewer.io import load_series

    path = data_dir / "dcm_qa" / "enh" / "In" / "Siemens" / "XA10" / "6_1.dcm"
    keys = slice_keys(load_series(path))
    assert len({k.frame for k in keys}) == 6
    mask = np.zeros((6, 64, 64), bool)
    mask[2, 20:30, 20:40] = True
    with LabelStore() as store:
        store.save_mask(keys[0].series_uid, ORGANS, "liver", mask, keys)
    out = env / "mf.dcm"
    assert main(["labels", "export", "--format", "seg", "--series", str(path), "--out", str(out)]) == 0
    other = env / "mf.sqlite"
    assert main(["labels", "import", "--format", "seg", str(out), "--series", str(path), "--store", str(other),
                 "--label-set", ORGANS]) == 0
    with LabelStore(other) as s2:
        assert np.array_equal(s2.load_mask(keys[0].series_uid, ORGANS, "liver", mask.shape), mask)
        assert s2.mask_slice_refs(keys[0].series_uid, ORGANS, "liver")[2] == (keys[2].study_uid, keys[2].sop_uid,
                                                                              keys[2].frame)


def test_sets_json(env: Path, capsys: pytest.CaptureFixture) -> None:
    (env / "config" / "label_sets").mkdir(parents=True)
    (env / "config" / "label_sets" / "bad.toml").write_text('name = "x"\n[[labels]]\nname = "a"\ncolor = "blue"\n')
    assert main(["labels", "sets", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {s["name"] for s in doc["label_sets"]} >= {ORGANS, "Image quality"}
    assert len(doc["errors"]) == 1 and "labels[0].color" in doc["errors"][0]
