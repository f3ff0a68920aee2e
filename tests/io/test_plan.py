"""The load plan is made from header facts alone: order, geometry, 4D split, display order and value type,
tested on hand-made slices (no file, no pixel) and, on real series, against what the loader reads."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.io import decode_pool, pixel_reader
from viewer.io.errors import LoadError
from viewer.io.load import SeriesLoader
from viewer.io.plan import Layout, PlannedSlice, make_plan, value_type

AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def layout(**kw: object) -> Layout:
    base: dict[str, object] = dict(rows=4, cols=6, samples=1, bits_allocated=16, bits_stored=12, signed=False,
                                   photometric="MONOCHROME2", transfer_syntax="1.2.840.10008.1.2.1",
                                   orientation=AXIAL, pixel_spacing=[0.5, 0.8], spacing_source="PixelSpacing")
    base.update(kw)
    return Layout(**base)  # type: ignore[arg-type]


def slices(zs: list[float], instances: list[int] | None = None, **kw: object) -> list[PlannedSlice]:
    inst = instances or list(range(1, len(zs) + 1))
    return [PlannedSlice(f"/s/{i}.dcm", None, np.array([-10.0, 20.0, z]), instance=i, **kw)  # type: ignore[arg-type]
            for z, i in zip(zs, inst)]


def test_slices_in_any_order_are_shown_from_instance_1_with_an_exact_affine() -> None:
    # Instance numbers run with position (1 at z=0): Im 1 first, whatever the file order.
    given = slices([0.0, 2.5, 5.0, 7.5, 10.0])
    plan = make_plan(layout(), [given[3], given[0], given[4], given[1], given[2]])
    (vol,) = plan.volumes
    assert [it.instance for it in vol] == [1, 2, 3, 4, 5]
    affine = plan.affines[0]
    np.testing.assert_allclose(affine[:3, :3], np.diag([0.8, 0.5, 2.5]))
    for k, it in enumerate(vol):
        np.testing.assert_allclose(affine @ [0, 0, k, 1], [*it.position, 1.0])
    assert plan.warnings == []


def test_instance_numbers_against_position_show_the_cranial_end_first_and_the_affine_follows() -> None:
    plan = make_plan(layout(), slices([0.0, 2.5, 5.0], instances=[7, 2, 9]))  # not monotonic
    (vol,) = plan.volumes
    assert [float(it.position[2]) for it in vol] == [5.0, 2.5, 0.0]  # +z is superior: top first
    np.testing.assert_allclose(plan.affines[0] @ [0, 0, 2, 1], [-10.0, 20.0, 0.0, 1.0])
    np.testing.assert_allclose(plan.affines[0][:3, 2], [0.0, 0.0, -2.5])


def test_repeated_positions_make_volumes_ordered_by_temporal_position() -> None:
    first = slices([0.0, 3.0, 6.0], instances=[1, 2, 3])
    second = slices([0.0, 3.0, 6.0], instances=[4, 5, 6])
    for it in first:
        it.vkey = (1.0, 0.0, 0.0)
    for it in second:
        it.vkey = (2.0, 0.0, 0.0)
    plan = make_plan(layout(), second + first)
    assert [[it.instance for it in v] for v in plan.volumes] == [[1, 2, 3], [4, 5, 6]]
    assert [plan.volume(v).first_index for v in (0, 1)] == [1, 1]
    with pytest.raises(LoadError, match="volume 2 out of range"):
        plan.volume(2)


def test_absurd_numbers_are_left_out_with_a_warning_and_nothing_usable_is_refused() -> None:
    good = slices([0.0, 1.0, 2.0, 3.0])
    good[1].position = np.array([0.0, 0.0, np.inf])
    good[2].slope = float("nan")
    plan = make_plan(layout(), good)
    assert [it.instance for it in plan.volumes[0]] == [1, 4]
    assert any("not finite or absurdly far" in w for w in plan.warnings)
    assert any("RescaleSlope/Intercept" in w for w in plan.warnings)
    assert any("without ImagePositionPatient left out" in w for w in plan.warnings)
    with pytest.raises(LoadError, match="not finite numbers"):
        make_plan(layout(), slices([0.0], slope=float("inf")))


def test_frames_of_another_orientation_are_left_out() -> None:
    items = slices([0.0, 1.0, 2.0])
    items[2].orientation = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    plan = make_plan(layout(), items)
    assert len(plan.volumes[0]) == 2 and "another orientation" in plan.warnings[0]


def test_without_orientation_file_order_is_kept_on_a_planar_grid() -> None:
    items = [PlannedSlice(f"/x/{i}.dcm", instance=i) for i in (3, 1, 2)]
    plan = make_plan(layout(orientation=None), items)
    assert [it.instance for it in plan.volumes[0]] == [3, 1, 2]
    assert "kept in file and frame order" in plan.warnings[0]


def test_value_type_follows_rescale_lut_and_colour() -> None:
    lay = layout()
    shape, dtype, fit = value_type(lay, slices([0.0, 1.0], intercept=-1024.0), False)
    assert (shape, dtype, fit) == ((2, 4, 6), np.dtype(np.int16), True)
    assert value_type(lay, slices([0.0], slope=0.5), False)[1] == np.float32
    assert value_type(layout(bits_stored=16), slices([0.0], intercept=-1024.0), False)[1:] == (np.int16, False)
    assert value_type(lay, slices([0.0]), True)[1] == np.float32
    assert value_type(layout(samples=3), slices([0.0]), False)[:2] == ((1, 4, 6, 3), np.uint8)


def test_a_real_series_is_planned_without_reading_a_pixel(data_dir, monkeypatch) -> None:
    files = sorted(str(f) for f in (data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))
    vol = SeriesLoader(files).load()

    def no_pixels(*_args: object, **_kw: object) -> None:
        raise AssertionError("the plan read pixel data")

    monkeypatch.setattr(pixel_reader, "read_pixels_fast", no_pixels)
    monkeypatch.setattr(decode_pool, "decode_file", no_pixels)
    loader = SeriesLoader(list(reversed(files)))
    plan = loader.reader.plan
    np.testing.assert_array_equal(plan.affine, vol.affine)
    assert plan.shape == vol.array.shape and plan.dtype == vol.array.dtype
    assert [it.path for it in plan.slices] == [s.file for s in vol.info.slices]
    assert all(it.fast and it.offset > 0 for it in plan.slices)  # every slice read at its recorded offset
