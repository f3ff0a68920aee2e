"""The AI dock on a real CT: model list, slice/series/box classification, class map, occlusion, overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import onnxruntime  # noqa: E402,F401 - hard dependencies: missing, these tests fail
import pytestqt  # noqa: E402,F401

from PySide6.QtCore import QPointF, Qt  # noqa: E402


def _organ_version() -> str:
    """The shipped organ-ct's version, as every overlay names it."""
    from viewer.ai import load_manifest
    from viewer.ai.registry import REPO_MODELS

    return load_manifest(REPO_MODELS / "organ-ct").version


@pytest.fixture(scope="module")
def pancreas(data_dir: Path):
    from viewer.io import load_series

    files = sorted(str(p) for p in (data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))
    return load_series(files)


@pytest.fixture(scope="module")
def organ_session():
    from viewer.ai import ModelRegistry, ModelSession

    return ModelSession.get(ModelRegistry().get("organ-ct"), "cpu")


@pytest.fixture
def panel(qtbot, pancreas):
    from viewer.ui.ai_panel import AiPanel
    from viewer.ui.viewport import SliceViewport

    vp = SliceViewport()
    qtbot.addWidget(vp)
    vp.resize(600, 600)
    vp.show()
    vp.set_volume(pancreas, 60)
    from viewer.ai.inference import ModelInference

    p = AiPanel(ModelInference(device="cpu"))
    qtbot.addWidget(p)
    with qtbot.waitSignal(p.models_listed, timeout=30000):
        pass
    p.set_viewport(vp)
    assert p.select_model("organ-ct")
    # organ-ct is an ROI model: the whole-slice runs these tests exercise need the explicit override.
    p.out_of_scope.setChecked(True)
    yield p
    p.background.cancel_all()
    p.background.wait_idle(20000)


def _wait(qtbot, panel, kind: str, start, timeout: int = 60000):
    with qtbot.waitSignal(panel.result_ready, timeout=timeout, check_params_cb=lambda k, _r: k == kind) as blocker:
        start()
    return blocker.args[1]


def test_lists_models_and_marks_cxr_not_applicable(panel):
    cxr = panel.model_item("pneumonia-cxr")
    ct = panel.model_item("organ-ct")
    assert ct is not None and ct.flags() & Qt.ItemFlag.ItemIsEnabled
    assert cxr is not None and not cxr.flags() & Qt.ItemFlag.ItemIsEnabled
    assert "CR, DX" in cxr.text() and "CT" in cxr.text()
    assert not panel.select_model("pneumonia-cxr")
    assert "Research only" in panel.info.text()
    # The denoiser is listed as what it is, an image filter, and cannot be run as a classifier.
    den = panel.model_item("ct-denoise")
    assert den is not None and not den.flags() & Qt.ItemFlag.ItemIsEnabled and "Filter menu" in den.text()
    assert not panel.select_model("ct-denoise")


def test_classify_slice_equals_viewer_ai(qtbot, panel, pancreas, organ_session):
    from viewer.ai import classify_slices

    pred = _wait(qtbot, panel, "slice", panel.classify_slice)
    direct = classify_slices(organ_session, pancreas, [60])
    np.testing.assert_allclose(pred.probabilities, direct.probabilities, rtol=1e-5, atol=1e-6)
    text = panel.overlay.text()
    assert "Abdominal organ classifier" in text and _organ_version() in text
    for label, p in direct.top(3)[0]:
        assert f"{p * 100:5.1f}%".strip() in text and label in text
    assert "CPUExecutionProvider" in panel.info.text()


def test_fast_scrolling_drops_stale_slices(qtbot, panel):
    got: list[int] = []
    panel.result_ready.connect(lambda kind, r: kind == "slice" and got.append(int(r.indices[0])))
    for k in range(20, 70, 5):
        panel.vp.set_slice(k)
        panel.classify_slice()  # straight to the worker: no debounce, so only the request ids drop them
    final = panel.vp.slice_index
    qtbot.waitUntil(lambda: final in got, timeout=30000)
    panel.background.wait_idle(20000)
    qtbot.wait(50)
    assert got == [final]


def test_auto_classify_is_debounced(qtbot, panel):
    got: list[int] = []
    panel.result_ready.connect(lambda kind, r: kind == "slice" and got.append(int(r.indices[0])))
    panel.auto.setChecked(True)
    qtbot.waitUntil(lambda: len(got) == 1, timeout=30000)  # the slice shown when turned on
    for k in range(30, 50):
        panel.vp.set_slice(k)
    qtbot.waitUntil(lambda: 49 in got, timeout=30000)
    panel.background.wait_idle(20000)
    qtbot.wait(250)
    assert got == [60, 49]


def test_series_fills_plot_and_click_moves_viewport(qtbot, panel, pancreas):
    pred = _wait(qtbot, panel, "series", panel.classify_series)
    n = pancreas.shape[0]
    assert len(pred) == n
    assert len(panel.plot.curves) == len(pred.labels)
    for curve in panel.plot.curves:
        x, y = curve.getData()
        assert len(x) == n and np.array_equal(x, np.arange(n))
    qtbot.waitUntil(panel.progress.isHidden, timeout=5000)
    plot = panel.plot
    plot.resize(500, 250)
    plot.show()
    qtbot.waitExposed(plot)
    vb = plot.getPlotItem().vb
    target = 17
    scene = vb.mapViewToScene(QPointF(target, 0.5))
    with qtbot.waitSignal(plot.slice_clicked, timeout=5000) as blocker:
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=plot.mapFromScene(scene))
    assert blocker.args == [target]
    assert panel.vp.slice_index == target
    # the series' result for the slice jumped to is drawn at once, without another run
    assert panel.overlay.topk[0] == target and panel.overlay.topk[2] == "series — out of scope"
    np.testing.assert_array_equal(panel.overlay.topk[1].probabilities[0], pred.probabilities[target])


def test_cancel_stops_series(qtbot, panel):
    got: list[str] = []
    panel.result_ready.connect(lambda kind, _r: got.append(kind))
    with qtbot.waitSignal(panel.series_cancelled, timeout=5000):
        panel.classify_series()
        panel.cancel_series()
    panel.background.wait_idle(30000)
    qtbot.wait(50)
    assert "series" not in got
    assert panel.plot.curves == [] and panel.progress.isHidden()


def test_class_map_drawn_where_model_said(qtbot, panel, pancreas):
    from viewer.ui.ai_overlay import AIR_HU, label_rgba

    cm = _wait(qtbot, panel, "classmap", panel.class_map, timeout=120000)
    img = panel.overlay.map_item.image
    body = pancreas.array[60] >= AIR_HU
    labels = cm.label_image(pancreas.shape[1:])
    expected = label_rgba(labels, len(cm.labels), panel.overlay.opacity, body)
    assert panel.overlay.map_item.isVisible()
    np.testing.assert_array_equal(img, expected)
    assert 0.2 < body.mean() < 0.9  # both drawn (body) and left clear (air) pixels are checked
    # the layer covers exactly the image
    assert panel.overlay.map_item.mapRectToParent(panel.overlay.map_item.boundingRect()) == \
        panel.vp.image_item.mapRectToParent(panel.vp.image_item.boundingRect())
    text = panel.overlay.text()
    assert "Class map" in text and _organ_version() in text
    for i in np.unique(labels[body]):
        assert cm.labels[i] in text
    panel.opacity.setValue(80)
    r, c = np.argwhere(body)[0]
    assert int(panel.overlay.map_item.image[r, c, 3]) == round(255 * 0.8)
    panel.vp.run_action("flip_h")  # the layer turns with the image
    np.testing.assert_array_equal(panel.overlay.map_item.image[:, :, :3], expected[:, ::-1, :3])
    panel.vp.set_slice(61)  # the map belongs to slice 60
    assert not panel.overlay.map_item.isVisible()


def test_occlusion_heatmap_names_model(qtbot, panel, pancreas):
    occ = _wait(qtbot, panel, "occlusion", panel.occlusion, timeout=120000)
    assert occ.heatmap.shape == pancreas.shape[1:]
    assert panel.overlay.heat_item.isVisible()
    alpha = panel.overlay.heat_item.image[..., 3]
    # opaque where the model's probability dropped most, transparent where it did not drop
    assert alpha[np.unravel_index(np.argmax(occ.heatmap), occ.heatmap.shape)] > 0
    assert np.all(alpha[occ.heatmap <= 0] == 0)
    text = panel.overlay.text()
    assert "Occlusion" in text and "Abdominal organ classifier" in text and occ.label in text


def test_box_drawn_with_mouse_is_classified(qtbot, panel, pancreas, organ_session):
    from viewer.ai import classify_box

    vp = panel.vp
    qtbot.waitExposed(vp)
    panel.start_box_drawing()
    a = vp.mapFromScene(vp.vb.mapViewToScene(vp.slice_to_view(200, 150)))
    b = vp.mapFromScene(vp.vb.mapViewToScene(vp.slice_to_view(300, 260)))
    with qtbot.waitSignal(panel.result_ready, timeout=30000, check_params_cb=lambda k, _r: k == "box") as blocker:
        qtbot.mousePress(vp.viewport(), Qt.MouseButton.LeftButton, pos=a)
        qtbot.mouseMove(vp.viewport(), pos=b)
        qtbot.mouseRelease(vp.viewport(), Qt.MouseButton.LeftButton, pos=b)
    pred = blocker.args[1]
    box = panel.overlay.box[1]
    assert abs(box[0] - 200) <= 2 and abs(box[1] - 150) <= 2 and abs(box[2] - 301) <= 2 and abs(box[3] - 261) <= 2
    direct = classify_box(organ_session, pancreas, 60, box)
    np.testing.assert_allclose(pred.probabilities, direct.probabilities, rtol=1e-5, atol=1e-6)
    assert not panel.btn_box.isChecked()


def test_cuda_fallback_message_shown(qtbot, pancreas):
    from viewer.ai.session import CUDA, available_providers
    from viewer.ai.inference import ModelInference
    from viewer.ui.ai_panel import AiPanel
    from viewer.ui.viewport import SliceViewport

    if CUDA in available_providers():
        pytest.skip("this onnxruntime has a CUDA provider: no fallback to show")
    vp = SliceViewport()
    qtbot.addWidget(vp)
    vp.set_volume(pancreas, 60)
    p = AiPanel(ModelInference(device="cuda"))
    qtbot.addWidget(p)
    with qtbot.waitSignal(p.models_listed, timeout=30000):
        pass
    p.set_viewport(vp)
    assert p.select_model("organ-ct")
    p.out_of_scope.setChecked(True)
    with qtbot.waitSignal(p.result_ready, timeout=30000):
        p.classify_slice()
    assert not p.warning.isHidden()
    assert "running on the CPU" in p.warning.text()
    assert "CPUExecutionProvider" in p.info.text()
    p.background.wait_idle(10000)


def test_roi_model_runs_on_whole_slices_only_with_the_override(qtbot, panel):
    panel.out_of_scope.setChecked(False)
    assert panel.out_of_scope.isVisibleTo(panel)
    assert not panel.btn_slice.isEnabled() and not panel.btn_series.isEnabled()
    assert panel.btn_box.isEnabled() and panel.btn_map.isEnabled()  # its scope: boxes and class maps
    got: list[str] = []
    panel.result_ready.connect(lambda kind, _r: got.append(kind))
    panel.classify_slice()
    panel.classify_series()
    panel.auto.setChecked(True)
    qtbot.wait(400)
    panel.background.wait_idle(20000)
    qtbot.wait(50)
    assert got == [] and "ROI model" in panel.status.text()
    panel.auto.setChecked(False)
    panel.out_of_scope.setChecked(True)
    assert panel.btn_slice.isEnabled()
    _wait(qtbot, panel, "slice", panel.classify_slice)
    assert panel.overlay.topk[2] == "slice — out of scope"


def test_classify_series_draws_on_the_viewed_slice_at_once(qtbot, panel, pancreas):
    assert panel.overlay.topk is None
    pred = _wait(qtbot, panel, "series", panel.classify_series)
    k = panel.vp.slice_index
    assert panel.overlay.topk is not None and panel.overlay.topk[0] == k
    np.testing.assert_array_equal(panel.overlay.topk[1].probabilities[0], pred.probabilities[k])
    assert "organ" in panel.overlay.text().lower() or pred.model_name in panel.overlay.text()
    assert panel.status.text().startswith(f"{len(pred)} images classified")


def test_results_live_per_series_and_follow_into_mpr_and_other_views(qtbot, panel, pancreas):
    from viewer.ui.ai_overlay import AiOverlay
    from viewer.ui.mpr import MprView

    pred = _wait(qtbot, panel, "series", panel.classify_series)
    assert panel.results.of(pancreas.series_uid).predictions is pred
    k = panel.vp.slice_index
    # MPR over the viewport's own image state: its axial plane shows the labels of the acquired slice.
    mpr = MprView(panel.vp.state.image)
    qtbot.addWidget(mpr)
    mpr.resize(900, 400)
    mpr.show()
    axial = mpr.viewports["axial"]
    overlay = AiOverlay(axial, panel.results)
    axial.state.set_slice_at(panel.vp.state.point_to_lps(100, 100))
    assert overlay.acquired_index() == k
    overlay.sync()
    assert overlay.labels_box.isVisibleTo(axial)
    assert pred.top(1)[k][0][0] in overlay.text()
    mpr.close_view()


def test_status_lines_count_images_from_1_and_clear_on_series_change(qtbot, panel, pancreas):
    cm = _wait(qtbot, panel, "classmap", panel.class_map)
    assert panel.status.text().startswith("Class map of image 61:")  # slice index 60 is image 61
    assert cm is not None
    from tests.state.phantoms import ramp_volume

    panel.vp.set_volume(ramp_volume())
    assert panel.status.text() == ""
    assert panel.plot.predictions is None
