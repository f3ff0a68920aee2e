"""Compressed frames decoded by ``imagecodecs`` where it is faster than pydicom's plugins.

Measured on this project's 512x512 CT slices (benchmarks/bench_codecs.py, RESULTS.md), per slice:
JPEG Lossless SV1 2.0 ms with libjpeg-turbo vs 5.8 ms through pydicom (pylibjpeg-libjpeg); JPEG-LS 4.1 ms
(CharLS) vs 5.5 ms (pyjpegls); RLE 0.6 ms vs 7 ms (pydicom's numpy RLE); JPEG 2000 about the same per
core (both are OpenJPEG), but imagecodecs' OpenJPEG is built with threads. A 120-frame YBR_FULL_422
ultrasound cine (JPEG baseline): 0.16 s with libjpeg-turbo's colour conversion vs 3.7 s in pydicom.

The output must equal pydicom's (``tests/io/test_fastcodecs.py`` compares every compressed file of
pydicom's and pydicom-data's test sets, and the dcm_qa transfer-syntax set against its references), so
:func:`decode_encapsulated` takes only the cases that were checked and returns None for every other one
(pydicom then decodes): colour only where the decoded samples are RGB by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from viewer.io.pixels import fix_stored_bits

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
J2K = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")
HTJ2K = ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")
RLE = "1.2.840.10008.1.2.5"

#: Transfer syntaxes this module decodes, with the library that does it (for reports and benchmarks).
FAST_SYNTAXES: dict[str, str] = {
    JPEG_BASELINE: "imagecodecs (libjpeg-turbo)", JPEG_EXTENDED: "imagecodecs (libjpeg-turbo)",
    JPEG_LOSSLESS: "imagecodecs (libjpeg-turbo)", JPEG_LOSSLESS_SV1: "imagecodecs (libjpeg-turbo)",
    **{u: "imagecodecs (CharLS)" for u in JPEG_LS}, **{u: "imagecodecs (OpenJPEG)" for u in J2K},
    HTJ2K[0]: "imagecodecs (OpenJPH)", HTJ2K[1]: "imagecodecs (OpenJPH)", HTJ2K[2]: "imagecodecs (OpenJPEG)",
    RLE: "imagecodecs (DICOM RLE)",
}

#: Threads OpenJPEG may use for one JPEG 2000 frame. 1 in the loader's decoder processes (one process
#: per core already); :func:`j2k_threads` raises it where one process decodes alone.
_J2K_THREADS = 1


@contextmanager
def j2k_threads(n: int) -> Iterator[None]:
    """Let OpenJPEG use ``n`` threads per JPEG 2000 frame inside the ``with`` block (this process)."""
    global _J2K_THREADS
    before, _J2K_THREADS = _J2K_THREADS, max(1, n)
    try:
        yield
    finally:
        _J2K_THREADS = before


def available() -> bool:
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        return False
    return True


def _decoder(uid: str, photometric: str, spp: int, bits: int) -> Callable[[bytes], Any] | None:
    """The imagecodecs function for frames of this kind, or None where it was not checked equal."""
    import imagecodecs

    if uid in (JPEG_BASELINE, JPEG_EXTENDED):
        # Lossy JPEG: grey, or YBR_FULL_422/YBR_FULL converted to RGB by libjpeg-turbo (pydicom's default
        # output for those); an "RGB" JPEG may or may not carry a colour transform: left to pydicom.
        if bits == 8 and (spp == 1 or photometric in ("YBR_FULL_422", "YBR_FULL")):
            return imagecodecs.jpeg8_decode
        return None
    if uid in (JPEG_LOSSLESS, JPEG_LOSSLESS_SV1):
        return imagecodecs.jpeg8_decode if spp == 1 else None
    if uid in JPEG_LS:
        return imagecodecs.jpegls_decode if spp == 1 or photometric == "RGB" else None
    if uid in HTJ2K[:2] and spp == 1:
        # Lossless HTJ2K: OpenJPH decodes it ~2x faster than OpenJPEG (reversible: the same values by
        # definition; the export's round trips check it). 4.203 may be lossy: OpenJPEG, like pydicom.
        return imagecodecs.htj2k_decode
    if uid in J2K + HTJ2K:
        if spp == 1 or photometric in ("RGB", "YBR_RCT", "YBR_ICT"):
            threads = _J2K_THREADS
            return lambda b: imagecodecs.jpeg2k_decode(b, numthreads=threads)
        return None
    if uid == RLE and bits in (8, 16, 32) and (spp == 1 or photometric == "RGB"):
        dtype = ">u1" if bits == 8 else f">u{bits // 8}"
        return lambda b: imagecodecs.dicomrle_decode(b, dtype)
    return None


def decode_encapsulated(ds: Any, uid: str) -> np.ndarray | None:
    """All frames of ``ds`` as pydicom 3 returns them (stored values; colour as RGB), or None when
    this kind of file is not one imagecodecs was checked for, imagecodecs is missing, or a frame does not
    decode to Rows x Columns (pydicom then decodes, and names the defect if there is one)."""
    if uid not in FAST_SYNTAXES or "PixelData" not in ds or not available():
        return None
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 0) or 0)
    if spp not in (1, 3) or bits not in (8, 16, 32) or photometric == "PALETTE COLOR" or (
            spp == 1 and not photometric.startswith("MONOCHROME")) or (bits == 32 and uid != RLE):
        return None
    decode = _decoder(uid, photometric, spp, bits)
    if decode is None:
        return None
    rows, cols = int(ds.Rows), int(ds.Columns)
    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    if spp == 3 and int(ds.get("PlanarConfiguration", 0) or 0) != 0 and uid != RLE:
        return None  # planar colour in a JPEG family stream: unusual; pydicom's handling stands
    from pydicom.encaps import generate_frames

    out: np.ndarray | None = None
    try:
        for k, data in enumerate(generate_frames(ds.PixelData, number_of_frames=nframes)):
            if k >= nframes:
                return None
            raw = decode(data)
            arr = _rle_layout(raw, rows, cols, spp, bits) if uid == RLE else np.asarray(raw)
            if arr is None:
                return None
            if arr.shape != ((rows, cols) if spp == 1 else (rows, cols, 3)):
                return None
            if out is None:
                out = np.empty((nframes, *arr.shape), dtype=arr.dtype)
            elif arr.dtype != out.dtype:
                return None
            out[k] = arr
    except Exception:  # noqa: BLE001 - any decoder complaint: pydicom decodes and names the defect
        return None
    if out is None or k != nframes - 1:
        return None
    if spp == 3:
        return out if out.dtype == np.uint8 or uid == RLE else None
    return _stored(out, int(ds.get("BitsStored", bits) or bits), int(ds.get("PixelRepresentation", 0)) == 1)


def _rle_layout(raw: Any, rows: int, cols: int, spp: int, bits: int) -> np.ndarray | None:
    """imagecodecs' RLE output (the byte segments in order, big-endian samples) as (rows, cols[, 3])."""
    size = bits // 8
    buf = np.frombuffer(raw, dtype=np.dtype(">u1" if size == 1 else f">u{size}"))
    if buf.size != rows * cols * spp:
        return None
    native = buf.astype(buf.dtype.newbyteorder("="))
    if spp == 1:
        return native.reshape(rows, cols)
    return np.ascontiguousarray(native.reshape(3, rows, cols).transpose(1, 2, 0))  # segments are planes


def _stored(arr: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Decoder samples -> pydicom's stored values: masked to BitsStored, two's complement when
    PixelRepresentation is 1 (a JPEG stream carries unsigned samples), unsigned when it is 0."""
    kind = "i" if signed else "u"
    if arr.dtype.kind != kind:
        arr = arr.view(np.dtype(f"{kind}{arr.dtype.itemsize}"))
    return fix_stored_bits(arr, bits_stored, signed)
