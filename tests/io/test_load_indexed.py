"""Loading with the scanner's header records (as the viewer does after indexing) gives exactly what a
cold load gives, and never trusts a record of a file that changed after it was indexed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import pydicom  # noqa: E402 - a hard dependency: missing, these tests fail

from viewer.io import rawread  # noqa: E402
from viewer.io.index import Index  # noqa: E402
from viewer.io.load import SeriesLoader, load_stack  # noqa: E402
from viewer.io.series import find_stacks  # noqa: E402


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.array, b.array)
    assert a.array.dtype == b.array.dtype
    np.testing.assert_array_equal(a.affine, b.affine)
    assert a.metadata == b.metadata
    assert a.warnings == b.warnings
    assert (a.modality, a.series_uid) == (b.modality, b.series_uid)


def _folders(data_dir: Path) -> list[Path]:
    out = [p for p in sorted((data_dir / "ct").iterdir()) if p.is_dir()]
    out += [p / "In" for p in sorted((data_dir / "dcm_qa").iterdir()) if (p / "In").is_dir()]
    return out


def test_indexed_load_equals_cold_load_on_every_series(data_dir: Path, tmp_path: Path) -> None:
    used = 0
    with Index(tmp_path / "index.sqlite") as idx:
        for folder in _folders(data_dir):
            find_stacks(folder, index=idx)  # fills the index
            result = find_stacks(folder, index=idx)
            assert result.headers_read == 0  # every record below comes from the index
            for stack in result.stacks:
                assert [r.path for r in stack.records] == stack.files
                cold = SeriesLoader(stack.files).load(workers=1)
                loader = SeriesLoader(stack.files, records=stack.records)
                _same(loader.load(workers=1), cold)
                used += sum(it.offset > 0 for it in loader.items)
    # The record path really ran: pancreas (134) and crc (100) read pixels at recorded offsets.
    assert used >= 234


def _copy(data_dir: Path, dst: Path, n: int = 6) -> list[Path]:
    src = sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[:n]
    dst.mkdir()
    for f in src:
        shutil.copy2(f, dst / f.name)
    return sorted(dst.glob("*.dcm"))


def test_file_changed_after_indexing_is_reread(data_dir: Path, tmp_path: Path) -> None:
    files = _copy(data_dir, tmp_path / "s")
    stack = find_stacks(tmp_path / "s").stacks[0]
    # Same size, new content and mtime: one pixel and the position's last digit change.
    ds = pydicom.dcmread(files[2])
    arr = ds.pixel_array.copy()
    arr[10, 10] = 1234
    ds.PixelData = arr.tobytes()
    ds.save_as(files[2])
    st = os.stat(files[2])
    os.utime(files[2], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    # Size changed: an extra element before the pixel data moves the PixelData offset.
    ds = pydicom.dcmread(files[4])
    ds.ImageComments = "edited after indexing"
    ds.RescaleIntercept = -1024
    ds.save_as(files[4])
    indexed = load_stack(stack)
    cold = SeriesLoader([str(f) for f in files]).load()
    _same(indexed, cold)
    k2 = indexed.metadata["files"].index(str(files[2]))
    assert indexed.array[k2, 10, 10] == 1234 - 1000
    k4 = indexed.metadata["files"].index(str(files[4]))
    ref = pydicom.dcmread(files[4]).pixel_array.astype(np.int32) - 1024
    np.testing.assert_array_equal(indexed.array[k4], ref)


def test_record_with_wrong_offset_is_not_trusted(data_dir: Path, tmp_path: Path) -> None:
    files = _copy(data_dir, tmp_path / "s", n=4)
    stack = find_stacks(tmp_path / "s").stacks[0]
    stack.records[1].pixel_offset += 2  # the element header there is not PixelData: read the slow way
    loader = SeriesLoader(stack.files, records=stack.records)
    _same(loader.load(), SeriesLoader([str(f) for f in files]).load())


def test_reader_checks_stamp_and_element_header(data_dir: Path, tmp_path: Path) -> None:
    files = _copy(data_dir, tmp_path / "s", n=1)
    rec = find_stacks(tmp_path / "s").stacks[0].records[0]
    out = np.empty((512, 512), np.int16)
    stamp = (rec.size, rec.mtime_ns)
    assert rawread.read_pixels_fast(str(files[0]), out, False, rec.pixel_offset, stamp)
    assert not rawread.read_pixels_fast(str(files[0]), out, False, rec.pixel_offset, (rec.size, 1))
    assert not rawread.read_pixels_fast(str(files[0]), out, False, rec.pixel_offset - 4, stamp)
    assert rawread.read_pixels_portable(str(files[0]), out, False, rec.pixel_offset, stamp)
    assert not rawread.read_pixels_portable(str(files[0]), out, False, rec.pixel_offset + 2, stamp)


def test_int16_overflow_in_a_reader_thread_retries_as_float32(data_dir: Path, tmp_path: Path) -> None:
    src = sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[:30]
    expected = {}
    for i, f in enumerate(src):
        ds = pydicom.dcmread(f)
        arr = ds.pixel_array[:32, :32].astype(np.uint16)
        if i == 25:  # read by either thread, not the first slice
            arr[3, 3] = 60000  # 60000 - 1000 leaves int16
        ds.Rows = ds.Columns = 32
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 0
        ds.PixelData = arr.tobytes()
        ds.save_as(tmp_path / f.name)
        expected[str(tmp_path / f.name)] = arr.astype(np.float32) - 1000
    stack = find_stacks(tmp_path).stacks[0]
    loader = SeriesLoader(stack.files, records=stack.records)
    assert all(it.fast for it in loader.items)
    vol = loader.load(workers=2)
    assert vol.array.dtype == np.float32
    np.testing.assert_array_equal(vol.array, np.stack([expected[p] for p in vol.metadata["files"]]))
