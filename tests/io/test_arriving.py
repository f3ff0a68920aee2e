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
