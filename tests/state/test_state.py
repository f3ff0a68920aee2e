from __future__ import annotations

import numpy as np
import pytest

from viewer.core.series_info import Window
from tests.state.phantoms import ramp_volume, sphere_volume
from viewer.core import measure
from viewer.state import ImageState, Measurement, ViewState, file_window, opening_window


def test_opening_window_prefers_the_file():
    assert opening_window(ramp_volume(windows=(Window(50.0, 350.0), Window(40, 80)))) == (50.0, 350.0)
    assert file_window(ramp_volume(windows=(Window(10.0, 0.0),))) is None  # width 0 is invalid
    assert opening_window(ramp_volume()) == (40.0, 400.0)  # CT default
    mr = ramp_volume(modality="MR")
    c, w = opening_window(mr)
    assert w > 0 and mr.array.min() <= c <= mr.array.max()


def test_monochrome1_starts_inverted():
    assert ImageState(ramp_volume(photometric="MONOCHROME1")).invert is True
    assert ImageState(ramp_volume(photometric="MONOCHROME2")).invert is False


@pytest.mark.parametrize(
    ("key", "width", "center"),
    [(1, 400, 40), (2, 1500, -600), (3, 150, 90), (4, 2500, 480), (5, 80, 40), (6, 350, 50), (7, 400, 50)],
)
def test_ct_preset_keys_give_the_published_values(key, width, center):
    img = ImageState(ramp_volume(windows=(Window(-100, 20),)))
    assert img.apply_preset(key)
    assert (img.width, img.center) == (width, center)
    assert img.apply_preset(0) and (img.center, img.width) == (-100, 20)
    assert not img.apply_preset(9)  # CT has 7 presets: nothing happens
    assert (img.center, img.width) == (-100, 20)


def test_observers_get_one_notification_per_change_and_batches():
    img = ImageState(ramp_volume())
    seen: list[frozenset[str]] = []
    unsubscribe = img.subscribe(seen.append)
    img.set_window(10, 0)
    assert img.width == 1.0 and seen == [frozenset({"window"})]
    img.set_window(10, 1)  # no change, no notification
    with img.batch():
        img.set_window(1, 2)
        img.set_invert(True)
    assert seen[-1] == frozenset({"window", "invert"}) and len(seen) == 2
    unsubscribe()
    img.set_window(5, 5)
    assert len(seen) == 2


def test_view_state_slices_clamp_and_follow_positions():
    vol = ramp_volume(shape=(20, 30, 40), spacing=(0.8, 0.8, 2.5))
    view = ViewState(ImageState(vol))
    changes: list[frozenset[str]] = []
    view.subscribe(changes.append)
    view.set_slice(99)
    assert view.slice_index == 19 and changes == [frozenset({"slice"})]
    view.step_slice(-25)
    assert view.slice_index == 0
    assert view.slice_position_mm(7) == pytest.approx(7 * 2.5)
    view.set_slice_at(np.array([0.0, 0.0, 31.0]))  # nearest slice centre: 12 * 2.5 = 30 mm
    assert view.slice_index == 12
    view.flip(horizontal=True)
    view.rotate(1)
    view.set_zoom(3)
    view.reset_view()
    assert (view.zoom, view.pan, view.transform.rotation, view.transform.flip_h) == (1.0, (0.0, 0.0), 0, False)


def test_reformat_planes_start_at_the_crosshair():
    vol = sphere_volume()
    img = ImageState(vol)
    views = {p: ViewState(img, p) for p in ("axial", "coronal", "sagittal")}
    z, y, x = vol.shape
    assert views["axial"].slice_index == (z - 1) // 2 or views["axial"].slice_index == z // 2
    assert views["coronal"].slice_count == y and views["sagittal"].slice_count == x
    img.set_crosshair(np.array([1e6, -1e6, 0.0]))  # clamped into the volume
    i, j, _ = vol.patient_to_voxel(img.crosshair)
    assert (i, j) == pytest.approx((x - 1, 0))


def test_roi_measurement_stats_equal_numpy_on_the_same_mask():
    vol = ramp_volume(shape=(6, 40, 50), spacing=(0.7, 0.9, 2.0))
    img = ImageState(vol)
    view = ViewState(img)
    view.set_slice(3)
    corners = [(4.2, 6.5), (30.6, 41.1)]  # (row, col)
    pts = [tuple(view.point_to_lps(r, c)) for r, c in corners]
    for kind, mask_fn in (("rect", measure.rect_mask), ("ellipse", measure.ellipse_mask)):
        m = img.add_measurement(Measurement(kind, pts, plane="acquired", slice_index=3))
        mask = mask_fn((40, 50), 4.2, 6.5, 30.6, 41.1)
        vals = vol.array[3][mask].astype(float)
        assert m.stats is not None
        assert (m.stats.mean, m.stats.sd, m.stats.min, m.stats.max) == pytest.approx(
            (vals.mean(), vals.std(), vals.min(), vals.max())
        )
    rect_area = (30.6 - 4.2) * 0.9 * (41.1 - 6.5) * 0.7
    assert img.measurements[0].value == pytest.approx(rect_area)
    assert img.measurements[1].value == pytest.approx(np.pi / 4 * rect_area)


def test_distance_and_angle_measurements_in_mm():
    vol = ramp_volume(shape=(6, 40, 50), spacing=(0.7, 0.9, 2.0))
    img = ImageState(vol)
    d = img.add_measurement(Measurement("distance", [(0, 0, 0), (3.0, 4.0, 0)], "acquired", 0))
    assert d.value == pytest.approx(5.0) and d.summary() == "5.0 mm"
    a = img.add_measurement(Measurement("angle", [(5, 0, 0), (0, 0, 0), (0, 0, 5)], "acquired", 0))
    assert a.value == pytest.approx(90.0)
    img.update_measurement(d, [(0, 0, 0), (6.0, 8.0, 0)])
    assert d.value == pytest.approx(10.0)
    img.remove_measurement(a)
    assert img.measurements == [d]
    with pytest.raises(ValueError, match="unknown measurement kind 'circle'"):
        img.add_measurement(Measurement("circle", [(0, 0, 0)], "acquired", 0))
