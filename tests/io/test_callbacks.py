"""What a caller's callback raises reaches the caller as raised: a Cancelled stays a cancel, a bug in the
caller's own code is not reported as a defect of the files (LoadError)."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.core.jobs import Cancelled
from viewer.io.errors import LoadError
from viewer.io.load import SeriesLoader


class CallerBug(Exception):
    pass


def _ct(data_dir, n: int = 12) -> list[str]:
    return sorted(str(f) for f in (data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))[:n]


def _j2k(data_dir) -> list[str]:
    return sorted(str(f) for f in (data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())


def _raiser(exc: BaseException):
    def callback(*_args: object) -> None:
        raise exc
    return callback


def test_progress_bug_in_the_header_pass_is_the_callers_own_exception(data_dir) -> None:
    bug = CallerBug("progress bar broke")
    with pytest.raises(CallerBug) as info:
        SeriesLoader(_ct(data_dir), progress=_raiser(bug))
    assert info.value is bug and not isinstance(info.value, LoadError)


@pytest.mark.parametrize("name", ["progress", "first_slice", "on_slices"])
def test_pixel_pass_callbacks_raise_through_unchanged(data_dir, name) -> None:
    loader = SeriesLoader(_ct(data_dir))
    bug = CallerBug(name)
    with pytest.raises(CallerBug) as info:
        loader.load(**{name: _raiser(bug)})
    assert info.value is bug
    # The loader is still usable: the files were never at fault.
    assert loader.load().array.shape[0] == 12


def test_a_cancel_from_the_caller_stays_a_cancel(data_dir) -> None:
    loader = SeriesLoader(_ct(data_dir))
    stop = Cancelled("superseded")
    with pytest.raises(Cancelled) as info:
        loader.load(cancel=_raiser(stop))
    assert info.value is stop and not isinstance(info.value, LoadError)
    with pytest.raises(Cancelled) as info:
        loader.load(first_slice=_raiser(stop))
    assert info.value is stop


def test_cancel_returning_true_still_raises_the_loaders_cancel(data_dir) -> None:
    from viewer.io.errors import LoadCancelled

    with pytest.raises(LoadCancelled):
        SeriesLoader(_ct(data_dir), cancel=lambda: True)


@pytest.mark.parametrize("workers", [1, 2])
def test_compressed_load_passes_a_progress_bug_through(data_dir, workers) -> None:
    files = _j2k(data_dir)
    bug = CallerBug("compressed")
    calls: list[int] = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            raise bug

    loader = SeriesLoader(files)
    with pytest.raises(CallerBug) as info:
        loader.load(progress=progress, workers=workers)
    assert info.value is bug
    ref = loader.load(workers=1).array
    np.testing.assert_array_equal(loader.load(workers=workers).array, ref)


def test_a_defective_file_is_still_a_load_error(tmp_path, data_dir) -> None:
    files = _ct(data_dir, 3)
    bad = tmp_path / "cut.dcm"
    data = open(files[0], "rb").read()
    bad.write_bytes(data[:2000])
    with pytest.raises(LoadError):
        SeriesLoader([str(bad)], progress=lambda *_: None).load(progress=lambda *_: None)
