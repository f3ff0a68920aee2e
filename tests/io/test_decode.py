"""Decoder paths that the corpus test cannot pin down: the GDCM fallback and the process pool."""

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


def test_12bit_jpeg_extended_gdcm_fallback_equals_pydicom(monkeypatch):
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


def test_gdcm_fallback_keeps_monochrome1_stored_values(tmp_path, monkeypatch):
    """SimpleITK would invert MONOCHROME1; GDCM's buffer holds the stored values, as pydicom's does."""
    ds = pydicom.dcmread(JPG_EXT)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    ref = SeriesLoader([str(tmp_path / "m1.dcm")]).load(workers=1).array
    _no_pydicom_decoder(monkeypatch)
    vol = SeriesLoader([str(tmp_path / "m1.dcm")]).load(workers=1)
    assert np.abs(vol.array.astype(np.int32) - ref).max() <= 1
    assert vol.metadata["photometric"] == "MONOCHROME1"


def _pack12(values: np.ndarray) -> bytes:
    """Two 12-bit samples in three bytes, low sample first (ACR-NEMA packing, as GDCM reads it)."""
    v = values.ravel().astype(np.uint16) & 0xFFF
    p0, p1 = v[0::2], v[1::2]
    b = np.empty((v.size // 2, 3), np.uint8)
    b[:, 0] = p0 & 0xFF
    b[:, 1] = ((p0 >> 8) & 0x0F) | ((p1 & 0x0F) << 4)
    b[:, 2] = p1 >> 4
    return b.tobytes()


def test_12bit_packed_pixels_are_read_through_gdcm(data_dir, tmp_path):
    """BitsAllocated 12 (old ACR-NEMA style packing): pydicom refuses it; the values come back exact."""
    src = data_dir / "dcm_qa" / "12bit" / "In"
    original = src / "12bitUnsigned_0x0F0F.dcm"  # a Siemens mosaic whose unused high bits hold junk
    ds = pydicom.dcmread(original)
    assert ds.BitsStored == 12 and ds.PixelRepresentation == 0
    stored = ds.pixel_array & 0xFFF
    ds.BitsAllocated, ds.HighBit = 12, 11
    ds.PixelData = _pack12(stored)
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "packed.dcm")
    vol = SeriesLoader([str(tmp_path / "packed.dcm")]).load(workers=1)
    ref = SeriesLoader([str(original)]).load(workers=1)
    assert vol.shape == ref.shape
    np.testing.assert_array_equal(vol.array, ref.array)


def test_headless_implicit_file_loads(tmp_path):
    """No preamble, no DICM, no file meta: an implicit VR little endian data set as old exports write it."""
    from pydicom.filewriter import write_dataset

    src = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
    ds = pydicom.dcmread(src)
    with open(tmp_path / "IMG0001", "wb") as fh:
        fh.write(b"")  # no preamble
    import io

    buf = io.BytesIO()
    from pydicom.filebase import DicomFileLike

    fp = DicomFileLike(buf)
    fp.is_little_endian, fp.is_implicit_VR = True, True
    del ds.file_meta
    write_dataset(fp, ds)
    (tmp_path / "IMG0001").write_bytes(buf.getvalue())
    assert not buf.getvalue()[128:132] == b"DICM"
    vol = SeriesLoader([str(tmp_path / "IMG0001")]).load(workers=1)
    ref = SeriesLoader([str(src)]).load(workers=1)
    np.testing.assert_array_equal(vol.array, ref.array)
    np.testing.assert_allclose(vol.affine, ref.affine)


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


def _private_compression_copy(path: Path) -> None:
    """MR_small with its pixels moved to a private element under a vendor's transfer syntax, as
    Philips' private compression (1.3.46.670589.33.1.4.1) stores them."""
    ds = pydicom.dcmread(Path(pydicom.__file__).parent / "data" / "test_files" / "MR_small.dcm")
    pixels = ds.PixelData
    del ds.PixelData
    ds.file_meta.TransferSyntaxUID = "1.3.46.670589.33.1.4.1"
    ds.add_new(0x07A1100A, "OB", pixels)
    ds.save_as(path, implicit_vr=False, little_endian=True)


def test_private_compression_is_named_not_called_truncated(tmp_path):
    from viewer.io.headers import read_header

    _private_compression_copy(tmp_path / "private.dcm")
    rec = read_header(str(tmp_path / "private.dcm"))
    assert rec.status == "bad"
    assert rec.reason == "unsupported compression (private transfer syntax UID 1.3.46.670589.33.1.4.1)"
    with pytest.raises(LoadError, match=r"unsupported compression \(private transfer syntax UID 1\.3\.46"):
        SeriesLoader([str(tmp_path / "private.dcm")]).load(workers=1)


def test_12bit_packed_file_is_an_image_for_the_scanner(data_dir, tmp_path):
    from viewer.io.headers import read_header

    ds = pydicom.dcmread(data_dir / "dcm_qa" / "12bit" / "In" / "12bitUnsigned.dcm")
    packed = _pack12(ds.pixel_array)
    ds.BitsAllocated, ds.HighBit = 12, 11
    ds.PixelData = packed
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "packed.dcm")
    rec = read_header(str(tmp_path / "packed.dcm"))
    assert (rec.status, rec.reason) == ("image", "")


def test_the_pool_starts_while_headers_are_read(data_dir):
    """A compressed series starts the decoder processes in the loader's constructor (header pass), not
    when load() needs them, so their spawn and imports overlap the header pass."""
    from viewer.io import decode_pool

    decode_pool.shutdown_pool()
    files = sorted(str(f) for f in (data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())
    loader = SeriesLoader(files, decode_in_pool=True)
    pool = decode_pool._POOL
    assert pool is not None and decode_pool.pool_size() >= 1
    loader.load()
    assert decode_pool._POOL is pool  # load() used the prestarted pool
    decode_pool.shutdown_pool()
    SeriesLoader(files[:3])  # below POOL_MIN_FILES and not in the app's mode: no pool
    assert decode_pool._POOL is None
