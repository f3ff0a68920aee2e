from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from viewer.annotations.labelsets import load_label_set
from viewer.annotations.model import ImageKey, Label, Roi, Suggestion, derived_uid
from viewer.annotations.paths import RESOURCES
from viewer.annotations.session import LabelingSession
from viewer.annotations.store import LabelStore

QUALITY = load_label_set(RESOURCES / "label_sets" / "image_quality.toml")
ORGANS = load_label_set(RESOURCES / "label_sets" / "abdominal_organs.toml")
IMAGES = [ImageKey("1.2", "1.2.3", f"1.2.3.{i}", 1) for i in range(5)]


@pytest.fixture()
def store(tmp_path: Path) -> LabelStore:
    with LabelStore(tmp_path / "s.sqlite") as s:
        yield s


def test_keys_set_labels_and_advance_to_next_unlabeled(store: LabelStore) -> None:
    store.set_label(Label(IMAGES[1], QUALITY.name, "limited", "earlier"))
    s = LabelingSession(store, QUALITY, IMAGES, "dr. a", clock=lambda: "2026-01-01T00:00:00+00:00")
    assert s.index == 0 and s.progress == (1, 5)
    lab = s.press_key("1")
    assert lab is not None and lab.label == "diagnostic" and lab.annotator == "dr. a"
    assert lab.time == "2026-01-01T00:00:00+00:00" and lab.source == "human"
    assert s.index == 2  # image 1 was already labeled: skipped
    assert s.press_key("x") is None and s.index == 2
    s.accept(Suggestion("non-diagnostic", "quality-net", "1.0.2", 0.87))
    saved = store.get_label(IMAGES[2], QUALITY.name)
    assert saved is not None and saved.source == "model" and saved.model_id == "quality-net"
    assert saved.model_version == "1.0.2" and saved.probability == pytest.approx(0.87)
    assert s.index == 3
    s.reject()
    assert s.index == 4 and store.get_label(IMAGES[3], QUALITY.name) is None
    s.set_label("limited")
    assert s.index == 3  # wraps round to the one left
    s.set_label("diagnostic")
    assert s.progress == (5, 5) and s.next_unlabeled() is None


def test_scope_is_checked(store: LabelStore) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="labels whole series"):
        LabelingSession(store, replace(QUALITY, scope="series"), IMAGES, "a")
    with pytest.raises(ValueError, match="labels single images"):
        LabelingSession(store, QUALITY, [ImageKey.series("1.2", "1.2.3")], "a")
    s = LabelingSession(store, replace(QUALITY, scope="series"), [ImageKey.series("1.2", "1.2.3")], "a")
    assert s.press_key("2").key.is_series
    with pytest.raises(ValueError, match="same Study/Series/SOP Instance UID and frame"):
        LabelingSession(store, QUALITY, [ImageKey("", "", "", 1)] * 2, "a")
    a, b = derived_uid("sop", "file-hash-1"), derived_uid("sop", "file-hash-2")
    assert a != b and a == derived_uid("sop", "file-hash-1") and a.startswith("2.25.") and len(a) <= 64
    with pytest.raises(ValueError, match="annotator"):
        LabelingSession(store, QUALITY, IMAGES, " ")


def test_undo_redo_restores_store_and_position(store: LabelStore) -> None:
    s = LabelingSession(store, QUALITY, IMAGES, "a")
    s.set_label("diagnostic")
    s.go_to(0)
    s.set_label("limited")  # relabel image 0
    assert store.get_label(IMAGES[0], QUALITY.name).label == "limited"
    assert s.undo() and s.index == 0 and store.get_label(IMAGES[0], QUALITY.name).label == "diagnostic"
    assert s.undo() and store.get_label(IMAGES[0], QUALITY.name) is None
    assert not s.undo()
    assert s.redo() and store.get_label(IMAGES[0], QUALITY.name).label == "diagnostic"
    s.go_to(0)
    s.clear_label()
    assert store.get_label(IMAGES[0], QUALITY.name) is None
    assert s.undo() and store.get_label(IMAGES[0], QUALITY.name).label == "diagnostic"
    with pytest.raises(KeyError, match="no label 'bogus'"):
        s.set_label("bogus")


def test_roi_add_edit_delete_undo(store: LabelStore) -> None:
    s = LabelingSession(store, ORGANS, IMAGES, "a")
    roi = Roi(IMAGES[0], "box", ((1, 2), (11, 22)), ORGANS.name, "liver", "a")
    s.add_roi(roi)
    s.add_roi(roi.with_(points=((0, 0), (5, 5))))
    assert store.get_roi(roi.roi_id).points == ((0.0, 0.0), (5.0, 5.0))
    s.remove_roi(roi.roi_id)
    assert store.rois() == []
    s.undo()
    s.undo()
    assert store.get_roi(roi.roi_id) == roi
    s.undo()
    assert store.get_roi(roi.roi_id) is None


def test_mask_brush_fill_copy_undo_and_persistence(store: LabelStore, tmp_path: Path) -> None:
    s = LabelingSession(store, ORGANS, IMAGES, "a")
    ed = s.mask_editor("liver", (5, 64, 48), IMAGES)
    assert ed.paint(2, (20.0, 30.0), 5.0)
    assert ed.mask[2, 30, 20] and ed.mask[2, 30, 25] and not ed.mask[2, 30, 26] and ed.mask.sum() == 81
    assert not ed.paint(2, (20.0, 30.0), 5.0)  # no change, no undo step
    assert ed.erase(2, (20.0, 30.0), 1.0) and not ed.mask[2, 30, 20]
    assert ed.fill_holes(2) and ed.mask[2, 30, 20]
    assert ed.copy_to_next(2) and np.array_equal(ed.mask[3], ed.mask[2])
    assert not ed.copy_to_next(4)
    # What the store holds equals what the editor shows, and reopening sees it.
    assert np.array_equal(store.load_mask("1.2.3", ORGANS.name, "liver", (5, 64, 48)), ed.mask)
    assert store.mask_slice_refs("1.2.3", ORGANS.name, "liver")[3] == ("1.2", "1.2.3.3", 1)
    s.undo()  # copy
    assert not ed.mask[3].any() and not store.load_mask_slice("1.2.3", ORGANS.name, "liver", 3, (64, 48)).any()
    s.undo()
    s.undo()  # erase
    assert ed.mask[2, 30, 20] and ed.mask.sum() == 81
    s.redo()
    assert not ed.mask[2, 30, 20]
    with LabelStore(tmp_path / "s.sqlite") as again:
        assert np.array_equal(again.load_mask("1.2.3", ORGANS.name, "liver", (5, 64, 48)), ed.mask)
    assert ed.fill(0, (0, 0)) and ed.mask[0].all()
    # A live drag: the mask follows the mouse, the store only gets the finished stroke, one undo step.
    before = ed.mask[1].copy()
    ed.begin_stroke(1)
    ed.stroke_to((5.0, 5.0), 2.0)
    ed.stroke_to((40.0, 5.0), 2.0)
    assert ed.mask[1, 5, 5:41].all()
    assert not store.load_mask_slice("1.2.3", ORGANS.name, "liver", 1, (64, 48)).any()
    assert ed.end_stroke()
    assert np.array_equal(store.load_mask_slice("1.2.3", ORGANS.name, "liver", 1, (64, 48)), ed.mask[1])
    s.undo()
    assert np.array_equal(ed.mask[1], before) and not store.load_mask_slice("1.2.3", ORGANS.name, "liver", 1,
                                                                             (64, 48)).any()
    ed.begin_stroke(1, erase=True)
    ed.stroke_to((5.0, 5.0), 2.0)
    ed.cancel_stroke()
    assert not ed.end_stroke()
    with pytest.raises(ValueError, match="5 slice references for a volume of 4 slices"):
        s.mask_editor("liver", (4, 64, 48), IMAGES)
