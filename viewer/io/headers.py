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
import stat
import time
from dataclasses import dataclass, fields
from typing import Any, BinaryIO

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
]
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


def _tag_numbers() -> dict[str, int]:
    from pydicom.datadict import tag_for_keyword

    return {kw: int(tag_for_keyword(kw)) for kw in _TAGS}


_TAG: dict[str, int] = {}
# Values longer than this stay on disk (pixel data); every attribute we read is far shorter.
_DEFER = 4096


@dataclass(slots=True)
class HeaderRecord:
    """What the scanner keeps of one file (plain values; one row of the SQLite index).

    ``orientation`` is ImageOrientationPatient (6 direction cosines, LPS) and ``position`` is
    ImagePositionPatient (LPS mm of the first voxel centre), both as backslash-joined text ("" when
    absent) so the record is hashable and stores as-is. ``frames`` is NumberOfFrames (1 when absent).
    """

    path: str
    size: int = 0
    mtime_ns: int = 0
    status: str = "bad"
    reason: str = ""
    patient_id: str = ""
    patient_name: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    series_uid: str = ""
    series_number: str = ""
    series_date: str = ""
    series_description: str = ""
    modality: str = ""
    sop_class_uid: str = ""
    sop_uid: str = ""
    instance_number: str = ""
    frame_of_reference_uid: str = ""
    rows: int = 0
    columns: int = 0
    frames: int = 1
    orientation: str = ""
    position: str = ""
    image_type: str = ""
    acquisition_number: str = ""
    echo_number: str = ""
    temporal_position: str = ""
    transfer_syntax: str = ""

    def floats(self, name: str) -> tuple[float, ...] | None:
        """``orientation`` or ``position`` as floats; None when absent or malformed."""
        text = getattr(self, name)
        if not text:
            return None
        try:
            return tuple(float(v) for v in text.split("\\"))
        except ValueError:
            return None


#: Column names, in order, of a HeaderRecord (the index stores exactly these).
RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(HeaderRecord))


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
            return int.from_bytes(value, "little" if raw.is_little_endian else "big")
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else default
    except Exception:  # noqa: BLE001 - malformed IS/US: treated as absent
        return default


_US_TAGS = frozenset({"Rows", "Columns", "BitsAllocated", "SamplesPerPixel"})


def _numbers(ds: Any, keyword: str, n: int) -> str:
    """n floats backslash-joined, or "" when absent or malformed (Slicer treats those as 'no geometry')."""
    try:
        values = [float(v) for v in _text(ds, keyword).split("\\")]
    except ValueError:
        return ""
    if len(values) != n or any(v != v or v in (float("inf"), float("-inf")) for v in values):
        return ""
    return "\\".join(repr(v) for v in values)


def _sop_class_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name if uid else ""
    return name if name and name != uid else (uid or "unknown SOP class")


def read_header(path: str, *, time_limit_s: float = FILE_TIME_LIMIT_S) -> HeaderRecord:
    """Read one file's header into a :class:`HeaderRecord`; never raises for a bad file.

    Parameters
    ----------
    path
        File to read. Symlinks are followed; the record keeps ``path`` as given.
    time_limit_s
        Seconds after which parsing gives up and the file is reported as bad.
    """
    if not _TAG:
        _TAG.update(_tag_numbers())
    rec = HeaderRecord(path=path)
    try:
        st = os.stat(path)
    except OSError as exc:
        rec.reason = f"cannot open: {exc.strerror or exc}"
        return rec
    rec.size, rec.mtime_ns = st.st_size, st.st_mtime_ns
    if not stat.S_ISREG(st.st_mode):
        rec.reason = "not a regular file"
        return rec
    if st.st_size == 0:
        rec.reason = "empty file (0 bytes)"
        return rec
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed in finally
    except OSError as exc:
        rec.reason = f"cannot open: {exc.strerror or exc}"
        return rec
    try:
        ds = _parse(_DeadlineFile(f, time.monotonic() + time_limit_s, path), rec)
        if ds is not None:
            _fill(ds, rec)
    finally:
        f.close()
    return rec


def _parse(fp: _DeadlineFile, rec: HeaderRecord) -> Any:
    """pydicom dataset of ``fp`` or None with ``rec.reason`` set."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        return dcmread(fp, specific_tags=_TAGS, defer_size=_DEFER)
    except _Timeout:
        rec.reason = f"timed out: parsing took over {FILE_TIME_LIMIT_S:g} s"
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
        rec.reason = f"timed out: parsing took over {FILE_TIME_LIMIT_S:g} s"
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


def _fill(ds: Any, rec: HeaderRecord) -> None:
    meta = getattr(ds, "file_meta", None)
    rec.transfer_syntax = _text(meta, "TransferSyntaxUID") if meta is not None else ""
    rec.sop_class_uid = _text(ds, "SOPClassUID") or (_text(meta, "MediaStorageSOPClassUID") if meta else "")
    for attr, kw in (("patient_id", "PatientID"), ("patient_name", "PatientName"),
                     ("study_uid", "StudyInstanceUID"), ("study_date", "StudyDate"),
                     ("study_description", "StudyDescription"), ("series_uid", "SeriesInstanceUID"),
                     ("series_number", "SeriesNumber"), ("series_date", "SeriesDate"),
                     ("series_description", "SeriesDescription"), ("modality", "Modality"),
                     ("sop_uid", "SOPInstanceUID"), ("instance_number", "InstanceNumber"),
                     ("frame_of_reference_uid", "FrameOfReferenceUID"), ("image_type", "ImageType"),
                     ("acquisition_number", "AcquisitionNumber"), ("echo_number", "EchoNumbers"),
                     ("temporal_position", "TemporalPositionIdentifier")):
        setattr(rec, attr, _text(ds, kw))
    rec.rows, rec.columns = _int(ds, "Rows"), _int(ds, "Columns")
    rec.frames = max(1, _int(ds, "NumberOfFrames", 1))
    rec.orientation = _numbers(ds, "ImageOrientationPatient", 6)
    rec.position = _numbers(ds, "ImagePositionPatient", 3)

    raw = None
    for tag in _PIXEL_TAGS:
        raw = ds._dict.get(tag)  # the raw (deferred) element: its offset and length, value unread
        if raw is not None:
            break
    if raw is None:
        if rec.sop_class_uid == DICOMDIR_SOP_CLASS:
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
    length = getattr(raw, "length", None)
    tell = getattr(raw, "value_tell", None)
    # A deflated file is parsed from an inflated copy, so offsets say nothing about the file's size.
    if rec.transfer_syntax == "1.2.840.10008.1.2.1.99":
        rec.status = "image"
        return
    if length is not None and tell is not None and length != 0xFFFFFFFF:
        if tell + length > rec.size:
            rec.reason = (f"truncated at byte {rec.size}: PixelData needs {length} bytes from offset {tell}")
            return
        if rec.transfer_syntax in NATIVE_SYNTAXES:
            bits = _int(ds, "BitsAllocated", 16)
            spp = max(1, _int(ds, "SamplesPerPixel", 1))
            pixels = rec.rows * rec.columns * rec.frames * spp
            if spp == 3 and _text(ds, "PhotometricInterpretation") == "YBR_FULL_422":
                pixels = pixels * 2 // 3  # PS3.3 C.7.6.3.1.2: two chroma samples per pair of pixels
            expected = (pixels + 7) // 8 if bits == 1 else pixels * ((bits + 7) // 8)
            # PS3.5 7.1: values are padded to even length, so one extra byte is normal.
            if length < expected:
                rec.reason = (f"PixelData is {length} bytes but Rows x Columns x frames x samples "
                              f"({rec.rows} x {rec.columns} x {rec.frames} x {spp}, {bits} bits) "
                              f"needs {expected}")
                return
    rec.status = "image"
