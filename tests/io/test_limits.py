"""viewer.io.limits on real files: what a file states is checked against what is there before decoding."""

from __future__ import annotations

import resource
import zlib
from pathlib import Path

import pydicom
import pytest

from viewer.io import limits
from viewer.io.errors import LoadError


def test_codestream_sizes_of_real_files_match_their_headers(data_dir: Path) -> None:
    ts = data_dir / "dcm_qa" / "ts" / "In"
    j2k = sorted((data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())[0]
    for path in (ts / "5.dcm", ts / "7.dcm", ts / "9.dcm", j2k):  # JPEG Lossless, JPEG-LS, J2K, J2K CT
        ds = pydicom.dcmread(path)
        assert limits.encapsulated_problem_in(ds.PixelData, 1, int(ds.Rows), int(ds.Columns)) is None
        limits.check_before_decode(ds, str(path))  # passes
        # The same stream with other Rows: refused before decoding, naming both sizes.
        problem = limits.encapsulated_problem_in(ds.PixelData, 1, int(ds.Rows) + 1, int(ds.Columns))
        assert problem is not None and f"declares {ds.Rows} x {ds.Columns}" in problem
        # More frames than fragments: the frame count is false.
        problem = limits.encapsulated_problem_in(ds.PixelData, 2**31 - 1, int(ds.Rows), int(ds.Columns))
        assert problem is not None and "only 1 fragment" in problem


def test_decode_budget_is_stated_in_the_error(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIEWER_DECODE_BUDGET_MB", "64")
    assert limits.decode_budget() == 64 << 20
    problem = limits.decoded_size_problem(512, 512, 1000, 1, 16)
    assert problem is not None and "500 MiB" in problem and "budget of 64 MiB" in problem
    ds = pydicom.dcmread(sorted((data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))[0])
    ds.NumberOfFrames = 1000
    with pytest.raises(LoadError, match="over the per-file budget of 64 MiB"):
        limits.check_before_decode(ds, "x.dcm")


def test_inflation_is_counted_not_kept() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = bomb.compress(bytes(200 << 20)) + bomb.flush()  # 200 MiB of zeros in ~200 KB
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    it = iter(chunks)
    assert limits.inflated_size_problem(lambda: next(it, b""), 300 << 20) is None
    it = iter(chunks)
    assert "more than 64 MiB" in (limits.inflated_size_problem(lambda: next(it, b""), 64 << 20) or "")


@pytest.mark.parametrize("iop, ok", [
    ([1, 0, 0, 0, 1, 0], True), ([0, 0, 0, 0, 0, 0], False), ([1, 0, 0, 1, 0, 0], False),
    ([float("nan"), 0, 0, 0, 1, 0], False), ([1e300, 0, 0, 0, 1e-300, 0], False), ([1, 0, 0], False),
])
def test_orientation_sanity(iop: list[float], ok: bool) -> None:
    value, why = limits.checked_orientation(iop)
    assert (value is not None) == ok and (why is None) == ok


def test_decoder_processes_run_under_a_memory_cap() -> None:
    from viewer.io.decode_pool import drop_pool, get_pool

    drop_pool()
    try:
        soft, _ = get_pool(1).submit(resource.getrlimit, resource.RLIMIT_AS).result()
    finally:
        drop_pool()
    assert soft == limits.process_memory_cap()
