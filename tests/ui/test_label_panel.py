"""The labeling dock on the real main window: keys label and advance, AI suggestions, brush, measurements
kept across a window close/reopen, and the evaluation panel on a known set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.ui.conftest import open_and_wait, paint_and_measure


@pytest.fixture
def store(tmp_path: Path):
    from viewer.annotations.store import LabelStore

    s = LabelStore(tmp_path / "labels.sqlite")
    yield s
    s.close()


def _window(qtbot, tmp_path: Path, store, pancreas_dir: Path, name: str = "a"):
    from viewer.app import build_main_window
    from viewer.ai.inference import ModelInference
    from viewer.ui.label_panel import attach_label_panel

    window = build_main_window(settings_file=str(tmp_path / f"settings-{name}.ini"))
    qtbot.addWidget(window)
    window.resize(1400, 900)
    panel = attach_label_panel(window, store, ModelInference(device="cpu"))
    window.show()
    open_and_wait(qtbot, window, [pancreas_dir])
    return window, panel


@pytest.fixture
def labelled_window(qtbot, tmp_path: Path, store, pancreas_dir: Path, io_services):
    window, panel = _window(qtbot, tmp_path, store, pancreas_dir)
    panel.set_label_set("Normal / abnormal")
    panel.annotator_edit.setText("dr-test")
    panel.annotator_edit.editingFinished.emit()
    yield window, panel
    window.background.cancel_all()
    window.background.wait_idle(10000)


def test_keys_label_and_advance_to_next_unlabeled(labelled_window, qtbot, store) -> None:
    window, panel = labelled_window
    view = panel.view
    assert panel.session is not None and len(panel.session.images) == 134
    view.set_slice(0)
    panel.mode_box.setChecked(True)  # starts at the first unlabeled slice from the one shown
    assert view.slice_index == 0
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_2)  # "abnormal"
    assert view.slice_index == 1
    qtbot.keyClick(view, Qt.Key.Key_1)  # "normal"
    assert view.slice_index == 2
    keys = panel.session.images
    lab0 = store.get_label(keys[0], "Normal / abnormal")
    assert lab0 is not None and lab0.label == "abnormal" and lab0.annotator == "dr-test" and lab0.time
    assert store.get_label(keys[1], "Normal / abnormal").label == "normal"
    assert panel.progress_label.text() == "2 of 134 labelled"
    assert [panel.done_list.item(i).text() for i in range(panel.done_list.count())] == [
        "slice 1: abnormal (dr-test)", "slice 2: normal (dr-test)"]
    # Skipping over labelled slices: go back to 0, label slice 2 from there -> lands on 3.
    view.set_slice(2)
    qtbot.keyClick(view, Qt.Key.Key_3)
    assert view.slice_index == 3
    # Undo takes back the last label and shows its slice.
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert store.get_label(keys[2], "Normal / abnormal") is None and view.slice_index == 2
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert store.get_label(keys[2], "Normal / abnormal").label == "uncertain"
    # Keys outside the set still reach the viewport (no label set, no move).
    before = view.slice_index
    qtbot.keyClick(view, Qt.Key.Key_9)
    assert view.slice_index == before


def test_accepting_a_suggestion_records_the_model(labelled_window, qtbot, store) -> None:
    window, panel = labelled_window
    view = panel.view
    panel.mode_box.setChecked(True)
    view.set_slice(5)
    assert panel.offer_suggestion("abnormal", 0.87, "pneumonia-cxr", "1.2.0")
    assert "87%" in panel.suggestion_label.text()
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Return)
    lab = store.get_label(panel.session.images[5], "Normal / abnormal")
    assert (lab.label, lab.source, lab.model_id, lab.model_version) == ("abnormal", "model", "pneumonia-cxr", "1.2.0")
    assert lab.probability == pytest.approx(0.87) and lab.annotator == "dr-test"
    assert view.slice_index == 6 and panel.suggestion is None
    # Reject: nothing saved, the view moves on.
    panel.offer_suggestion("normal", 0.6, "m", "1")
    qtbot.keyClick(view, Qt.Key.Key_Backspace)
    assert store.get_label(panel.session.images[6], "Normal / abnormal") is None and view.slice_index == 7
    assert not panel.offer_suggestion("liver", 0.9, "organ-ct", "1")  # not in this set


def test_brush_paints_a_disc_eraser_removes_it_undo_restores(labelled_window, qtbot, store) -> None:
    window, panel = labelled_window
    brush, view = panel.brush, panel.view
    brush.label_box.setCurrentText("abnormal")
    brush.set_mode("brush")
    view.set_slice(60)
    brush.size_box.setValue(10)
    assert brush.paint_at(200.0, 300.0)
    ed = brush.editor
    rows, cols = np.mgrid[0:512, 0:512]
    disc = (rows - 200) ** 2 + (cols - 300) ** 2 <= 10 ** 2
    np.testing.assert_array_equal(ed.mask[60], disc)
    saved = store.load_mask(view.volume.series_uid, "Normal / abnormal", "abnormal", view.volume.shape)
    np.testing.assert_array_equal(saved[60], disc)
    assert not saved[59].any()
    # The overlay shows the disc in the label's colour at the chosen opacity.
    rgba = brush.overlay.image
    assert rgba.shape == (512, 512, 4) and (rgba[..., 3] > 0).sum() == disc.sum()
    brush.set_mode("eraser")
    brush.size_box.setValue(4)
    brush.paint_at(200.0, 300.0)
    hole = (rows - 200) ** 2 + (cols - 300) ** 2 <= 4 ** 2
    np.testing.assert_array_equal(ed.mask[60], disc & ~hole)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(ed.mask[60], disc)
    # [ and ] change the size; fill holes and copy to next slice.
    qtbot.keyClick(view, Qt.Key.Key_BracketRight)
    assert brush.radius == 5
    qtbot.keyClick(view, Qt.Key.Key_N)
    assert view.slice_index == 61
    np.testing.assert_array_equal(ed.mask[61], disc)


def test_brush_stroke_with_the_mouse_is_one_undo_step(labelled_window, qtbot) -> None:
    window, panel = labelled_window
    brush, view = panel.brush, panel.view
    brush.label_box.setCurrentText("normal")
    brush.set_mode("brush")
    view.set_slice(30)
    brush.size_box.setValue(3)
    brush.begin_stroke(100.0, 100.0)
    brush.stroke_to(100.0, 140.0)
    assert brush.end_stroke()
    ed = brush.editor
    assert ed.mask[30, 100, 100:141].all() and not ed.mask[30, 110, 100:141].any()
    assert panel.undo()
    assert not ed.mask[30].any()


def test_measurements_survive_closing_and_reopening_the_window(qtbot, tmp_path: Path, store, pancreas_dir: Path,
                                                                io_services) -> None:
    from viewer.state.measurements import Measurement

    window, panel = _window(qtbot, tmp_path, store, pancreas_dir, "first")
    view = panel.view
    view.set_slice(70)
    p0 = tuple(view.state.point_to_lps(100.0, 120.0))
    p1 = tuple(view.state.point_to_lps(160.0, 200.0))
    m = view.state.image.add_measurement(Measurement("distance", [p0, p1], "acquired", 70))
    gone = view.state.image.add_measurement(Measurement("rect", [p0, p1], "acquired", 70))
    length = m.value
    assert length > 50
    view.state.image.remove_measurement(gone)
    view.state.image.update_measurement(m, [p0, tuple(view.state.point_to_lps(200.0, 220.0))])
    moved = m.value
    assert len(store.rois(series_uid=view.volume.series_uid)) == 1
    # Showing the series again (a new volume empties the list) deletes nothing and draws it back.
    view.set_volume(view.volume)
    assert len(store.rois(series_uid=view.volume.series_uid)) == 1 and len(view.measurements()) == 1
    window.close()
    window.background.wait_idle(10000)

    window2, panel2 = _window(qtbot, tmp_path, store, pancreas_dir, "second")
    ms = panel2.view.measurements()
    assert len(ms) == 1 and ms[0].kind == "distance" and ms[0].slice_index == 70
    assert ms[0].value == pytest.approx(moved, rel=1e-6) and moved != pytest.approx(length)
    window2.background.cancel_all()
    window2.background.wait_idle(10000)


def test_evaluation_panel_shows_the_known_numbers(qtbot, tmp_path: Path, store, pancreas_dir: Path,
                                                  io_services) -> None:
    from viewer.ai.runner import classify_slices
    from viewer.ai.session import ModelSession

    window, panel = _window(qtbot, tmp_path, store, pancreas_dir)
    panel.set_label_set("Abdominal organs")
    ev = panel.eval_panel
    manifest = ev._manifests["organ-ct"]
    names = list(manifest.output.labels)
    zs, wrong = [50, 60, 70, 80], {60}
    top = classify_slices(ModelSession.get(manifest, "cpu"), panel.view.volume, zs).top_index
    for z, t in zip(zs, top):
        panel.view.set_slice(z)
        panel.set_label(names[(int(t) + 1) % len(names)] if z in wrong else names[int(t)])
    ev.model_box.setCurrentText("organ-ct")
    with qtbot.waitSignal(ev.evaluated, timeout=60000):
        assert ev.evaluate() is None  # runs on the window's worker thread
        assert not ev.run_button.isEnabled()
    r = ev.report
    assert ev.run_button.isEnabled()
    assert r is not None and r["n"] == 4 and r["accuracy"] == pytest.approx(0.75)
    assert "accuracy 0.750" in ev.summary.text() and ev.disagreements.count() == 1
    assert 0.0 < r["disagreements"][0]["probability"] <= 1.0
    cm = np.array(r["confusion_matrix"])
    assert cm.sum() == 4 and np.trace(cm) == 3
    total = sum(int(ev.confusion.item(i, j).text()) for i in range(ev.confusion.rowCount())
                for j in range(ev.confusion.columnCount()))
    assert total == 4
    panel.view.set_slice(0)
    item = ev.disagreements.item(0)
    ev._go_to(item)
    assert panel.view.slice_index == 60
    window.background.cancel_all()
    window.background.wait_idle(10000)


def test_mouse_drag_on_the_viewport_paints_with_the_brush(labelled_window, qtbot) -> None:
    window, panel = labelled_window
    brush, view = panel.brush, panel.view
    brush.label_box.setCurrentText("abnormal")
    brush.set_mode("brush")
    brush.size_box.setValue(5)
    view.set_slice(40)

    def screen(row: float, col: float):
        return view.mapFromScene(view.vb.mapViewToScene(view.slice_to_view(row, col)))

    vp = view.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=screen(256, 200))
    qtbot.mouseMove(vp, screen(256, 300))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=screen(256, 300))
    mask = brush.editor.mask[40]
    # Screen pixels are coarser than image pixels: the stroke's ends within a pixel or two.
    assert mask[256, 205:296].all() and not mask[270:].any() and not mask[:240].any()
    assert panel.undo() and not brush.editor.mask[40].any()


def test_a_models_suggestion_is_offered_and_accepted_end_to_end(qtbot, tmp_path: Path, store, pancreas_dir: Path,
                                                                io_services) -> None:
    """The AI dock's result for the image shown becomes the labelling suggestion; Enter saves it with the
    model as its source and the session moves on; the next image's suggestion comes from the series run."""
    from viewer.ai.inference import ModelInference
    from viewer.ui.ai_panel import attach_ai_panel
    from viewer.ui.label_panel import offer_ai_suggestions

    window, panel = _window(qtbot, tmp_path, store, pancreas_dir, "suggest")
    ai = attach_ai_panel(window, ModelInference(device="cpu"))
    offer_ai_suggestions(panel, ai)
    qtbot.waitUntil(lambda: bool(ai.entries), timeout=30000)
    panel.set_label_set("Abdominal organs")
    panel.annotator_edit.setText("dr-test")
    panel.annotator_edit.editingFinished.emit()
    view = panel.view
    view.set_slice(60)
    panel.mode_box.setChecked(True)
    assert ai.select_model("organ-ct")
    ai.out_of_scope.setChecked(True)  # an ROI model on whole slices: the reader allowed it
    with qtbot.waitSignal(ai.result_ready, timeout=60000):
        ai.classify_series()
    k = view.slice_index
    pred = ai.results.of(view.volume.series_uid).predictions
    top, p = pred.top(1)[k][0]
    assert panel.suggestion is not None and panel.suggestion.label == top
    assert f"{p:.0%}" in panel.suggestion_label.text()
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Return)
    saved = store.get_label(panel.session.images[k], "Abdominal organs")
    assert saved is not None and saved.label == top and saved.source == "model" and saved.model_id == "organ-ct"
    # The session moved to the next unlabelled image, whose suggestion is already there.
    assert view.slice_index != k
    k2 = view.slice_index
    assert panel.suggestion is not None and panel.suggestion.label == pred.top(1)[k2][0][0]
    window.background.cancel_all()
    ai.background.cancel_all()
    ai.background.wait_idle(20000)


def test_brush_outline_follows_the_cursor_at_the_brush_size(labelled_window, qtbot) -> None:
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    window, panel = labelled_window
    brush, view = panel.brush, panel.view
    brush.label_box.setCurrentText("abnormal")
    vp = view.viewport()

    def move(x: int, y: int) -> None:  # a real mouse-move event to the viewport (no window focus needed)
        pos = QPointF(x, y)
        QApplication.sendEvent(vp, QMouseEvent(QEvent.Type.MouseMove, pos, vp.mapToGlobal(pos),
                                               Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                                               Qt.KeyboardModifier.NoModifier))

    move(vp.width() // 2, vp.height() // 2)
    assert not brush.outline.isVisible()  # tool off: no outline
    brush.set_mode("brush")
    brush.size_box.setValue(10)
    move(vp.width() // 2 + 40, vp.height() // 2 - 20)
    assert brush.outline.isVisible()
    row, col = brush._cursor_rc
    centre = brush.outline.rect().center()
    here = view.slice_to_view(row, col)
    assert abs(centre.x() - here.x()) < 1e-6 and abs(centre.y() - here.y()) < 1e-6
    g = view.state.geometry
    assert brush.outline.rect().width() == pytest.approx(2 * 10.5 * g.col_mm, rel=1e-6)
    brush.change_size(5)  # ] : the outline grows with the brush
    assert brush.outline.rect().width() == pytest.approx(2 * 15.5 * g.col_mm, rel=1e-6)
    brush.set_mode("off")
    assert not brush.outline.isVisible()


def test_labels_export_from_the_file_menu_in_every_format(labelled_window, qtbot, tmp_path: Path, store) -> None:
    """File ▸ Export Labels writes what the store holds for the shown series, de-identified on request."""
    import csv
    import json

    import nibabel
    import pydicom

    window, panel = labelled_window
    view = panel.view
    view.set_slice(0)
    panel.mode_box.setChecked(True)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_2)  # slice 0 "abnormal"
    qtbot.keyClick(view, Qt.Key.Key_1)  # slice 1 "normal"
    panel.mode_box.setChecked(False)
    paint_and_measure(qtbot, panel)
    assert list(store.rois(series_uid=view.volume.series_uid)), panel.keeper.last_error
    menu = panel.export.menu
    assert menu in [a.menu() for a in window.file_menu.actions() if a.menu() is not None]
    outs = {fmt: tmp_path / f"out.{fmt if fmt != 'nifti' else 'nii.gz'}" for fmt in ("csv", "json", "seg", "sr", "nifti")}
    errors: list[str] = []
    done: list[str] = []
    panel.export.failed.connect(lambda fmt, message: errors.append(f"{fmt}: {message}"))
    panel.export.exported.connect(lambda fmt, _path: done.append(fmt))
    for fmt, out in outs.items():
        panel.export.export(fmt, str(out), deidentify=fmt == "seg")
        qtbot.waitUntil(lambda: bool(errors) or fmt in done, timeout=120000)
        assert not errors and out.is_file(), (fmt, errors)
    rows = list(csv.DictReader(outs["csv"].open()))
    assert sorted(r["label"] for r in rows) == ["abnormal", "normal"]
    assert len(json.loads(outs["json"].read_text())["labels"]) == 2
    seg = pydicom.dcmread(outs["seg"])
    assert seg.Modality == "SEG"
    original = pydicom.dcmread(view.volume.info.slices[0].file, stop_before_pixels=True)
    assert str(seg.get("PatientName", "")) != str(original.PatientName)  # de-identified
    sr = pydicom.dcmread(outs["sr"])
    assert sr.Modality == "SR"
    mask = np.asarray(nibabel.load(str(outs["nifti"])).dataobj)
    assert mask.sum() > 250  # the painted disc (radius 10: ~314 px)
