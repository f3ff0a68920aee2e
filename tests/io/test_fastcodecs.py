"""imagecodecs decodes exactly what pydicom decodes, on every compressed file of the test corpora."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("imagecodecs")

from viewer.io.fastcodecs import FAST_SYNTAXES, decode_encapsulated  # noqa: E402


from tests.io.pydicom_corpus import corpus_files  # noqa: E402

CORPUS = corpus_files(lambda p, ds: str(ds.file_meta.get("TransferSyntaxUID", "")) in FAST_SYNTAXES)


def _pydicom_or_none(ds):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(ds.pixel_array)
    except Exception:  # noqa: BLE001 - pydicom cannot decode it: nothing to compare with
        return None


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_same_values_as_pydicom(path):
    ds = pydicom.dcmread(path)
    fast = decode_encapsulated(ds, str(ds.file_meta.TransferSyntaxUID))
    if fast is None:
        return  # a case the fast path declines (pydicom decodes it); test_fast_path_takes_most counts them
    ref = _pydicom_or_none(pydicom.dcmread(path))
    if ref is None:
        pytest.fail(f"imagecodecs decodes {path.name} but pydicom cannot: the fast path must decline it")
    assert fast.shape == (int(ds.get("NumberOfFrames", 1) or 1), *ref.shape[-fast.ndim + 1:])
    np.testing.assert_array_equal(fast.reshape(ref.shape), ref)


def test_fast_path_takes_most_compressed_files():
    """The comparison above is only worth something if the fast path actually decodes the corpus."""
    taken = [p.name for p in CORPUS if decode_encapsulated(d := pydicom.dcmread(p),
                                                           str(d.file_meta.TransferSyntaxUID)) is not None]
    assert len(CORPUS) > 40
    assert len(taken) >= 0.6 * len(CORPUS), sorted(set(p.name for p in CORPUS) - set(taken))
    for name in ("color3d_jpeg_baseline.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "JPEGLSNearLossless_16.dcm"):
        assert name in taken, name


@pytest.mark.parametrize("name", ["4.dcm", "5.dcm", "6.dcm", "7.dcm", "8.dcm", "9.dcm"])
def test_dcm_qa_transfer_syntaxes_match_the_uncompressed_original(data_dir, name):
    """dcm_qa_ts holds one MR image in each transfer syntax; 1.dcm is the uncompressed one. dcm2niix's
    Ref/ NIfTI of each is the same image, so the decoded values must equal 1.dcm's stored values."""
    folder = data_dir / "dcm_qa" / "ts" / "In"
    ds = pydicom.dcmread(folder / name)
    fast = decode_encapsulated(ds, str(ds.file_meta.TransferSyntaxUID))
    assert fast is not None, f"{name} ({ds.file_meta.TransferSyntaxUID.name}) not taken by the fast path"
    original = pydicom.dcmread(folder / "1.dcm").pixel_array
    np.testing.assert_array_equal(fast[0], original)
    import nibabel

    ref = np.asarray(nibabel.load(str(data_dir / "dcm_qa" / "ts" / "Ref" / name.replace(".dcm", ".nii"))).dataobj)
    # A Siemens mosaic: dcm2niix's slice z is tile z (row-major tiles), columns along x, rows flipped
    # (NIfTI's y axis points up).
    ty, tx, nz = ref.shape[1], ref.shape[0], ref.shape[2]
    per_row = fast.shape[2] // tx
    for z in range(nz):
        r, c = divmod(z, per_row)
        tile = fast[0, r * ty:(r + 1) * ty, c * tx:(c + 1) * tx]
        np.testing.assert_array_equal(tile, np.flipud(ref[:, :, z].T), err_msg=f"{name} slice {z}")


def test_lossless_htj2k_through_openjph_equals_pydicom(data_dir, tmp_path):
    """No HTJ2K file in the corpora: a copy of real CT slices written by the export (OpenJPH) is decoded
    by the fast path (OpenJPH) and by pydicom (pylibjpeg-openjpeg, another implementation)."""
    from viewer.io.export import export_series

    files = sorted(str(f) for f in (data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))[:3]
    report = export_series(files, str(tmp_path), "htj2k")
    for path in report.written:
        ds = pydicom.dcmread(path)
        fast = decode_encapsulated(ds, str(ds.file_meta.TransferSyntaxUID))
        assert fast is not None and FAST_SYNTAXES[str(ds.file_meta.TransferSyntaxUID)].endswith("(OpenJPH)")
        np.testing.assert_array_equal(fast[0], pydicom.dcmread(path).pixel_array)
