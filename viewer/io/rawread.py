"""Reading one DICOM file for the loader: the pydicom reads, and native pixels read at a known offset.

:func:`read_pixels_fast` covers the common case of a series loaded slice by slice: native 16-bit pixels
read straight into the volume at the PixelData offset that the file's header record gives
(:func:`viewer.io.headers.read_header`, the project's one byte-level header reader), after checking the
element header there; it returns False whenever the file is not exactly as recorded, so that the caller
decodes it through pydicom (:func:`read_full_dataset`), which stays the authority on odd and broken files.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import numpy as np

from viewer.io.errors import LoadError

#: (7FE0,0010) PixelData as little-endian (group, element) bytes.
PIXEL_TAG = b"\xe0\x7f\x10\x00"
#: True where os.pread/os.preadv exist (not Windows): pixels then come in one scatter read.
HAVE_PREAD = hasattr(os, "pread") and hasattr(os, "preadv")
#: os.open flag: Windows would otherwise translate newlines.
O_BINARY = getattr(os, "O_BINARY", 0)


# -- pydicom reads (the authority behind the byte-level pixel read) -------------------------------------------
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


# -- byte-level pixel reads ---------------------------------------------------------------------------
def read_pixels_fast(path: str, out: np.ndarray, explicit: bool, offset: int,
                      stamp: tuple[int, int] | None = None) -> bool:
    """Read the stored pixels of a native 16-bit file straight into ``out`` (rows, cols).

    ``offset`` is the PixelData value offset of the file's header record; ``stamp`` the (size, mtime_ns)
    that record was made from. False when the file is not as
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
    start = offset - hdr
    if start < 132 or start + hdr + nbytes > st.st_size:
        return None
    return start


def pixel_element_ok(el: bytes, hdr: int, nbytes: int, explicit: bool) -> bool:
    """``el`` is a PixelData element header (PS3.5 7.1: tag, [VR OW/OB + 2 reserved,] 4-byte length)
    whose length is ``nbytes``."""
    if len(el) != hdr or el[:4] != PIXEL_TAG or struct.unpack_from("<I", el, hdr - 4)[0] != nbytes:
        return False
    return not explicit or el[4:6] in (b"OW", b"OB")


def read_pixels_portable(path: str, out: np.ndarray, explicit: bool, offset: int,
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
