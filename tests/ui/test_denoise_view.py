"""The denoiser in the viewer on a real CT: F toggles it against the original, Shift+F splits the view, each
slice's result is kept, and in MPR a display filter acts on the whole volume in 3-D."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.ui.conftest import open_and_wait
from viewer.core.filters import DisplayFilter, median_filter
from viewer.core.windowing import window_to_uint8

CT = ("ct", "totalseg-ct-j2k-20", "example_ct_dicom")
WAIT = 300000  # a hang guard only: the denoiser on 2 busy cores


@pytest.fixture
def window_with_ct(qtbot, main_window, data_dir: Path):
    from viewer.ai.inference import ModelInference
    from viewer.ui.ai_panel import attach_ai_panel

    attach_ai_panel(main_window, ModelInference())  # offers the image-to-image models in the Filter menu
    open_and_wait(qtbot, main_window, [data_dir.joinpath(*CT)])
    view = main_window.grid.slots[0].view
    view.setFocus()
    return main_window, view


def _windowed(view, values: np.ndarray) -> np.ndarray:
    img = view.state.image
    return window_to_uint8(values, img.center, img.width, img.invert)


def test_f_toggles_the_denoiser_against_the_original(qtbot, window_with_ct, data_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    window, view = window_with_ct
    k = view.slice_index
    original_pixels = view.displayed_image().copy()
    assert [m.manifest.id for m in window.filter_controls.models] == ["ct-denoise"]

    qtbot.keyClick(view, Qt.Key.Key_F)  # nothing chosen yet: F turns the denoiser on
    assert window.filter_controls.choice == window.filter_controls.models[0]
    qtbot.waitUntil(lambda: view.display_filter.ready, timeout=WAIT)
    assert "filter: ct-denoise 1.0.0" in view.overlay().bottom_left
    denoised = view.display_filter.shown(view.state.slice_array())

    # the same numbers `infer --model ct-denoise` writes for this slice (it rounds to whole HU)
    from viewer.cli import main
    from viewer.io import load_series

    assert main(["infer", str(data_dir.joinpath(*CT)), "--model", "ct-denoise", "--slices", str(k),
                 "--out", str(tmp_path / "out"), "--json", "--threads", "1"]) == 0, capsys.readouterr().err
    written = load_series(tmp_path / "out").array[0]
    assert np.abs(denoised - written).max() <= 0.51
    assert np.abs(denoised - view.state.slice_array()).mean() > 1.0  # it did change the slice
    shown = view.displayed_image()
    assert np.array_equal(shown, _windowed(view, denoised))  # axial CT: no display flip
    assert not np.array_equal(shown, original_pixels)

    qtbot.keyClick(view, Qt.Key.Key_F)  # back to the original, bit-exact
    assert window.filter_controls.choice is None
    assert np.array_equal(view.displayed_image(), original_pixels)
    assert not any(line.startswith("filter:") for line in view.overlay().bottom_left)
    assert np.array_equal(view.state.slice_array(), load_series(data_dir.joinpath(*CT)).array[k])

    # scrolling away and back, and toggling on again: the slice's result is kept, drawn without a worker
    qtbot.keyClick(view, Qt.Key.Key_F)
    assert view.display_filter.ready and np.array_equal(view.displayed_image(), shown)
    view.set_slice(k + 1)
    qtbot.waitUntil(lambda: view.display_filter.ready, timeout=WAIT)
    view.set_slice(k)
    assert view.display_filter.ready and np.array_equal(view.displayed_image(), shown)


def test_shift_f_splits_original_and_denoised_with_a_draggable_divider(qtbot, window_with_ct) -> None:
    window, view = window_with_ct
    original_pixels = view.displayed_image().copy()
    qtbot.keyClick(view, Qt.Key.Key_F, Qt.KeyboardModifier.ShiftModifier)  # split turns the denoiser on too
    assert window.filter_controls.split and window.filter_controls.act_split.isChecked()
    qtbot.waitUntil(lambda: view.display_filter.ready, timeout=WAIT)
    denoised = _windowed(view, view.display_filter.shown(view.state.slice_array()))
    assert not np.array_equal(denoised, original_pixels)

    def halves_match(fraction: float) -> None:
        shown = view.displayed_image()
        cut = int(round(fraction * shown.shape[1]))
        assert np.array_equal(shown[:, :cut], original_pixels[:, :cut])  # left: the original
        assert np.array_equal(shown[:, cut:], denoised[:, cut:])  # right: the model's output
        assert not np.array_equal(shown[:, cut:], original_pixels[:, cut:])

    assert view._divider.isVisible()
    halves_match(0.5)
    assert any("split: original left" in line for line in view.overlay().bottom_left)

    # drag the divider with the mouse from the middle to a quarter of the image
    from tests.ui.test_viewport_support import drag, widget_pos

    rows, cols = view.state.geometry.shape
    drag(view, widget_pos(view, rows / 3, cols / 2), widget_pos(view, rows / 3, cols / 4))
    assert abs(view.display_filter.divider - 0.25) < 0.02
    halves_match(view.display_filter.divider)

    qtbot.keyClick(view, Qt.Key.Key_F, Qt.KeyboardModifier.ShiftModifier)  # split off: the filter stays on
    assert not view._divider.isVisible()
    assert np.array_equal(view.displayed_image(), denoised)


def test_mpr_filters_the_volume_in_3d(qtbot, window_with_ct) -> None:
    import SimpleITK as sitk

    window, view = window_with_ct
    vol = view.volume
    window.set_layout("mpr")
    planes = window.grid.mpr.viewports
    gaussian = DisplayFilter("gaussian", 1.0)
    window.filter_controls.choose(gaussian)
    qtbot.waitUntil(lambda: all(vp.display_filter.ready for vp in planes.values()), timeout=WAIT)

    # independently: SimpleITK's Gaussian with the volume's spacing (sigma = 1 pixel in mm), then reformat
    img = sitk.GetImageFromArray(vol.array.astype(np.float32))
    img.SetSpacing(vol.spacing)
    sigma_mm = min(vol.spacing[:2])
    expected = sitk.GetArrayFromImage(sitk.DiscreteGaussian(img, [sigma_mm ** 2] * 3, 64, 0.01, True))
    for plane, vp in planes.items():
        st = vp.state
        shown = vp.display_filter.shown(st.slice_array())
        want = st.geometry.extract(expected, st.slice_index)
        np.testing.assert_allclose(shown, want, atol=1e-3)
        assert np.array_equal(vp.displayed_image(), _windowed(vp, st.transform.apply(want)))
        assert f"filter: Gaussian {sigma_mm:.2g} mm (3D)" in vp.overlay().bottom_left
    # 3-D, not the coronal picture smoothed in 2-D: the slices above and below took part
    coronal = planes["coronal"].state
    in_plane = DisplayFilter("gaussian", 1.0).apply(coronal.slice_array().astype(np.float32))
    assert np.abs(planes["coronal"].display_filter.shown(coronal.slice_array()) - in_plane).max() > 5.0

    # median 3x3 on 2 mm slices of 0.98 mm pixels reaches no other slice: 3x3x1, each axial slice's median
    window.filter_controls.choose(DisplayFilter("median", 1))
    qtbot.waitUntil(lambda: all(vp.display_filter.ready for vp in planes.values()), timeout=WAIT)
    axial = planes["axial"]
    assert "filter: median 3x3x1 (3D)" in axial.overlay().bottom_left
    k = axial.state.slice_index
    flat = axial.state.geometry.extract(median_filter(vol.array, 1), k)  # numpy 2-D median, each slice
    np.testing.assert_array_equal(axial.display_filter.shown(axial.state.slice_array()), flat)

    window.filter_controls.choose(None)  # off: the planes show the volume again
    for vp in planes.values():
        assert np.array_equal(vp.displayed_image(),
                              _windowed(vp, vp.state.transform.apply(vp.state.slice_array())))
