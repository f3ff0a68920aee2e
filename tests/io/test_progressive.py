"""Slices are usable as they arrive: the loader hands out the volume while it fills, middle outwards."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pydicom")

from viewer.io.load import SeriesLoader  # noqa: E402


def _watch(loader: SeriesLoader, **kw):
    """Load with on_slices, checking at every call that each slice reported ready holds its final values
    (compared after the load) and recording the order."""
    seen: list[tuple[int, np.ndarray]] = []
    arrays = []

    def on_slices(vol: np.ndarray, ks: list[int]) -> None:
        if not arrays or arrays[-1] is not vol:
            arrays.append(vol)
        for k in ks:
            seen.append((k, np.array(vol[k])))  # a copy of the slice as it was when reported ready

    volume = loader.load(on_slices=on_slices, **kw)
    return volume, seen, arrays


@pytest.mark.parametrize("mode", [{"workers": 1}, {"workers": 2}, {"pool_only": True}])
def test_compressed_slices_arrive_middle_out_in_the_returned_array(data_dir, mode):
    files = sorted(str(f) for f in (data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())
    pool_only = mode.pop("pool_only", False)
    ref = SeriesLoader(files).load(workers=1).array
    loader = SeriesLoader(files, decode_in_pool=pool_only)
    vol, seen, arrays = _watch(loader, **mode)
    assert len(arrays) == 1 and arrays[0] is vol.array or np.shares_memory(arrays[0], vol.array)
    assert sorted(k for k, _ in seen) == list(range(len(files)))
    for k, values in seen:
        np.testing.assert_array_equal(values, ref[k], err_msg=f"slice {k} reported ready too early")
    order = [k for k, _ in seen]
    assert order[0] == loader.first_index
    if mode.get("workers") == 1:  # one decoder: exactly middle outwards
        mid = loader.first_index
        assert order == sorted(range(len(files)), key=lambda k: (abs(k - mid), k < mid))


def test_uncompressed_slices_are_reported_too(data_dir):
    files = sorted(str(f) for f in (data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))[:30]
    loader = SeriesLoader(files)
    vol, seen, _ = _watch(loader)
    assert sorted(k for k, _ in seen) == list(range(30))
    assert seen[0][0] == loader.first_index
    for k, values in seen:
        np.testing.assert_array_equal(values, vol.array[k])


def test_not_yet_decoded_slices_read_as_zeros(data_dir):
    files = sorted(str(f) for f in (data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())
    loader = SeriesLoader(files)
    first_call = []

    def on_slices(vol: np.ndarray, ks: list[int]) -> None:
        if not first_call:
            others = [k for k in range(vol.shape[0]) if k not in ks]
            first_call.append(all(not vol[k].any() for k in others[-3:]))

    loader.load(workers=1, on_slices=on_slices)
    assert first_call == [True]
