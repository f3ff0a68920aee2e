from __future__ import annotations

import json
from pathlib import Path

import pytest

from viewer.annotations.model import ImageKey, Label, Roi
from viewer.annotations.store import LabelStore
from viewer.annotations.tabular import (LabelFileError, import_labels, labels_to_csv, labels_to_json,
                                        read_labels_csv)

K = [ImageKey("1.2.826.0.1", "1.2.826.0.1.2", f"1.2.826.0.1.2.{i}", 1) for i in range(3)]
LABELS = [
    Label(K[0], "Image quality", "diagnostic", "Dr. Ünïcode, \"quoted\"", "2026-11-27T05:00:00+00:00"),
    Label(K[1], "Image quality", "limited", "b", "2026-11-27T05:00:01.250000+00:00", "model", "q-net", "2.1",
          0.8125),
    Label(ImageKey.series("1.2.826.0.1", "1.2.826.0.1.2"), "Normal / abnormal", "abnormal", "c",
          "2026-11-27T05:00:02+00:00"),
]
ROIS = [Roi(K[2], "polygon", ((1.5, 2), (10, 2), (10, 12.25)), "Abdominal organs", "liver", "a",
            "2026-11-27T05:00:03+00:00", roi_id="r1"),
        Roi(K[2], "line", ((0, 0), (3, 4)), annotator="a", time="2026-11-27T05:00:04+00:00", roi_id="r2")]


@pytest.fixture()
def store(tmp_path: Path) -> LabelStore:
    with LabelStore(tmp_path / "s.sqlite") as s:
        s.put_all(LABELS, ROIS)
        yield s


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_round_trip(store: LabelStore, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"labels.{fmt}"
    if fmt == "csv":
        assert labels_to_csv(store.labels(), out) == 3
    else:
        assert labels_to_json(store.labels(), out, rois=store.rois()) == 3
    with LabelStore(tmp_path / "other.sqlite") as other:
        assert import_labels(other, out, fmt) == (3, 2 if fmt == "json" else 0)
        assert other.labels() == store.labels()
        if fmt == "json":
            assert other.rois() == store.rois()


def test_csv_has_one_row_per_label_with_the_documented_columns(store: LabelStore, tmp_path: Path) -> None:
    out = tmp_path / "l.csv"
    labels_to_csv(store.labels(), out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ("study_uid,series_uid,sop_uid,frame,label_set,label,annotator,time,source,model_id,"
                        "model_version,probability")
    assert len(lines) == 4
    # Rows sorted by UIDs: the series label (empty sop_uid) first.
    assert lines[1].startswith("1.2.826.0.1,1.2.826.0.1.2,,0,Normal / abnormal,abnormal,c,")
    assert lines[3] == ("1.2.826.0.1,1.2.826.0.1.2,1.2.826.0.1.2.1,1,Image quality,limited,b,"
                        "2026-11-27T05:00:01.250000+00:00,model,q-net,2.1,0.8125")


def _csv_with(tmp_path: Path, store: LabelStore, old: str, new: str) -> Path:
    out = tmp_path / "bad.csv"
    labels_to_csv(store.labels(), out)
    text = out.read_text(encoding="utf-8")
    assert old in text
    out.write_text(text.replace(old, new, 1), encoding="utf-8")
    return out


@pytest.mark.parametrize("old, new, message", [
    ("0.8125", "1.5", "line 4: field 'probability': 1.5 is outside 0..1"),
    ("0.8125", "high", "line 4: field 'probability': 'high' is not a number"),
    ("2026-11-27T05:00:01.250000+00:00", "yesterday", "line 4: field 'time'"),
    (",model,", ",robot,", "line 4: field 'source'"),
    ("1.2.826.0.1.2.1,", "1.2.826.0.01.x,", "line 4: field 'sop_uid'"),
    ("q-net", "", "line 4: field 'model_id' is missing"),
])
def test_malformed_csv_names_line_and_field_and_overwrites_nothing(store: LabelStore, tmp_path: Path, old: str,
                                                                    new: str, message: str) -> None:
    bad = _csv_with(tmp_path, store, old, new)
    # Change the store first, so that a partial import would be visible.
    store.set_label(Label(K[0], "Image quality", "non-diagnostic", "me"))
    before = store.labels()
    with pytest.raises(LabelFileError) as err:
        import_labels(store, bad, "csv")
    assert message in str(err.value) and "bad.csv" in str(err.value)
    assert store.labels() == before


def test_bad_header_and_unknown_label(store: LabelStore, tmp_path: Path) -> None:
    bad = tmp_path / "h.csv"
    bad.write_text("study_uid,label\n1.2,x\n")
    with pytest.raises(LabelFileError, match="line 1: header lacks column"):
        read_labels_csv(bad)
    good = tmp_path / "g.csv"
    labels_to_csv(store.labels(), good)
    with pytest.raises(LabelFileError, match="line 3: field 'label': 'diagnostic' is not in label set"):
        read_labels_csv(good, known={"Image quality": ["good", "bad"]})


def test_malformed_json(store: LabelStore, tmp_path: Path) -> None:
    out = tmp_path / "l.json"
    labels_to_json(store.labels(), out, rois=store.rois())
    before = store.labels()
    doc = json.loads(out.read_text())
    doc["labels"][2]["frame"] = "two"
    out.write_text(json.dumps(doc))
    with pytest.raises(LabelFileError, match=r"labels\[2\]: field 'frame'"):
        import_labels(store, out, "json")
    doc["labels"][2]["frame"] = 1
    doc["rois"][1]["points"] = [[0, 0]]
    out.write_text(json.dumps(doc))
    with pytest.raises(LabelFileError, match=r"rois\[1\]: field 'points': a line ROI needs 2 points"):
        import_labels(store, out, "json")
    out.write_text('{"format": "dicom-viewer-labels",\n "version": 1,\n "labels": [,]}')
    with pytest.raises(LabelFileError, match="line 3 column"):
        import_labels(store, out, "json")
    assert store.labels() == before


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_mutated_files_only_ever_raise_label_file_error(store: LabelStore, tmp_path: Path, fmt: str) -> None:
    """Random byte edits of a valid file: either it still parses, or a LabelFileError; never a crash."""
    import random

    good = tmp_path / f"good.{fmt}"
    if fmt == "csv":
        labels_to_csv(store.labels(), good)
    else:
        labels_to_json(store.labels(), good, rois=store.rois())
    base = good.read_bytes()
    rng = random.Random(6)
    path = tmp_path / f"m.{fmt}"
    inserts = [b'"', b",", b"\n", b"\x00", b"{", b"]", b"null", b"1e999", b"-1", b"true", b"\xff"]
    for _ in range(250):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            op = rng.random()
            if op < 0.4:
                data[pos] = rng.randrange(256)
            elif op < 0.7:
                del data[pos:pos + rng.randint(1, 20)]
            else:
                data[pos:pos] = rng.choice(inserts)
        path.write_bytes(bytes(data))
        try:
            import_labels(store, path, fmt)
        except LabelFileError:
            pass
