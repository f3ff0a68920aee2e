"""A series shown while its files arrive (viewer.io.arriving): blanks where nothing arrived yet, exact
positions for what did, and the same volume as the whole load once everything is there."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pydicom")

from viewer.io import load_series  # noqa: E402
from viewer.io.arriving import ArrivingSeries  # noqa: E402
from viewer.io.load import SeriesLoader  # noqa: E402


def _files(data_dir: Path, rel: str) -> list[str]:
    folder, _, pattern = rel.partition(":")
    return sorted(str(f) for f in (data_dir / folder).glob(pattern or "*.dcm"))


@pytest.mark.parametrize("rel", ["ct/pancreas-ct-philips-134", "ct/totalseg-ct-j2k-20/example_ct_dicom:CT.*"])
def test_instances_in_any_order_fill_one_grid_and_end_as_the_whole_load(data_dir: Path, rel: str) -> None:
    files = _files(data_dir, rel)
    whole = load_series(files)
    by_file = {s.file: k for k, s in enumerate(whole.info.slices)}
    order = files[:]
    random.Random(7).shuffle(order)
    series = ArrivingSeries()
    assert series.snapshot(len(files)) is None
    counts = []
    half = len(files) // 2
    # One at a time at first, then in batches (what arrived while the last snapshot was made).
    for chunk in (order[:1], order[1:2], order[2:3], order[3:half], order[half:]):
        assert series.add(chunk) == len(chunk)
        n = len(series)
        if n < len(files):
            snap = series.snapshot(len(files))
            assert snap is not None and snap.arrived == n and int(snap.ready.sum()) == n
            vol = snap.volume
            counts.append(vol.shape[0])
            assert n <= vol.shape[0] <= len(files)
            for k in np.flatnonzero(snap.ready):
                # Every arrived slice holds the whole load's values and lies where the file says.
                src = vol.info.slices[k].file
                np.testing.assert_array_equal(vol.array[k], whole.array[by_file[src]])
                np.testing.assert_allclose(vol.voxel_to_patient(np.array([0.0, 0.0, float(k)])),
                                           whole.info.slices[by_file[src]].position, atol=1e-3)
            blank = vol.array[~snap.ready]
            assert blank.size == 0 or blank.max() == blank.min() == min(vol.array[k].min() for k in
                                                                         np.flatnonzero(snap.ready))
    assert counts == sorted(counts)
    snap = series.snapshot(len(files))
    assert snap is not None and bool(snap.ready.all()) and not series.problems
    assert snap.volume.array.dtype == whole.array.dtype
    np.testing.assert_array_equal(snap.volume.array, whole.array)
    np.testing.assert_allclose(snap.volume.affine, whole.affine, atol=1e-6)
    # Made of the arrived slices after the loader's header pass: the loader's own volume, exactly.
    made = series.whole(SeriesLoader(order))
    loaded = SeriesLoader(order).load()
    assert made is not None and made.array.dtype == loaded.array.dtype
    np.testing.assert_array_equal(made.array, loaded.array)
    assert np.array_equal(made.affine, loaded.affine) and made.info == loaded.info
    assert made.warnings == loaded.warnings and made.slice_positions is not None
    np.testing.assert_array_equal(made.slice_positions, loaded.slice_positions)
    assert series.whole(SeriesLoader(order[:-1])) is None  # not exactly its slices: load them


def test_a_file_that_cannot_join_is_reported_and_the_rest_still_shows(data_dir: Path, tmp_path: Path) -> None:
    files = _files(data_dir, "ct/pancreas-ct-philips-134")[:3]
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(Path(files[1]).read_bytes()[:2000])  # cut inside the header
    other = _files(data_dir, "ct/crc-chest-ct-ge-100")[0]  # another size or orientation
    series = ArrivingSeries()
    assert series.add(files[0]) == 1 and series.add([files[2], str(broken)]) == 1  # the good one joins
    assert series.add(str(broken)) == 0
    joined = series.add(other)
    snap = series.snapshot()
    assert snap is not None and snap.arrived == (3 if joined else 2)
    assert any("broken.dcm" in p for p in series.problems)


def test_with_the_count_known_one_buffer_holds_the_series_from_the_second_slice_to_the_end(data_dir: Path) -> None:
    """The first slice is shown alone (its step is unknown); from the second on, every snapshot and the whole
    volume at the end are views of one buffer sized for the series: nothing is copied again or made twice."""
    files = _files(data_dir, "ct/pancreas-ct-philips-134")
    series = ArrivingSeries()
    series.add(files[60])
    one = series.snapshot(len(files))
    assert one is not None and one.volume.shape[0] == 1 and bool(one.ready.all())
    snaps = []
    for chunk in (files[61:62], files[40:60], files[:40], files[62:]):
        series.add(chunk)
        snap = series.snapshot(len(files))
        assert snap is not None
        snaps.append(snap.volume.array)
    made = series.whole(SeriesLoader(files))
    assert made is not None and made.shape[0] == len(files)
    assert not np.shares_memory(one.volume.array, made.array)
    assert all(np.shares_memory(a, made.array) for a in snaps)
    np.testing.assert_array_equal(made.array, SeriesLoader(files).load().array)


def test_two_instances_at_one_position_keep_their_own_values(data_dir: Path, tmp_path: Path) -> None:
    """A second instance at a position already filled (a repeat, a 4D series) is not written over the first
    one's slot: the snapshot stacks both, each with its own values."""
    import pydicom

    files = _files(data_dir, "ct/pancreas-ct-philips-134")
    ds = pydicom.dcmread(files[10])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.InstanceNumber = 999
    values = ds.pixel_array.copy()
    values[values < values.max()] += 1
    ds.PixelData = values.tobytes()
    again = tmp_path / "again.dcm"
    ds.save_as(again)
    series = ArrivingSeries()
    assert series.add(files[10:12]) == 2
    assert series.snapshot(3) is not None  # the grid and its buffer
    assert series.add(str(again)) == 1
    snap = series.snapshot(3)
    assert snap is not None and snap.volume.shape[0] == 3 and bool(snap.ready.all())
    by_file = {s.file: k for k, s in enumerate(snap.volume.info.slices)}
    whole = load_series(files[10:11])
    np.testing.assert_array_equal(snap.volume.array[by_file[files[10]]], whole.array[0])
    assert not np.array_equal(snap.volume.array[by_file[str(again)]], whole.array[0])
