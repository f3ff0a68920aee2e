"""SliceViewport driven with real mouse and key events: state -> pixels and input -> state."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from viewer.core.series_info import Window
from tests.state.phantoms import affine, ramp_volume
from tests.ui.test_viewport_support import drag, hover, load_real, wheel, widget_pos
from viewer.core.volume import Volume
from viewer.core.windowing import window_to_uint8
from viewer.ui.viewport import SliceViewport, WindowLut


@pytest.fixture
def vp(qtbot):
    view = SliceViewport()
    qtbot.addWidget(view)
    view.resize(420, 420)
    view.show()
    qtbot.waitExposed(view)
    return view


def expected(vol: Volume, k: int, c: float, w: float, invert: bool = False) -> np.ndarray:
    return window_to_uint8(vol.array[k], c, w, invert)


def test_lut_windowing_equals_the_reference_function():
    rng = np.random.default_rng(0)
    values = rng.integers(-32768, 32767, size=(50, 60)).astype(np.int16)
    lut = WindowLut()
    for c, w, inv in ((40, 400, False), (-600, 1500, True), (0.5, 1, False)):
        assert np.array_equal(lut(values, c, w, inv), window_to_uint8(values, c, w, inv))
    u16 = rng.integers(0, 4096, size=(20, 30)).astype(np.uint16)
    assert np.array_equal(lut(u16, 1000, 800, False), window_to_uint8(u16, 1000, 800))
    f32 = rng.normal(size=(10, 10)).astype(np.float32)
    assert np.array_equal(lut(f32, 0, 2, False), window_to_uint8(f32, 0, 2))


def test_wheel_and_keys_change_the_slice_and_the_pixels(vp, qtbot):
    vol = ramp_volume()
    vp.set_volume(vol)
    c, w = vp.state.image.center, vp.state.image.width
    assert np.array_equal(vp.displayed_image(), expected(vol, 0, c, w))
    with qtbot.waitSignal(vp.slice_changed) as sig:
        wheel(vp, -2)  # wheel down: next slices
    assert sig.args == [2] and vp.state.slice_index == 2
    wheel(vp, 1)
    assert vp.state.slice_index == 1
    for key, want in ((Qt.Key.Key_Down, 2), (Qt.Key.Key_PageDown, 12), (Qt.Key.Key_Up, 11), (Qt.Key.Key_End, 19),
                      (Qt.Key.Key_PageUp, 9), (Qt.Key.Key_Home, 0), (Qt.Key.Key_PageUp, 0)):
        qtbot.keyClick(vp, key)
        assert vp.state.slice_index == want
    vp.state.set_slice(7)  # state -> widget
    assert np.array_equal(vp.displayed_image(), expected(vol, 7, c, w))
    assert vp.overlay().bottom_left[0].startswith("Im 8/20  17.5 mm")


def test_left_drag_changes_width_and_level_by_the_expected_amounts(vp, qtbot):
    vol = ramp_volume()
    vp.set_volume(vol)
    vp.state.set_slice(3)
    c0, w0 = vp.state.image.center, vp.state.image.width
    p0 = widget_pos(vp, 30, 20)
    with qtbot.waitSignal(vp.window_changed):
        drag(vp, p0, p0 + QPointF(60, -30))
    # 1/200 of the starting width per pixel: right widens, up lowers the center.
    assert vp.state.image.width == pytest.approx(w0 + 60 * w0 / 200)
    assert vp.state.image.center == pytest.approx(c0 - 30 * w0 / 200)
    c1, w1 = vp.state.image.center, vp.state.image.width
    assert np.array_equal(vp.displayed_image(), expected(vol, 3, c1, w1))
    assert vp.overlay().bottom_right[0] == f"W {w1:.0f}  L {c1:.0f}"


def test_preset_keys_give_the_published_windows(vp, qtbot):
    vol = ramp_volume(windows=(Window(300.0, 1000.0),))
    vp.set_volume(vol)
    assert (vp.state.image.center, vp.state.image.width) == (300.0, 1000.0)
    for key, (c, w) in ((Qt.Key.Key_2, (-600, 1500)), (Qt.Key.Key_4, (480, 2500)), (Qt.Key.Key_5, (40, 80)),
                        (Qt.Key.Key_1, (40, 400)), (Qt.Key.Key_0, (300, 1000))):
        qtbot.keyClick(vp, key)
        assert (vp.state.image.center, vp.state.image.width) == (c, w)
        assert np.array_equal(vp.displayed_image(), expected(vol, 0, c, w))


def test_invert_flips_rotation_and_reset_move_pixels_and_letters(vp, qtbot):
    vol = ramp_volume()
    vp.set_volume(vol)
    base = vp.displayed_image().copy()
    o = vp.overlay()
    assert (o.left, o.right, o.top, o.bottom) == ("R", "L", "A", "P")
    qtbot.keyClick(vp, Qt.Key.Key_I)
    assert np.array_equal(vp.displayed_image(), 255 - base)
    qtbot.keyClick(vp, Qt.Key.Key_I)
    qtbot.keyClick(vp, Qt.Key.Key_H)
    assert np.array_equal(vp.displayed_image(), base[:, ::-1])
    o = vp.overlay()
    assert (o.left, o.right, o.top, o.bottom) == ("L", "R", "A", "P")
    qtbot.keyClick(vp, Qt.Key.Key_V)
    assert np.array_equal(vp.displayed_image(), base[::-1, ::-1])
    assert (vp.overlay().top, vp.overlay().bottom) == ("P", "A")
    qtbot.keyClick(vp, Qt.Key.Key_R)
    assert np.array_equal(vp.displayed_image(), base)
    qtbot.keyClick(vp, Qt.Key.Key_Period)  # clockwise: what was on the left (R) is now on top
    assert np.array_equal(vp.displayed_image(), np.rot90(base, -1))
    o = vp.overlay()
    assert (o.left, o.right, o.top, o.bottom) == ("P", "A", "R", "L")
    qtbot.keyClick(vp, Qt.Key.Key_Comma)
    assert np.array_equal(vp.displayed_image(), base)


def test_non_square_pixels_keep_their_proportions_on_screen(vp):
    # 0.5 mm wide, 2 mm high pixels: 40 x 40 pixels are 20 mm wide and 80 mm high.
    vol = Volume(np.zeros((2, 40, 40), np.int16), affine((0.5, 2.0, 1.0)), modality="CT")
    vp.set_volume(vol)
    tl, br = widget_pos(vp, -0.5, -0.5), widget_pos(vp, 39.5, 39.5)
    assert (br.y() - tl.y()) / (br.x() - tl.x()) == pytest.approx(4.0, rel=0.05)
    assert (br.y() - tl.y()) == pytest.approx(vp.viewport().height(), rel=0.05)  # fitted to the view
    vp.state.rotate(1)
    tl, br = widget_pos(vp, -0.5, -0.5), widget_pos(vp, 39.5, 39.5)
    assert abs(br.x() - tl.x()) / abs(br.y() - tl.y()) == pytest.approx(4.0, rel=0.05)


def test_zoom_and_pan_drags(vp):
    vp.set_volume(ramp_volume())
    centre = QPointF(vp.viewport().width() / 2, vp.viewport().height() / 2)
    drag(vp, centre, centre + QPointF(0, -50), button=Qt.MouseButton.RightButton)
    assert vp.state.zoom == pytest.approx(np.exp(0.5))
    before = widget_pos(vp, 10, 10)
    drag(vp, centre, centre + QPointF(30, 20), button=Qt.MouseButton.MiddleButton)
    after = widget_pos(vp, 10, 10)
    assert (after.x() - before.x(), after.y() - before.y()) == pytest.approx((30, 20), abs=1.5)
    assert vp.overlay().bottom_right[1] == f"Zoom {np.exp(0.5) * 100:.0f}%"


def test_value_and_patient_position_under_the_cursor(vp, qtbot):
    vol = ramp_volume(spacing=(0.8, 0.8, 2.5))
    vp.set_volume(vol)
    vp.state.set_slice(4)
    with qtbot.waitSignal(vp.cursor_moved) as sig:
        hover(vp, widget_pos(vp, 5, 7))
    cur = sig.args[0]
    assert (cur.row, cur.col, cur.value) == (5, 7, 100 * 4 + 5 - 7)
    assert cur.lps == pytest.approx([7 * 0.8, 5 * 0.8, 4 * 2.5], abs=0.3)
    assert vp.overlay().bottom_left[0] == "(7, 5)  398 HU"


def test_monochrome1_is_inverted_and_colour_is_colour(vp):
    vol = ramp_volume(modality="CR", photometric="MONOCHROME1", windows=(Window(50, 100),))
    vp.set_volume(vol)
    assert np.array_equal(vp.displayed_image(), expected(vol, 0, 50, 100, invert=True))
    rgb = np.zeros((1, 8, 10, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[..., 2] = np.arange(10, dtype=np.uint8) * 20
    vp.set_volume(Volume(rgb, affine(), modality="US"))
    shown = vp.displayed_image()
    assert shown.shape == (8, 10, 3) and np.array_equal(shown, rgb[0])


def test_message_over_the_view(vp, tmp_path):
    vp.set_volume(None)
    vp.show_message("Cannot load this series:\nfile.dcm: truncated pixel data")
    assert "truncated" in vp.overlay().message
    assert vp.grab().save(str(tmp_path / "message.png"))
    vp.set_volume(ramp_volume())
    assert vp.overlay().message == ""


def test_real_axial_ct_letters_window_and_hu(vp, data_dir, tmp_path):
    vol = load_real(data_dir / "ct" / "pancreas-ct-philips-134")
    vp.set_volume(vol)
    o = vp.overlay()
    assert (o.left, o.right, o.top, o.bottom) == ("R", "L", "A", "P")
    k = vol.shape[0] // 2
    vp.state.set_slice(k)
    c, w = vp.state.image.center, vp.state.image.width
    assert np.array_equal(vp.displayed_image(), window_to_uint8(vol.array[k], c, w))
    hover(vp, widget_pos(vp, 256, 256))
    assert vp._cursor is not None and vp._cursor.value == float(vol.array[k, 256, 256])
    assert vp.grab().save(str(tmp_path / "ct_axial.png"))


def test_real_sagittal_mr_letters(vp, data_dir):
    vol = load_real(data_dir / "dcm_qa" / "sag" / "In" / "2_fmri_SagAP")
    vp.set_volume(vol)
    o = vp.overlay()
    # Columns run to P and rows to F (ImageOrientationPatient 0\1\0\0\0\-1): A left, P right, H top, F bottom.
    assert (o.left, o.right, o.top, o.bottom) == ("A", "P", "H", "F")


def test_zero_pixel_spacing_is_drawn_with_a_warning_instead_of_collapsing(vp):
    vol = Volume(np.arange(64 * 48, dtype=np.int16).reshape(1, 64, 48), np.diag([0.0, 0.0, 1.0, 1.0]), modality="CR")
    vp.set_volume(vol)
    hover(vp, widget_pos(vp, 10, 20))
    assert vp._cursor is not None and vp._cursor.value == 10 * 48 + 20
    assert any("geometry unusable" in line for line in vp.overlay().top_left)
    assert vol.affine[0, 0] == 0.0  # the caller's volume is left alone


def test_no_orientation_letters_without_orientation(vp):
    vp.set_volume(ramp_volume(modality="US"))
    o = vp.overlay()
    assert (o.left, o.right, o.top, o.bottom) == ("", "", "", "")
    vp.set_volume(ramp_volume(modality="US", orientation_known=True))  # 3D ultrasound with real geometry
    assert vp.overlay().right == "L"


def test_a_deleted_view_does_not_break_the_state_it_shared(qtbot):
    import shiboken6

    from viewer.state import ImageState, ViewState

    image = ImageState(ramp_volume())
    keep = SliceViewport(ViewState(image))
    qtbot.addWidget(keep)
    gone = SliceViewport(ViewState(image))
    gone.deleteLater()
    qtbot.waitUntil(lambda: not shiboken6.isValid(gone))
    image.set_window(10, 100)  # reaches the deleted view's callbacks too
    assert keep.state.image.width == 100
