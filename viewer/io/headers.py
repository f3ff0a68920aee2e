"""Cheap, robust reading of the DICOM header attributes that indexing and series splitting need.

``read_header(path)`` never raises for a bad file: it returns a :class:`HeaderRecord` whose ``status`` is

- ``"image"``: a DICOM file with pixel data (loadable),
- ``"nonimage"``: valid DICOM without pixel data (SR, RT structure set, presentation state, DICOMDIR ...);
  not bad, but nothing to load; ``reason`` names what it is,
- ``"bad"``: not DICOM, empty, truncated, unreadable or inconsistent; ``reason`` says exactly why.

Speed: pydicom parses only the listed tags' values (``specific_tags``) and skips the pixel bytes
(``defer_size``); the pixel element's offset and length are still seen, which is how truncated files and
Rows/Columns that do not match the data are caught without reading the pixels.
A file can never hang the scan: the file object refuses to read once a per-file deadline has passed, and
anything that is not a regular file (FIFO, device) is refused before it is opened.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from viewer.core.records import HeaderRecord
from viewer.io.limits import plausible_position, plausible_rescale
from viewer.io.safeopen import NotRegularFile, open_regular

#: Seconds one file may take to parse before it is reported as bad ("timed out").
FILE_TIME_LIMIT_S = 5.0

#: Transfer syntaxes whose pixel data is stored natively (not encapsulated), so its length is predictable.
NATIVE_SYNTAXES = frozenset({
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian (length is of the inflated data)
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
})

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

# Tags parsed per file: everything grouping/splitting and the tree print needs, nothing more.
_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "StudyDate", "Modality", "StudyDescription", "SeriesDescription",
    "ImageType", "PatientName", "PatientID", "SliceThickness", "StudyInstanceUID", "SeriesInstanceUID",
    "SeriesNumber", "AcquisitionNumber", "InstanceNumber", "EchoNumbers", "TemporalPositionIdentifier",
    "ImagePositionPatient", "ImageOrientationPatient", "FrameOfReferenceUID", "SamplesPerPixel",
    "NumberOfFrames", "Rows", "Columns", "BitsAllocated", "PixelData", "FloatPixelData",
    "DoubleFloatPixelData", "SeriesDate", "PhotometricInterpretation",
    # For the loader (viewer.io.load), so that an indexed series is loaded without reading headers again.
    "RescaleSlope", "RescaleIntercept", "BitsStored", "PixelRepresentation",
    "WindowCenter", "WindowWidth", "WindowCenterWidthExplanation",
]
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


def _tag_numbers() -> dict[str, int]:
    from pydicom.datadict import tag_for_keyword

    return {kw: int(tag_for_keyword(kw) or 0) for kw in _TAGS}


_TAG: dict[str, int] = {}
_WANT: set[int] = set()
_PIXEL_SET = frozenset(_PIXEL_TAGS)
# Values longer than this stay on disk (pixel data); every attribute we read is far shorter.
_DEFER = 4096


#: Bytes of a file's start that :attr:`HeaderRecord.digest` covers (the header of every ordinary file).
IDENTITY_BYTES = 8 << 10  # measured: 64 KiB made an indexed re-open 6x slower, 8 KiB 2x (bench_identity.py)


def head_digest(f: BinaryIO) -> str:
    """Digest of the first :data:`IDENTITY_BYTES` of an open file (position left at 0)."""
    import hashlib

    f.seek(0)
    d = hashlib.blake2b(f.read(IDENTITY_BYTES), digest_size=16).hexdigest()
    f.seek(0)
    return d


def same_file(rec: HeaderRecord) -> bool:
    """True while the file at ``rec.path`` is still the one ``rec`` was read from: same size, mtime,
    ctime and header digest (one open and an 8 KiB read; no parsing)."""
    try:
        with open_regular(rec.path) as f:
            st = os.fstat(f.fileno())
            if (st.st_size, st.st_mtime_ns, st.st_ctime_ns) != (rec.size, rec.mtime_ns, rec.ctime_ns):
                return False
            return head_digest(f) == rec.digest
    except OSError:
        return False


class _Timeout(Exception):
    pass


class _DeadlineFile:
    """A read-only file whose ``read`` fails once ``deadline`` (time.monotonic) has passed.

    pydicom reads element by element, so this bounds the time any malformed file can cost.
    """

    __slots__ = ("_f", "_deadline", "name", "seek", "tell", "close")

    def __init__(self, f: BinaryIO, deadline: float, name: str) -> None:
        self._f = f
        self._deadline = deadline
        self.name = name
        self.seek = f.seek
        self.tell = f.tell
        self.close = f.close

    def read(self, size: int = -1) -> bytes:
        if time.monotonic() > self._deadline:
            raise _Timeout()
        return self._f.read(size)


def _text(ds: Any, keyword: str) -> str:
    """Attribute value as text ("" when absent or malformed), multi-values joined with a backslash.

    Fast path: ASCII values are decoded straight from the raw element bytes, skipping pydicom's value
    conversion (half the cost of a header read); anything else goes through pydicom, which applies the
    file's SpecificCharacterSet.
    """
    try:
        raw = ds._dict.get(_TAG[keyword]) if keyword in _TAG else None
        value = getattr(raw, "value", None)
        if type(value) is bytes and value.isascii() and _is_raw(raw):
            return value.decode("ascii").strip(" \x00")
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed value is treated as absent
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _is_raw(elem: Any) -> bool:
    return type(elem).__name__ == "RawDataElement" and elem.VR not in _BINARY_VRS


_BINARY_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "OB", "OW", "OF", "OD", "OL", "UN", "SQ", "AT"})


def _int(ds: Any, keyword: str, default: int = 0) -> int:
    try:
        raw = ds._dict.get(_TAG[keyword]) if keyword in _TAG else None
        value = getattr(raw, "value", None)
        # Implicit VR gives VR None: US/IS decided by the length and the known VR of these tags.
        if type(value) is bytes and type(raw).__name__ == "RawDataElement" and keyword in _US_TAGS \
                and len(value) == 2:
            return int.from_bytes(value, "little" if getattr(raw, "is_little_endian", True) else "big")
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else default
    except Exception:  # noqa: BLE001 - malformed IS/US: treated as absent
        return default


_US_TAGS = frozenset({"Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "BitsStored",
                      "PixelRepresentation"})


def _numbers(text: Callable[[str], str], keyword: str, n: int) -> str:
    """n floats backslash-joined, or "" when absent or malformed (Slicer treats those as 'no geometry')."""
    try:
        values = [float(v) for v in text(keyword).split("\\")]
    except ValueError:
        return ""
    if len(values) != n or any(v != v or v in (float("inf"), float("-inf")) for v in values):
        return ""
    return "\\".join(repr(v) for v in values)


def _sop_class_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name if uid else ""
    return name if name and name != uid else (uid or "unknown SOP class")


def _init_tags() -> None:
    if not _TAG:
        _TAG.update(_tag_numbers())
        _WANT.update(_TAG.values())
        _WANT.update({0x00020002, 0x00020010})
        _US_TAG_NUMBERS.update(_TAG[k] for k in _US_TAGS)


def walk_part10(data: bytes) -> tuple[dict[int, bytes], str, tuple[int, int] | None] | None:
    """The fast path's byte-level walk over a whole Part 10 file held in memory: (the raw values of the
    header tags by tag number, the transfer syntax, the pixel element's (value offset, length) or None when
    the walk reached the end without one), or None when the bytes are unusual (pydicom's business) or end
    inside an element. Sequences are skipped by their lengths and delimiters, not parsed."""
    _init_tags()
    if not isinstance(data, bytes):
        data = bytes(data)  # a bytearray's slices cannot be looked up in the VR sets
    try:
        return _fast_parse(data, len(data))
    except (_NeedMore, _Fallback, struct.error, UnicodeDecodeError):
        return None


def read_header(path: str, *, time_limit_s: float = FILE_TIME_LIMIT_S) -> HeaderRecord:
    """Read one file's header into a :class:`HeaderRecord`; never raises for a bad file.

    Parameters
    ----------
    path
        File to read. Symlinks are followed; the record keeps ``path`` as given.
    time_limit_s
        Seconds after which parsing gives up and the file is reported as bad.
    """
    _init_tags()
    rec = HeaderRecord(path=path)
    try:
        # Only regular files, decided on the open descriptor: a FIFO or device swapped in after a stat
        # must not block or stream forever.
        f = open_regular(path)
    except NotRegularFile as exc:
        rec.reason = str(exc)
        try:  # its stamp, so that the index remembers the refusal while the path stays as it is
            st = os.stat(path)
            rec.size, rec.mtime_ns, rec.ctime_ns = st.st_size, st.st_mtime_ns, st.st_ctime_ns
        except OSError:
            pass
        return rec
    except OSError as exc:
        rec.reason = f"cannot open: {exc.strerror or exc}"
        return rec
    try:
        st = os.fstat(f.fileno())
        rec.size, rec.mtime_ns, rec.ctime_ns = st.st_size, st.st_mtime_ns, st.st_ctime_ns
        rec.digest = head_digest(f)
        if st.st_size == 0:
            rec.reason = "empty file (0 bytes)"
            return rec
        fast = _fast_read(f, rec.size) if FAST_PATH else None
        if fast is not None and fast[2] is not None and fast[2][1] == _UNDEFINED:
            # Encapsulated pixel data: trust the fast path only when the file ends with the sequence
            # delimiter; otherwise pydicom walks the fragments and notices a truncation.
            f.seek(max(0, rec.size - 8))
            if f.read(8) != _SEQ_DELIM_TAIL:
                fast = None
        pixel: tuple[int | None, int | None] | None = None
        if fast is not None:
            try:
                _fast_fill(*fast, rec)
                pixel = fast[2]
            except _Fallback:
                fast = None
        if fast is None:
            deflated = _deflated_start(f)
            f.seek(0)
            fp = _DeadlineFile(f, time.monotonic() + time_limit_s, path)
            if deflated is not None:
                parsed = _parse_deflated(fp, deflated, rec)
                if parsed is None:
                    return rec
                ds, present = parsed
                pixel = _fill_from_dataset(ds, rec, (None, None) if present else None)
            else:
                ds = _parse(fp, rec, time_limit_s)
                if ds is None:
                    return rec
                pixel = _fill_from_dataset(ds, rec)
        if rec.status == "image" and pixel is not None:
            _check_pixels_stated(f, rec, pixel)
    except _Timeout:
        rec.status, rec.reason = "bad", f"timed out: parsing took over {time_limit_s:g} s"
    except Exception as exc:  # noqa: BLE001 - whatever a file does, it is this file's reason, not a crash
        rec.status, rec.reason = "bad", f"unreadable header: {type(exc).__name__}: {_short(exc)}"
    finally:
        f.close()
    return rec


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text[:40])


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _check_pixels_stated(f: BinaryIO, rec: HeaderRecord, pixel: tuple[int | None, int | None]) -> None:
    """What the header states about the pixels against what is there and against the budget: an image
    record that fails becomes bad with the reason (before anything decodes it)."""
    from viewer.io.limits import decoded_size_problem, encapsulated_problem

    problem = decoded_size_problem(rec.rows, rec.columns, rec.frames, rec.samples_per_pixel or 1,
                                   rec.bits_allocated or 16)
    tell, length = pixel
    if problem is None and length == _UNDEFINED and tell is not None \
            and rec.transfer_syntax != "1.2.840.10008.1.2.1.99":
        def read(pos: int, n: int) -> bytes:
            f.seek(pos)
            return f.read(n)

        problem = encapsulated_problem(read, tell, rec.frames, rec.rows, rec.columns)
    if problem is not None:
        rec.status, rec.reason = "bad", problem
        rec.pixel_offset = rec.pixel_length = -1


_DEFLATED = b"1.2.840.10008.1.2.1.99"
#: Inflated bytes of a deflated file that the header scan parses (headers, never pixels, live there).
_DEFLATE_HEAD = 64 << 20


def _deflated_start(f: BinaryIO) -> int | None:
    """Offset of the deflated data set when ``f`` is a Deflated Explicit VR Little Endian file with a
    standard meta group, else None."""
    f.seek(0)
    head = f.read(144)
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
        return None
    end = 144 + struct.unpack_from("<I", head, 140)[0]
    f.seek(0)
    meta = f.read(min(end, 1 << 16))
    i = meta.find(b"\x02\x00\x10\x00UI")  # (0002,0010) TransferSyntaxUID, explicit VR LE
    if i < 0 or i + 8 > len(meta):
        return None
    n = struct.unpack_from("<H", meta, i + 6)[0]
    return end if meta[i + 8:i + 8 + n].rstrip(b"\x00 ") == _DEFLATED else None


def _parse_deflated(fp: _DeadlineFile, start: int, rec: HeaderRecord) -> tuple[Any, bool] | None:
    """(data set, pixel data present) of a deflated file, parsed from at most its first 64 MiB inflated;
    the rest is inflated without being kept, only to check that the whole stream is no larger than the
    image it declares needs (a 2 MB deflate bomb inflates to GBs)."""
    import io
    import zlib

    from pydicom import dcmread

    from viewer.io.limits import decode_budget, inflated_size_problem

    fp.seek(start)
    z = zlib.decompressobj(-15)
    parts: list[bytes] = []
    got = 0
    chunk = b""
    while got < _DEFLATE_HEAD and not z.eof:
        chunk = z.unconsumed_tail or fp.read(1 << 20)
        if not chunk:
            break
        part = z.decompress(chunk, _DEFLATE_HEAD - got)
        parts.append(part)
        got += len(part)
    body = io.BytesIO(b"".join(parts))
    try:
        ds = dcmread(body, force=True, specific_tags=_TAGS, defer_size=_DEFER, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001
        rec.reason = f"invalid deflated DICOM data set: {type(exc).__name__}: {_short(exc)}"
        return None
    # stop_before_pixels leaves the stream at the pixel element's tag, when there is one.
    tag = body.read(4)
    group, elem = struct.unpack("<HH", tag) if len(tag) == 4 else (0, 0)
    if not z.eof:
        pixels = (_int(ds, "Rows") * _int(ds, "Columns") * max(1, _int(ds, "NumberOfFrames", 1))
                  * max(1, _int(ds, "SamplesPerPixel", 1)) * max(1, (_int(ds, "BitsAllocated", 16) + 7) // 8))
        limit = min(decode_budget(), pixels) + _DEFLATE_HEAD
        tail = [z.unconsumed_tail]

        def more() -> bytes:
            return tail.pop() if tail and tail[0] else fp.read(1 << 20)

        problem = inflated_size_problem(more, limit, z, got)
        if problem is not None:
            rec.reason = f"{problem}: its header declares {pixels} bytes of pixels"
            return None
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(_DEFLATED.decode())
    return ds, (group << 16 | elem) in _PIXEL_SET


def _parse(fp: _DeadlineFile, rec: HeaderRecord, limit: float) -> Any:
    """pydicom dataset of ``fp`` or None with ``rec.reason`` set."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        return dcmread(fp, specific_tags=_TAGS, defer_size=_DEFER)
    except _Timeout:
        rec.reason = f"timed out: parsing took over {limit:g} s"
        return None
    except InvalidDicomError:
        pass  # no preamble/DICM: maybe a raw implicit-VR dataset (old ACR-NEMA style), tried below
    except EOFError:
        rec.reason = f"truncated at byte {rec.size}: the file ends inside a header element"
        return None
    except Exception as exc:  # noqa: BLE001 - any parser failure is this file's defect
        rec.reason = f"invalid DICOM header: {type(exc).__name__}: {exc}"[:300]
        return None
    try:
        fp.seek(0)
        ds = dcmread(fp, specific_tags=_TAGS, defer_size=_DEFER, force=True)
    except _Timeout:
        rec.reason = f"timed out: parsing took over {limit:g} s"
        return None
    except Exception:  # noqa: BLE001
        ds = None
    # Random bytes sometimes "parse" under force=True into junk elements; a real dataset has at least
    # an identifying attribute or image dimensions.
    if ds is None or not (_text(ds, "SOPClassUID") or (_int(ds, "Rows") and _int(ds, "Columns"))
                          or _text(ds, "SeriesInstanceUID")):
        rec.reason = "not DICOM: no DICM preamble and not parseable as implicit-VR DICOM"
        return None
    return ds


def _fill_from_dataset(ds: Any, rec: HeaderRecord, pixel: tuple[int | None, int | None] | None = None
                       ) -> tuple[int | None, int | None] | None:
    """Fill ``rec`` from a pydicom data set; returns the pixel element's (value offset, length) or None.
    ``pixel`` is given where the data set was read without its pixel element (deflated files)."""
    meta = getattr(ds, "file_meta", None)
    if pixel is None:
        raw = None
        for tag in _PIXEL_TAGS:
            raw = ds._dict.get(tag)  # the raw (deferred) element: its offset and length, value unread
            if raw is not None:
                break
        pixel = None if raw is None else (getattr(raw, "value_tell", None), getattr(raw, "length", None))
    _fill(rec, lambda kw: _text(ds, kw), lambda kw, d=0: _int(ds, kw, d),
          _text(meta, "TransferSyntaxUID") if meta is not None else "",
          _text(meta, "MediaStorageSOPClassUID") if meta is not None else "", pixel)
    return pixel


def _fill(rec: HeaderRecord, text: Callable[[str], str], integer: Callable[..., int], transfer_syntax: str,
          media_sop_class: str, pixel: tuple[int | None, int | None] | None) -> None:
    """Fill ``rec`` from attribute getters and decide its status; ``pixel`` is the pixel element's
    (value offset, length) or None when the file has none."""
    rec.transfer_syntax = transfer_syntax
    rec.sop_class_uid = text("SOPClassUID") or media_sop_class
    for attr, kw in (("patient_id", "PatientID"), ("patient_name", "PatientName"),
                     ("study_uid", "StudyInstanceUID"), ("study_date", "StudyDate"),
                     ("study_description", "StudyDescription"), ("series_uid", "SeriesInstanceUID"),
                     ("series_number", "SeriesNumber"), ("series_date", "SeriesDate"),
                     ("series_description", "SeriesDescription"), ("modality", "Modality"),
                     ("sop_uid", "SOPInstanceUID"), ("instance_number", "InstanceNumber"),
                     ("frame_of_reference_uid", "FrameOfReferenceUID"), ("image_type", "ImageType"),
                     ("acquisition_number", "AcquisitionNumber"), ("echo_number", "EchoNumbers"),
                     ("temporal_position", "TemporalPositionIdentifier"), ("window_center", "WindowCenter"),
                     ("window_width", "WindowWidth"), ("window_explanation", "WindowCenterWidthExplanation")):
        setattr(rec, attr, text(kw))
    rec.rows, rec.columns = integer("Rows"), integer("Columns")
    rec.frames = max(1, integer("NumberOfFrames", 1))
    rec.orientation = _numbers(text, "ImageOrientationPatient", 6)
    rec.position = _numbers(text, "ImagePositionPatient", 3)
    if rec.position and not plausible_position(float(v) for v in rec.position.split("\\")):
        rec.position = ""  # 1e308 mm is no position (and overflowed the split); treated as absent
    rec.rescale_slope = _numbers(text, "RescaleSlope", 1)
    rec.rescale_intercept = _numbers(text, "RescaleIntercept", 1)
    rec.bits_allocated = integer("BitsAllocated", 0)
    rec.bits_stored = integer("BitsStored", 0)
    rec.pixel_representation = integer("PixelRepresentation", 0)
    rec.samples_per_pixel = integer("SamplesPerPixel", 0)

    if pixel is None:
        if rec.rows and rec.columns and transfer_syntax and not transfer_syntax.startswith("1.2.840.10008."):
            # A vendor's own compression (e.g. Philips 1.3.46.670589.33.1.4.1) keeps its pixels in a
            # private element: not a truncated file.
            rec.reason = f"unsupported compression (private transfer syntax UID {transfer_syntax})"
        elif rec.sop_class_uid == DICOMDIR_SOP_CLASS:
            rec.status, rec.reason = "nonimage", "DICOMDIR (media directory): lists other files"
        elif rec.rows and rec.columns:
            rec.reason = (f"no PixelData although Rows/Columns are set (file ends at byte {rec.size}; "
                          "truncated or pixel data removed)")
        elif not rec.sop_class_uid:
            # Nothing says what this object is: a header cut short, or junk after a DICM preamble.
            rec.reason = (f"no SOPClassUID, image attributes or PixelData (file ends at byte {rec.size}; "
                          "truncated or not a DICOM object)")
        elif "Image Storage" in (name := _sop_class_name(rec.sop_class_uid)):
            rec.reason = (f"no PixelData in a {name} file (file ends at byte {rec.size}; truncated or pixel "
                          "data removed)")
        else:
            rec.status, rec.reason = "nonimage", f"no pixel data: {name}"
        return
    if not (rec.rows and rec.columns):
        rec.reason = "PixelData present but Rows/Columns missing or zero"
        return
    for kw, value in (("RescaleSlope", rec.rescale_slope), ("RescaleIntercept", rec.rescale_intercept)):
        raw = text(kw)
        if raw and (not value or not plausible_rescale(float(value), 0.0)):
            # Present but NaN, infinite, absurd or not a number: every value of the image would be wrong.
            rec.reason = (f"{kw} {_printable(raw)!r} is not a finite number of a sane size (|v| <= 1e10); "
                          "values cannot be computed")
            return
    tell, length = pixel
    # A deflated file is parsed from an inflated copy, so offsets say nothing about the file's size.
    if rec.transfer_syntax == "1.2.840.10008.1.2.1.99":
        rec.status = "image"
        return
    if length is not None and tell is not None and length != 0xFFFFFFFF:
        if tell + length > rec.size:
            rec.reason = (f"truncated at byte {rec.size}: PixelData needs {length} bytes from offset {tell}")
            return
        if rec.transfer_syntax in NATIVE_SYNTAXES:
            rec.pixel_offset, rec.pixel_length = tell, length
            bits = integer("BitsAllocated", 16)
            spp = max(1, integer("SamplesPerPixel", 1))
            pixels = rec.rows * rec.columns * rec.frames * spp
            if spp == 3 and text("PhotometricInterpretation") == "YBR_FULL_422":
                pixels = pixels * 2 // 3  # PS3.3 C.7.6.3.1.2: two chroma samples per pair of pixels
            expected = ((pixels + 7) // 8 if bits == 1 else (pixels * 3 + 1) // 2 if bits == 12
                        else pixels * ((bits + 7) // 8))  # 12: two samples in three bytes (ACR-NEMA)
            # PS3.5 7.1: values are padded to even length, so one extra byte is normal.
            if length < expected:
                rec.pixel_offset = rec.pixel_length = -1
                rec.reason = (f"PixelData is {length} bytes but Rows x Columns x frames x samples "
                              f"({rec.rows} x {rec.columns} x {rec.frames} x {spp}, {bits} bits) "
                              f"needs {expected}")
                return
    rec.status = "image"


# -- fast path ---------------------------------------------------------------------------------------------
# The common file (preamble + explicit-VR LE meta + implicit or explicit VR LE dataset) is walked at the
# byte level: ~10x cheaper than building a pydicom Dataset. Anything unusual (big endian, deflate, bad VR
# bytes, non-ASCII text, elements out of order, a header that runs out) returns None and the file goes
# through pydicom, which stays the authority on odd and broken files.

#: Explicit-VR VRs with a 2-byte length (PS3.5 Table 7.1-2); the rest of the known ones have a 4-byte length.
_SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
                        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})
_LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UR", b"UT", b"UN", b"SV", b"UV"})
_UNDEFINED = 0xFFFFFFFF
# Headers larger than this (huge enhanced multi-frame functional groups) go through pydicom, which
# streams instead of holding the buffer.
_MAX_FAST_HEADER = 16 << 20
#: Set False to send every file through pydicom (tests compare both paths).
FAST_PATH = True
_SEQ_DELIM_TAIL = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_US_TAG_NUMBERS: set[int] = set()


class _NeedMore(Exception):
    pass


class _Fallback(Exception):
    pass


def _fast_read(f: BinaryIO, size: int) -> tuple[dict[int, bytes], str, tuple[int, int] | None] | None:
    """(values by tag, transfer syntax, pixel (offset, length) or None), or None to use pydicom."""
    chunk = 16384
    while True:
        f.seek(0)
        buf = f.read(min(chunk, size))
        try:
            return _fast_parse(buf, size)
        except _NeedMore:
            if chunk >= size or chunk >= _MAX_FAST_HEADER:
                return None  # the header runs past the end of the file: pydicom says where and how
            chunk *= 4
        except (_Fallback, struct.error, UnicodeDecodeError):
            return None


def _fast_parse(buf: bytes, size: int) -> tuple[dict[int, bytes], str, tuple[int, int] | None]:
    if len(buf) < 144 or buf[128:132] != b"DICM":
        raise _Fallback
    want = _WANT
    out: dict[int, bytes] = {}
    pos, ts, prev = 132, "", -1
    n = len(buf)
    unpack = struct.unpack_from
    explicit = True
    in_meta = True
    while True:
        if pos + 8 > n:
            if pos == n == size:
                return out, ts, None  # clean end of file, no pixel data
            raise _NeedMore
        group, elem = unpack("<HH", buf, pos)
        tag = group << 16 | elem
        if in_meta and group != 2:
            in_meta = False
            ts = out.get(0x00020010, b"").decode("ascii").strip(" \x00")
            if ts == "1.2.840.10008.1.2":
                explicit = False
            elif ts in ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99") or not ts:
                raise _Fallback  # big endian / deflate / no transfer syntax: pydicom handles them
            prev = -1
        if tag <= prev:
            raise _Fallback
        prev = tag
        # _element_header inlined for the common VRs (this loop runs for every element of every file).
        if not explicit:
            vr, length, vpos = b"", unpack("<I", buf, pos + 4)[0], pos + 8
        elif (vr := buf[pos + 4:pos + 6]) in _SHORT_VRS:
            length, vpos = unpack("<H", buf, pos + 6)[0], pos + 8
        else:
            vr, length, vpos = _element_header(buf, pos, explicit)
        if tag in _PIXEL_SET:
            return out, ts, (vpos, length)
        if length == _UNDEFINED:
            # A sequence (or UN of undefined length, PS3.5 6.2.2): its content is implicit VR when
            # the dataset is, or when the VR is UN.
            pos = _skip_sequence(buf, vpos, explicit and vr != b"UN")
            continue
        end = vpos + length
        if tag in want:
            if end > n:
                raise _NeedMore
            out[tag] = buf[vpos:end]
        pos = end


def _element_header(buf: bytes, pos: int, explicit: bool) -> tuple[bytes, int, int]:
    """(VR, value length, value offset) of the data element whose tag is at ``pos`` (PS3.5 7.1).

    Explicit VR: OB/OW/SQ/UN/UT/... carry a 4-byte length after 2 reserved bytes, the rest a 2-byte
    length; implicit VR: always a 4-byte length and no VR (returned as b"").
    """
    if not explicit:
        return b"", struct.unpack_from("<I", buf, pos + 4)[0], pos + 8
    vr = buf[pos + 4:pos + 6]
    if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
        raise _Fallback
    if vr in _LONG_VRS:
        if pos + 12 > len(buf):
            raise _NeedMore
        return vr, struct.unpack_from("<I", buf, pos + 8)[0], pos + 12
    return vr, struct.unpack_from("<H", buf, pos + 6)[0], pos + 8


def _skip_sequence(buf: bytes, pos: int, explicit: bool) -> int:
    """Offset just past the sequence delimiter of an undefined-length sequence starting at ``pos``.

    Iterative, with an explicit stack of the open sequences' encodings: a file can nest sequences
    thousands deep, which a recursive walk would answer with RecursionError.
    """
    n = len(buf)
    unpack = struct.unpack_from
    # Each entry: the explicit-VR flag of an open sequence; inside_item: whether we are in an item of
    # undefined length of the innermost sequence (else between items).
    stack = [explicit]
    inside_item = [False]
    while True:
        if pos + 8 > n:
            raise _NeedMore
        tag = unpack("<HH", buf, pos)
        if not inside_item[-1]:
            length = unpack("<I", buf, pos + 4)[0]
            pos += 8
            if tag == (0xFFFE, 0xE0DD):
                stack.pop()
                inside_item.pop()
                if not stack:
                    return pos
                continue
            if tag != (0xFFFE, 0xE000):
                raise _Fallback
            if length != _UNDEFINED:
                pos += length
            else:
                inside_item[-1] = True
            continue
        if tag == (0xFFFE, 0xE00D):
            pos += 8
            inside_item[-1] = False
            continue
        vr, length, pos = _element_header(buf, pos, stack[-1])
        if length == _UNDEFINED:
            stack.append(stack[-1] and vr != b"UN")
            inside_item.append(False)
        else:
            pos += length


def _fast_fill(values: dict[int, bytes], ts: str, pixel: tuple[int, int] | None, rec: HeaderRecord) -> None:
    def text(kw: str) -> str:
        b = values.get(_TAG[kw])
        if not b:
            return ""
        if not b.isascii():
            raise _Fallback  # the file's SpecificCharacterSet decides: pydicom applies it
        return b.decode("ascii").strip(" \x00")

    def integer(kw: str, default: int = 0) -> int:
        tag = _TAG[kw]
        b = values.get(tag)
        if not b:
            return default
        if tag in _US_TAG_NUMBERS:
            return int.from_bytes(b[:2], "little") if len(b) >= 2 else default
        try:
            return int(text(kw))
        except ValueError:
            return default

    media = values.get(0x00020002, b"").decode("ascii", "replace").strip(" \x00")
    _fill(rec, text, integer, ts, media, pixel)
