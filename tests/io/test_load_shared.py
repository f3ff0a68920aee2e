"""Compressed series decoded by the process pool straight into a shared-memory volume: the same values
as an in-process decode, first slice first, and the fallbacks (broken pool, shared memory full, values
that leave int16) still give the right volume and leave no file behind."""

from __future__ import annotations

import mmap
import os
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest

import pydicom  # noqa: E402 - a hard dependency: missing, these tests fail

from viewer.io import decode_pool  # noqa: E402
from viewer.io.load import SeriesLoader  # noqa: E402

needs_shm = pytest.mark.skipif(decode_pool.SHM_DIR is None, reason="no shared-memory folder on this platform")


def _j2k(data_dir: Path) -> list[str]:
    return sorted(str(p) for p in (data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())


def _leftovers() -> list[str]:
    if decode_pool.SHM_DIR is None:
        return []
    return [n for n in os.listdir(decode_pool.SHM_DIR) if n.startswith(f"{decode_pool.SHM_PREFIX}{os.getpid()}-")]


def _shared(a: np.ndarray) -> bool:
    """The array lives on a shared-memory mmap (somewhere down its chain of bases)."""
    base = a.base
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(getattr(base, "obj", base), mmap.mmap)


class _BrokenPool:
    """Stands in for a pool whose workers died: every future fails with BrokenProcessPool."""

    def submit(self, *args: object, **kwargs: object) -> Future[None]:
        fut: Future[None] = Future()
        fut.set_exception(BrokenProcessPool("worker killed"))
        return fut


@needs_shm
def test_pool_writes_shared_volume_with_same_values(data_dir: Path) -> None:
    files = _j2k(data_dir)
    ref = SeriesLoader(files).load(workers=1)
    assert not _shared(ref.array)
    firsts: list[int] = []
    loader = SeriesLoader(files, decode_in_pool=True)
    seen: list[int] = []
    vol = loader.load(progress=lambda d, t: seen.append(d),
                      first_slice=lambda k, a: firsts.append(k) or np.testing.assert_array_equal(
                          a, ref.array[k]) or None)
    assert _shared(vol.array)  # decoded in the workers, written in place
    np.testing.assert_array_equal(vol.array, ref.array)
    assert vol.array.dtype == ref.array.dtype and vol.array.flags.writeable
    assert firsts == [loader.first_index] and seen[0] == 1 and seen[-1] == len(files)
    np.testing.assert_array_equal(SeriesLoader(files).load(workers=2).array, ref.array)
    assert _leftovers() == []


@needs_shm
def test_broken_pool_and_full_shared_memory_fall_back(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _j2k(data_dir)[:8]
    ref = SeriesLoader(files).load(workers=1).array
    monkeypatch.setattr(decode_pool, "get_pool", lambda size: _BrokenPool())
    vol = SeriesLoader(files, decode_in_pool=True).load()
    np.testing.assert_array_equal(vol.array, ref)
    assert _shared(vol.array)  # decoded here, still written into the shared volume

    def full(fd: int, data: memoryview, offset: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(decode_pool, "pwrite_all", full)
    vol = SeriesLoader(files, decode_in_pool=True).load()
    np.testing.assert_array_equal(vol.array, ref)
    assert not _shared(vol.array)
    assert _leftovers() == []


@needs_shm
def test_int16_overflow_in_a_worker_retries_as_float32(data_dir: Path, tmp_path: Path) -> None:
    from pydicom.uid import RLELossless

    src = sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[:6]
    expected = []
    for i, f in enumerate(src):
        ds = pydicom.dcmread(f)
        arr = ds.pixel_array[:64, :64].astype(np.uint16)
        if i == 3:
            arr[5, 5] = 60000  # 60000 - 1000 does not fit int16
        ds.Rows = ds.Columns = 64
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 0
        ds.PixelData = arr.tobytes()
        ds.compress(RLELossless)
        ds.save_as(tmp_path / f.name)
        expected.append(arr.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    files = sorted(str(p) for p in tmp_path.iterdir())
    vol = SeriesLoader(files, decode_in_pool=True).load()
    assert vol.array.dtype == np.float32
    order = [vol.metadata["files"].index(str(tmp_path / f.name)) for f in src]
    np.testing.assert_array_equal(vol.array[order], np.stack(expected))
    assert _leftovers() == []


@needs_shm
def test_stale_shared_volume_of_a_dead_process_is_removed(data_dir: Path) -> None:
    stale = Path(decode_pool.SHM_DIR or "") / f"{decode_pool.SHM_PREFIX}999999999-test"
    stale.write_bytes(b"x")
    try:
        SeriesLoader(_j2k(data_dir)[:8], decode_in_pool=True).load()
        assert not stale.exists()
    finally:
        stale.unlink(missing_ok=True)


def test_without_shared_memory_slices_come_back_pickled(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _j2k(data_dir)[:8]
    ref = SeriesLoader(files).load(workers=1).array
    monkeypatch.setattr(decode_pool, "SHM_DIR", None)  # Windows, macOS
    vol = SeriesLoader(files, decode_in_pool=True).load()
    assert not _shared(vol.array)
    np.testing.assert_array_equal(vol.array, ref)
