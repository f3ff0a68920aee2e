"""Decode the pixel data of one DICOM file into stored values (no rescale, no VOI, no inversion).

Three decoders, tried in this order:

1. ``imagecodecs`` (:mod:`viewer.io.fastcodecs`) for the compressed transfer syntaxes where it was
   measured faster than pydicom's plugins with identical output (``tests/io/test_fastcodecs.py`` checks
   every file of the corpus against pydicom): JPEG Lossless and 8-bit JPEG through libjpeg-turbo,
   JPEG-LS through CharLS, JPEG 2000 and HTJ2K through OpenJPEG, RLE. It declines (returns None) every
   case it was not checked for, and pydicom decodes those.
2. pydicom 3 with its plugins (numpy for native/deflate/big endian, pylibjpeg + libjpeg/openjpeg,
   pyjpegls, RLE).
3. GDCM (``python-gdcm``) for what pydicom cannot read: 12-bit packed data (BitsAllocated 12), and
   12-bit JPEG Extended where no pydicom plugin decodes it. GDCM returns stored values (no rescale, no
   inversion of MONOCHROME1, unlike SimpleITK, which is never used for pixels), and its output is checked
   against Rows x Columns x frames.
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
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg, or python-gdcm (12-bit)",
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
    uid, ts = _ts_name(ds)
    if uid and not uid.startswith("1.2.840.10008."):
        raise LoadError(f"{path}: unsupported compression (private transfer syntax UID {uid})")
    if not any(t in ds for t in (0x7FE00010, 0x7FE00008, 0x7FE00009)):
        raise LoadError(f"{path}: no Pixel Data (7FE0,0010) in the file")
    for kw in ("Rows", "Columns", "BitsAllocated"):
        if ds.get(kw) in (None, "", 0):
            raise LoadError(f"{path}: {kw} is missing or zero, pixel data cannot be interpreted")
    check_before_decode(ds, path)  # budget, frames vs fragments, codestream size vs Rows x Columns
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if int(ds.BitsAllocated) == 12:
        return _decode_with_gdcm(ds, path, "12-bit packed pixel data (BitsAllocated 12)")
    from viewer.io.fastcodecs import decode_encapsulated

    fast = decode_encapsulated(ds, uid)
    if fast is not None:
        return fast
    try:
        arr = _pixel_array(ds, uid)  # pydicom 3: stored values, YBR -> RGB by default
    except Exception as exc:  # noqa: BLE001 - every decoder failure becomes a LoadError with its reason
        if uid == JPEG_EXTENDED and int(ds.get("BitsAllocated", 8)) > 8:
            return _decode_with_gdcm(ds, path, "12-bit JPEG Extended")
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
    if uid and not uid.startswith("1.2.840.10008."):
        return LoadError(f"{path}: unsupported compression (private transfer syntax UID {uid})")
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


def _decode_with_gdcm(ds: Any, path: str, what: str) -> np.ndarray:
    """Stored values of ``path`` decoded by GDCM (what pydicom cannot decode), checked against the
    header's Rows x Columns x frames; grey images only (colour would need GDCM's colour handling
    checked as well)."""
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in ("MONOCHROME1", "MONOCHROME2") or int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise LoadError(f"{path}: {what} with {photometric or 'no'} photometric interpretation: pydicom "
                        "has no decoder and GDCM is used here for grey images only")
    try:
        import gdcm
    except ImportError as exc:
        raise LoadError(f"{path}: {what}: pydicom has no decoder; install python-gdcm") from exc
    reader = gdcm.ImageReader()
    reader.SetFileName(path)
    if not reader.Read():
        raise LoadError(f"{path}: {what}: pydicom has no decoder and GDCM cannot read the file")
    image = reader.GetImage()
    fmt = image.GetPixelFormat()
    bits, signed = int(fmt.GetBitsAllocated()), bool(fmt.GetPixelRepresentation())
    if bits not in (8, 12, 16):
        raise LoadError(f"{path}: {what}: GDCM returned {bits}-bit samples")
    # GDCM unpacks 12-bit packed samples into 16-bit ones (its pixel format still says 12).
    dtype = np.dtype(("i" if signed else "u") + ("1" if bits == 8 else "2"))
    raw = image.GetBuffer()
    if isinstance(raw, str):  # python-gdcm hands the buffer over as a str of surrogate-escaped bytes
        raw = raw.encode("utf-8", "surrogateescape")
    rows, cols = int(ds.Rows), int(ds.Columns)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if len(raw) != rows * cols * frames * dtype.itemsize:
        raise LoadError(f"{path}: {what}: GDCM returned {len(raw)} bytes, the header's {rows} x {cols} x "
                        f"{frames} pixels need {rows * cols * frames * dtype.itemsize}")
    out = np.frombuffer(raw, dtype=dtype).reshape(frames, rows, cols).copy()
    return fix_stored_bits(out, min(int(ds.get("BitsStored", bits) or bits), bits), signed)
