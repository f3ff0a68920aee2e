"""Reading one DICOM file for the loader: byte-level fast paths and the pydicom reads behind them.

The byte-level paths (:func:`fast_header`, :func:`read_pixels_fast`) cover the common case of a series
loaded slice by slice: single-frame, little-endian files whose pixel data is the last element. They read
a few tags and the pixel bytes without building a pydicom Dataset, and return None/False whenever a file
is not exactly as expected, so that the caller falls back to pydicom (:func:`read_header_dataset`,
:func:`read_full_dataset`), which stays the authority on odd and broken files.

:mod:`viewer.io.headers` walks headers element by element for the scanner; these paths do less on
purpose: the loader already knows from the series' first file (parsed by pydicom) which tags exist and
where the pixels are, so a tag search in the first 16 KiB is enough per further slice.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from viewer.io.errors import LoadError

#: (7FE0,0010) PixelData as little-endian (group, element) bytes.
PIXEL_TAG = b"\xe0\x7f\x10\x00"
# Encapsulated pixel data: PixelData, VR OB, 2 reserved bytes, undefined length (PS3.5 A.4).
_ENCAP_PIXEL = PIXEL_TAG + b"OB\x00\x00\xff\xff\xff\xff"
#: Fast-path tags: (group, element) little-endian bytes, explicit VR, value kind.
FAST_TAGS = {
    "position": (b"\x20\x00\x32\x00", b"DS"),
    "intercept": (b"\x28\x00\x52\x10", b"DS"),
    "slope": (b"\x28\x00\x53\x10", b"DS"),
    "sop_uid": (b"\x08\x00\x18\x00", b"UI"),
    "instance": (b"\x20\x00\x13\x00", b"IS"),
}
# The keywords of FAST_TAGS, for asking a pydicom Dataset which of them it has.
_FAST_KEYWORDS = {"position": "ImagePositionPatient", "intercept": "RescaleIntercept",
                  "slope": "RescaleSlope", "sop_uid": "SOPInstanceUID", "instance": "InstanceNumber"}
#: Bytes read for a fast header: the five tags of a single-frame file come well before this.
HEAD_BYTES = 16384
#: True where os.pread/os.preadv exist (not Windows): pixels then come in one scatter read.
HAVE_PREAD = hasattr(os, "pread") and hasattr(os, "preadv")
#: os.open flag: Windows would otherwise translate newlines.
O_BINARY = getattr(os, "O_BINARY", 0)


# -- pydicom reads (the fallback of the byte-level paths) -------------------------------------------
def dcmread(path: str, **kwargs: Any) -> Any:
    """dcmread; files without the 128-byte preamble + DICM (old ACR-NEMA style, some exports) are read
    with force=True when they still look like an image dataset."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, **kwargs)
    except InvalidDicomError:
        ds = pydicom.dcmread(path, force=True, **kwargs)
        if "Rows" not in ds or "Columns" not in ds:
            raise
        if "TransferSyntaxUID" not in ds.file_meta:
            from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

            ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if ds.is_implicit_VR
                                              else ExplicitVRLittleEndian)
        return ds


def read_header_dataset(path: str) -> Any:
    """The data set of ``path`` without its pixel data; :class:`LoadError` when it is not DICOM."""
    from pydicom.errors import InvalidDicomError

    try:
        return dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, struct.error, KeyError, TypeError,
            AttributeError) as exc:
        raise LoadError(f"{path}: not readable as DICOM: {exc}") from exc


def read_full_dataset(path: str) -> Any:
    """The whole data set of ``path`` (pixels included); :class:`LoadError` when it is unreadable."""
    try:
        return dcmread(path)
    except Exception as exc:  # noqa: BLE001
        raise LoadError(f"{path}: not readable as DICOM: {exc}") from exc


# -- byte-level paths --------------------------------------------------------------------------------
def fast_tags_present(ds: Any) -> dict[str, bool]:
    """Which :data:`FAST_TAGS` the (pydicom) data set ``ds`` holds, by key."""
    return {key: kw in ds for key, kw in _FAST_KEYWORDS.items()}


@dataclass
class FastHeader:
    """What :func:`fast_header` reads of a file (defaults: the tag is absent)."""

    position: np.ndarray               # ImagePositionPatient, LPS mm
    slope: float = 1.0
    intercept: float = 0.0
    sop_uid: str = ""
    instance: int = 0
    fast: bool = False                 # native 16-bit pixels readable straight from the file (read_pixels_fast)


def fast_value(head: bytes, end: int, tag: bytes, vr: bytes, explicit: bool) -> bytes | None:
    """Value bytes of a tag found exactly once in head[:end], or None (absent, ambiguous, malformed)."""
    i = head.find(tag, 132, end)
    if i < 0 or head.find(tag, i + 1, end) >= 0:
        return None
    if explicit:
        if head[i + 4:i + 6] != vr:
            return None
        (n,) = struct.unpack_from("<H", head, i + 6)
        start = i + 8
    else:
        (n,) = struct.unpack_from("<I", head, i + 4)
        start = i + 8
        if n > 256:
            return None
    if start + n > end:
        return None
    return head[start:start + n]


def fast_header(path: str, nbytes: int | None, explicit: bool, has: dict[str, bool]) -> FastHeader | None:
    """Position, rescale and UIDs of an uncompressed single-frame file from its raw bytes.

    Returns None whenever anything is not exactly as expected (the caller then uses pydicom): the
    pixel data must be the last element and each tag must occur once in the header. Which tags are
    present is taken from the first file, which pydicom parsed fully and which was checked to give the
    same values on this path.
    """
    try:
        # os-level calls: no file objects per file (this runs once per slice before any pixel).
        fd = os.open(path, os.O_RDONLY | O_BINARY)
        try:
            size = os.fstat(fd).st_size
            head = os.read(fd, HEAD_BYTES)
        finally:
            os.close(fd)
    except OSError:
        return None
    if nbytes is None:
        # Encapsulated pixel data: (7FE0,0010) OB with undefined length ends the header.
        end = head.find(_ENCAP_PIXEL, 132)
    else:
        end = min(len(head), size - nbytes - (12 if explicit else 8))
    if end <= 132 or head[128:132] != b"DICM":
        return None
    vals: dict[str, bytes | None] = {}
    for key, (tag, vr) in FAST_TAGS.items():
        v = fast_value(head, end, tag, vr, explicit)
        if has[key] != (v is not None):
            return None
        vals[key] = v
    try:
        pos = np.array([float(x) for x in vals["position"].split(b"\\")])  # type: ignore[union-attr]
        if pos.shape != (3,):
            return None
        item = FastHeader(pos)
        if vals["slope"] is not None:
            item.slope = float(vals["slope"].strip(b" \x00"))
        if vals["intercept"] is not None:
            item.intercept = float(vals["intercept"].strip(b" \x00"))
        if vals["sop_uid"] is not None:
            item.sop_uid = vals["sop_uid"].rstrip(b" \x00").decode("ascii")
        if vals["instance"] is not None and vals["instance"].strip(b" \x00"):
            item.instance = int(vals["instance"].strip(b" \x00"))
    except (ValueError, UnicodeDecodeError):
        return None
    item.fast = nbytes is not None
    return item


def read_pixels_fast(path: str, out: np.ndarray, explicit: bool, offset: int = -1,
                      stamp: tuple[int, int] | None = None) -> bool:
    """Read the stored pixels of a native 16-bit file straight into ``out`` (rows, cols).

    ``offset`` is the PixelData value offset recorded by the index (-1: the pixel data must be the last
    element); ``stamp`` the (size, mtime_ns) that record was made from. False when the file is not as
    expected (changed since it was indexed, or the element header at the offset is not PixelData of
    exactly ``out.nbytes``): the caller then decodes the file the slow way.
    """
    nbytes = out.nbytes
    hdr = 12 if explicit else 8
    if not HAVE_PREAD:
        return read_pixels_portable(path, out, explicit, offset, stamp)
    try:
        fd = os.open(path, os.O_RDONLY | O_BINARY)
        try:
            start = _pixel_element_start(os.fstat(fd), nbytes, hdr, offset, stamp)
            if start is None:
                return False
            # One call reads the element header and the pixels (scatter read); the header is checked
            # after: on a mismatch the slice is overwritten by the slow path anyway.
            el = bytearray(hdr)
            got = os.preadv(fd, [el, out.data.cast("B")], start)
            return got == hdr + nbytes and pixel_element_ok(bytes(el), hdr, nbytes, explicit)
        finally:
            os.close(fd)
    except OSError:
        return False


def _pixel_element_start(st: os.stat_result, nbytes: int, hdr: int, offset: int,
                         stamp: tuple[int, int] | None) -> int | None:
    """Byte offset of the PixelData element header, or None when the file is not the one recorded
    (``stamp`` = (size, mtime_ns)) or the element would not fit in it."""
    if stamp is not None and (st.st_size, st.st_mtime_ns) != stamp:
        return None
    start = offset - hdr if offset >= 0 else st.st_size - nbytes - hdr
    if start < 132 or start + hdr + nbytes > st.st_size:
        return None
    return start


def pixel_element_ok(el: bytes, hdr: int, nbytes: int, explicit: bool) -> bool:
    """``el`` is a PixelData element header (PS3.5 7.1: tag, [VR OW/OB + 2 reserved,] 4-byte length)
    whose length is ``nbytes``."""
    if len(el) != hdr or el[:4] != PIXEL_TAG or struct.unpack_from("<I", el, hdr - 4)[0] != nbytes:
        return False
    return not explicit or el[4:6] in (b"OW", b"OB")


def read_pixels_portable(path: str, out: np.ndarray, explicit: bool, offset: int = -1,
                          stamp: tuple[int, int] | None = None) -> bool:
    """:func:`read_pixels_fast` with file objects, for platforms without os.pread/preadv (Windows)."""
    nbytes = out.nbytes
    hdr = 12 if explicit else 8
    try:
        with open(path, "rb") as fh:
            start = _pixel_element_start(os.fstat(fh.fileno()), nbytes, hdr, offset, stamp)
            if start is None:
                return False
            fh.seek(start)
            if not pixel_element_ok(fh.read(hdr), hdr, nbytes, explicit):
                return False
            return fh.readinto(out.data.cast("B")) == nbytes
    except OSError:
        return False
