"""Decode the pixel data of one DICOM file into stored values (no rescale, no VOI, no inversion).

pydicom 3 decodes every common transfer syntax with its plugins (numpy for native/deflate/big endian,
pylibjpeg + libjpeg/openjpeg, pyjpegls, RLE). pydicom has no decoder for 12-bit JPEG Extended (Process 2
and 4), so that case alone goes to SimpleITK (GDCM); SimpleITK applies rescale, inverts MONOCHROME1,
expands palettes and 1-bit data, so it is refused for those and its output is mapped back to stored
values and checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from viewer.io.errors import LoadError
from viewer.io.limits import check_before_decode
from viewer.io.pixels import fix_stored_bits, palette_to_rgb8

JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"

# Which package provides the decoder of each compressed transfer syntax (for error messages).
DECODER_PACKAGES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg (8-bit) or SimpleITK (12-bit)",
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pyjpegls or pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.81": "pyjpegls or pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg (HTJ2K)",
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg (HTJ2K)",
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg (HTJ2K)",
    "1.2.840.10008.1.2.5": "pydicom RLE (built in) or pylibjpeg-rle",
}


def _ts_name(ds: Any) -> tuple[str, str]:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None:
        return "", "unknown transfer syntax (no TransferSyntaxUID)"
    return str(uid), f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)


def decode_frames(ds: Any, path: str) -> np.ndarray:
    """All frames of ``ds`` as stored values.

    Returns
    -------
    numpy.ndarray
        (frames, rows, columns) integer or float stored values for grey images (BitsStored masked or
        sign-extended), or (frames, rows, columns, 3) uint8 RGB for colour (YBR converted to RGB,
        PALETTE COLOR expanded).

    Raises
    ------
    LoadError
        No pixel data, a defect (length mismatch, bad header) or a missing decoder, named in the message.
    """
    if not any(t in ds for t in (0x7FE00010, 0x7FE00008, 0x7FE00009)):
        raise LoadError(f"{path}: no Pixel Data (7FE0,0010) in the file")
    for kw in ("Rows", "Columns", "BitsAllocated"):
        if ds.get(kw) in (None, "", 0):
            raise LoadError(f"{path}: {kw} is missing or zero, pixel data cannot be interpreted")
    check_before_decode(ds, path)  # budget, frames vs fragments, codestream size vs Rows x Columns
    uid, ts = _ts_name(ds)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    try:
        arr = _pixel_array(ds, uid)  # pydicom 3: stored values, YBR -> RGB by default
    except Exception as exc:  # noqa: BLE001 - every decoder failure becomes a LoadError with its reason
        if uid == JPEG_EXTENDED and int(ds.get("BitsAllocated", 8)) > 8:
            return _decode_with_simpleitk(ds, path)
        raise _as_load_error(exc, path, uid, ts) from exc
    arr = np.asarray(arr)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if spp == 1 and arr.ndim == 2:
        arr = arr[None]
    elif spp > 1 and arr.ndim == 3 and frames == 1:
        arr = arr[None]
    if photometric == "PALETTE COLOR":
        from pydicom.pixels.processing import apply_color_lut

        try:
            arr = palette_to_rgb8(np.asarray(apply_color_lut(arr, ds)))
        except Exception as exc:  # noqa: BLE001
            raise LoadError(f"{path}: PALETTE COLOR image with an unusable palette: {exc}") from exc
        return arr
    if spp == 3:
        if arr.dtype != np.uint8:
            arr = (arr >> (int(ds.get("BitsStored", 16)) - 8)).astype(np.uint8)
        return arr
    if not arr.flags.writeable:
        arr = arr.copy()
    return fix_stored_bits(arr, int(ds.get("BitsStored", ds.BitsAllocated)),
                           int(ds.get("PixelRepresentation", 0)) == 1)


# Faster plugin first where pydicom's default order is slower (measured: pyjpegls decodes 512x512 JPEG-LS
# about 3x faster than pylibjpeg-libjpeg).
PREFERRED_PLUGIN = {"1.2.840.10008.1.2.4.80": "pyjpegls", "1.2.840.10008.1.2.4.81": "pyjpegls",
                    "1.2.840.10008.1.2.4.90": "pylibjpeg", "1.2.840.10008.1.2.4.91": "pylibjpeg"}


def _pixel_array(ds: Any, uid: str) -> np.ndarray:
    plugin = PREFERRED_PLUGIN.get(uid)
    if plugin is not None:
        try:
            ds.pixel_array_options(decoding_plugin=plugin)
            return np.asarray(ds.pixel_array)
        except Exception:  # noqa: BLE001 - plugin missing or failed on this file: let pydicom choose
            ds.pixel_array_options(decoding_plugin="")
    return np.asarray(ds.pixel_array)


def _as_load_error(exc: Exception, path: str, uid: str, ts: str) -> LoadError:
    text = " ".join(str(exc).split()) or type(exc).__name__
    available = _decoder_available(uid)
    if available is False:
        pkg = DECODER_PACKAGES.get(uid, "a decoder plugin for this transfer syntax")
        return LoadError(f"{path}: no decoder installed for {ts}; install {pkg} ({text[:300]})")
    return LoadError(f"{path}: pixel data of {ts} cannot be decoded, the file is defective: {text[:400]}")


def _decoder_available(uid: str) -> bool | None:
    """True/False when pydicom knows the transfer syntax and has/lacks a working plugin; None if unknown."""
    if not uid:
        return None
    try:
        from pydicom.pixels.decoders.base import get_decoder

        return bool(get_decoder(uid).is_available)
    except Exception:  # noqa: BLE001 - unknown or private transfer syntax
        return False


def _decode_with_simpleitk(ds: Any, path: str) -> np.ndarray:
    """12-bit JPEG Extended via GDCM, mapped back to stored values and checked."""
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in ("MONOCHROME2",) or int(ds.get("BitsStored", 12)) == 1:
        raise LoadError(f"{path}: 12-bit JPEG Extended with {photometric or 'no'} photometric "
                        "interpretation: pydicom has no decoder and SimpleITK would alter the values")
    try:
        import SimpleITK as sitk

        img = sitk.ReadImage(path)
        arr = sitk.GetArrayFromImage(img)
    except Exception as exc:  # noqa: BLE001
        raise LoadError(f"{path}: 12-bit JPEG Extended: pydicom has no decoder and SimpleITK failed: "
                        f"{exc}") from exc
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    stored = (arr.astype(np.float64) - intercept) / slope  # single frame set: small, float64 is fine
    if not np.allclose(stored, np.round(stored), atol=1e-3):
        raise LoadError(f"{path}: SimpleITK output does not map back to integer stored values")
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    out = np.round(stored).astype(np.int16 if signed else np.uint16)
    if out.ndim == 2:
        out = out[None]
    rows, cols = int(ds.Rows), int(ds.Columns)
    if out.shape[1:] != (rows, cols):
        raise LoadError(f"{path}: SimpleITK returned {out.shape[1:]}, header says {rows}x{cols}")
    return out
