"""Every pixel-bearing file of pydicom-data and of pydicom's bundled test files loads, or fails with a
LoadError naming the missing decoder or the defect. Where pydicom itself decodes the file, our values equal
pydicom's pixel_array after pydicom's own modality transform (apply_modality_lut)."""

from __future__ import annotations

import numpy as np
import pytest

import pydicom  # noqa: E402 - a hard dependency: missing, these tests fail

from tests.io.pydicom_corpus import corpus_files  # noqa: E402

CORPUS = corpus_files()
# Messages must say what is missing or what is wrong, never just "error".
REASON_WORDS = ("decoder", "install", "defective", "missing", "no pixel data", "not readable", "differs",
                "expected", "cannot", "frame", "zero", "unusable", "mismatch", "length")


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_decodes_or_says_why(path):
    from viewer.io import LoadError
    from viewer.io.load import SeriesLoader

    try:
        vol = SeriesLoader([str(path)]).load(workers=1)
    except LoadError as exc:
        msg = str(exc).lower()
        assert any(w in msg for w in REASON_WORDS), f"unspecific message: {exc}"
        return
    z, y, x = vol.shape
    assert z >= 1 and y >= 1 and x >= 1
    assert vol.array.dtype in (np.int16, np.float32, np.uint8)
    assert np.isfinite(vol.affine).all()
    try:
        ds = pydicom.dcmread(path)
        ref = ds.pixel_array
    except Exception:  # noqa: BLE001 - pydicom cannot decode it either: nothing to compare with
        return
    if vol.array.dtype == np.uint8 and vol.array.ndim == 4:
        if ds.PhotometricInterpretation == "PALETTE COLOR" or ref.dtype != np.uint8:
            return  # expanded palette / 16-bit colour scaled to 8 bits: no like-for-like reference
        ref = ref.reshape(-1, *vol.array.shape[1:])
        ours = vol.array
        if "metadata" in dir(vol) and vol.metadata.get("frames") and vol.metadata["frames"][0] is not None:
            ref = ref[[f for f in vol.metadata["frames"]]]
        np.testing.assert_array_equal(ours, ref)
        return
    from pydicom.pixels import apply_modality_lut

    if "PerFrameFunctionalGroupsSequence" in ds:
        # Enhanced multi-frame: the rescale is in the functional groups (PS3.3 C.7.6.16.2.9), which
        # apply_modality_lut does not read; apply each frame's own pair.
        ref = ref.reshape(-1, *ref.shape[-2:]).astype(np.float64)
        for k in range(ref.shape[0]):
            pv = None
            for seq in (ds.PerFrameFunctionalGroupsSequence[k], ds.get("SharedFunctionalGroupsSequence", [None])[0]):
                if seq is not None and seq.get("PixelValueTransformationSequence"):
                    pv = seq.PixelValueTransformationSequence[0]
                    break
            if pv is not None:
                ref[k] = ref[k] * float(pv.get("RescaleSlope", 1)) + float(pv.get("RescaleIntercept", 0))
    else:
        ref = np.asarray(apply_modality_lut(ref, ds), dtype=np.float64)
    frames = vol.metadata["frames"]
    if ref.ndim == 2:
        ref = ref[None]
    if frames[0] is not None and ref.shape[0] > 1 and vol.shape[0] == len(frames):
        if ref.shape[1:] != vol.array.shape[1:]:
            return  # mosaic: tiles are checked against dcm2niix elsewhere
        ref = ref[frames]
    if ref.shape != vol.array.shape:
        return
    np.testing.assert_allclose(vol.array.astype(np.float64), ref, rtol=1e-5, atol=1e-3)
