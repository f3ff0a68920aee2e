"""Decoder paths that the corpus test cannot pin down: the SimpleITK fallback and the process pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pydicom  # noqa: E402 - a hard dependency: missing, these tests fail

from viewer.io import LoadError  # noqa: E402
from viewer.io.load import SeriesLoader  # noqa: E402

JPG_EXT = Path(pydicom.__file__).parent / "data" / "test_files" / "JPGExtended.dcm"


def _no_pydicom_decoder(monkeypatch):
    """Make pydicom's decode fail as it does where no plugin handles 12-bit JPEG Extended."""
    import viewer.io.decode as dec

    def fail(ds, uid):
        raise RuntimeError("Unable to decode: no plugin for 12-bit JPEG Extended")

    monkeypatch.setattr(dec, "_pixel_array", fail)


def test_12bit_jpeg_extended_simpleitk_fallback_equals_pydicom(monkeypatch):
    ds = pydicom.dcmread(JPG_EXT)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.51" and ds.BitsStored == 12
    ref = SeriesLoader([str(JPG_EXT)]).load(workers=1).array  # pylibjpeg-libjpeg decodes it here
    _no_pydicom_decoder(monkeypatch)
    vol = SeriesLoader([str(JPG_EXT)]).load(workers=1)
    assert vol.array.dtype == np.int16 and vol.shape == (1, ds.Rows, ds.Columns)
    # Lossy JPEG: two IDCT implementations (libjpeg vs GDCM's IJG) may differ by one in the last bit.
    diff = np.abs(vol.array.astype(np.int32) - ref)
    assert diff.max() <= 1 and diff.mean() < 0.05
    assert vol.array.std() > 10


def test_simpleitk_fallback_refuses_monochrome1(tmp_path, monkeypatch):
    ds = pydicom.dcmread(JPG_EXT)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    _no_pydicom_decoder(monkeypatch)
    with pytest.raises(LoadError, match="SimpleITK would alter"):
        SeriesLoader([str(tmp_path / "m1.dcm")]).load(workers=1)


def test_missing_decoder_is_named(tmp_path, monkeypatch):
    import viewer.io.decode as dec

    ds = pydicom.dcmread(JPG_EXT)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.91"  # claims JPEG 2000
    ds.save_as(tmp_path / "j2k.dcm")
    monkeypatch.setattr(dec, "_decoder_available", lambda uid: False)
    with pytest.raises(LoadError, match="pylibjpeg-openjpeg"):
        SeriesLoader([str(tmp_path / "j2k.dcm")]).load(workers=1)


def test_process_pool_gives_the_same_volume(data_dir):
    files = sorted((data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())
    loader = SeriesLoader([str(f) for f in files])
    one = loader.load(workers=1).array
    seen = []
    two = loader.load(workers=2, progress=lambda d, t: seen.append(d)).array
    np.testing.assert_array_equal(one, two)
    assert seen[-1] == len(files)


def test_decode_in_pool_never_decodes_compressed_pixels_here(data_dir, monkeypatch):
    """The app's mode: the calling process (the one with the UI thread) only waits for the pool."""
    import viewer.io.decode as decode_mod

    files = sorted((data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())
    ref = SeriesLoader([str(f) for f in files]).load(workers=1).array
    loader = SeriesLoader([str(f) for f in files], decode_in_pool=True)
    here = []
    real = decode_mod.decode_frames
    monkeypatch.setattr(decode_mod, "decode_frames", lambda data, path: here.append(path) or real(data, path))
    k = loader.first_index
    np.testing.assert_array_equal(loader.read_slice(k), ref[k])
    seen = []
    vol = loader.load(progress=lambda d, t: seen.append(d))
    np.testing.assert_array_equal(vol.array, ref)
    assert here == []  # the spawned workers use their own (unpatched) module
    assert seen == sorted(seen) and seen[-1] == len(files)


def test_big_endian_and_deflate_match_little_endian():
    base = Path(pydicom.__file__).parent / "data" / "test_files"
    ref = SeriesLoader([str(base / "MR_small.dcm")]).load().array
    for name in ("MR_small_bigendian.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm",
                 "MR_small_jp2klossless.dcm"):
        if (base / name).exists():
            np.testing.assert_array_equal(SeriesLoader([str(base / name)]).load().array, ref, err_msg=name)


def test_warm_pool_starts_the_decoders_once():
    from viewer.io import decode_pool
    from viewer.io.load import warm_pool

    warm_pool()
    pool = decode_pool._POOL
    assert pool is not None and 1 <= decode_pool.pool_size() <= decode_pool.MAX_WORKERS
    warm_pool()
    assert decode_pool._POOL is pool  # reused, not re-spawned
