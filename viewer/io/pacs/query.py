"""What a query asks and what a match says, the same for DIMSE (C-FIND) and DICOMweb (QIDO-RS)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from viewer.core.pacs_records import Match as Match
from viewer.io.pacs.errors import PacsError

LEVELS = ("study", "series")


@dataclass(frozen=True)
class Query:
    """Matching keys; empty means "any". Names and descriptions take DICOM wildcards (``*``, ``?``)."""

    level: str = "study"
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    modality: str = ""
    accession: str = ""
    description: str = ""
    study_uid: str = ""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise PacsError(f"query level {self.level!r}: use one of {', '.join(LEVELS)}")
        object.__setattr__(self, "study_date", normalize_date_range(self.study_date))
        if self.level == "series" and not self.study_uid:
            pass  # allowed: the series of every matching study (study query first)


_DATE = r"(\d{8}|\d{4}-\d{2}-\d{2})"


def normalize_date_range(text: str) -> str:
    """``D``, ``D1-D2``, ``D1-`` or ``-D2`` with dates as YYYYMMDD or YYYY-MM-DD, to DICOM's DA range.

    ISO dates contain hyphens, so a range of two ISO dates is split on ``..`` or on the hyphen between
    the two dates.
    """
    text = text.strip()
    if not text:
        return ""
    m = re.fullmatch(rf"{_DATE}?\s*(?:-|\.\.)\s*{_DATE}?", text)
    single = re.fullmatch(_DATE, text)
    if single:
        return text.replace("-", "")
    if m and (m.group(1) or m.group(2)):
        return f"{(m.group(1) or '').replace('-', '')}-{(m.group(2) or '').replace('-', '')}"
    raise PacsError(f"study date {text!r}: use YYYYMMDD, YYYYMMDD-YYYYMMDD, YYYYMMDD- or -YYYYMMDD")


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


#: Character sets whose text a C-FIND response can be read from without pydicom's decoders (one byte
#: per character or UTF-8; ISO 2022 code extensions and the others go the slow way).
_SIMPLE_CHARSETS = {"": "ascii", "ISO_IR 6": "ascii", "ISO 2022 IR 6": "ascii", "ISO_IR 100": "latin-1",
                    "ISO_IR 192": "utf-8"}
_FIELDS = {"study_uid": "StudyInstanceUID", "patient_name": "PatientName", "patient_id": "PatientID",
           "study_date": "StudyDate", "study_time": "StudyTime", "accession": "AccessionNumber",
           "study_description": "StudyDescription", "modalities": "ModalitiesInStudy",
           "study_series": "NumberOfStudyRelatedSeries", "study_instances": "NumberOfStudyRelatedInstances",
           "series_uid": "SeriesInstanceUID", "series_number": "SeriesNumber",
           "series_description": "SeriesDescription", "modality": "Modality",
           "series_instances": "NumberOfSeriesRelatedInstances"}
_COUNTS = {"study_series", "study_instances", "series_instances"}
_TAGS: dict[str, int] = {}


def _raw_texts(ds: Any) -> dict[str, str] | None:
    """The match's fields straight from the still-encoded elements of a decoded C-FIND identifier, or None
    when that is not possible (elements already converted, as from QIDO JSON; an ISO 2022 character set).

    pydicom converts an element on first access (~55 us each: 0.8 ms a response, 9x the decoding of the
    response itself); the text of these VRs (PN, LO, SH, UI, DA, TM, CS, IS) is the bytes themselves."""
    from pydicom.datadict import tag_for_keyword

    if not _TAGS:
        _TAGS.update({k: int(tag_for_keyword(v) or 0) for k, v in _FIELDS.items()})
    charset = ds.get_item(0x00080005)
    if charset is None:
        codec = "ascii"
    elif isinstance(charset.value, bytes) and charset.value.strip(b" \0") in (b"", b"ISO_IR 6", b"ISO_IR 100",
                                                                              b"ISO_IR 192", b"ISO 2022 IR 6"):
        codec = _SIMPLE_CHARSETS[charset.value.decode("ascii").strip(" \0")]
    else:
        return None
    out: dict[str, str] = {}
    for field, tag in _TAGS.items():
        elem = ds.get_item(tag)
        if elem is None or not elem.value:  # absent, or empty (pydicom hands those on as "" or None)
            out[field] = ""
        elif isinstance(elem.value, bytes):
            out[field] = elem.value.decode(codec, "replace").rstrip(" \0")
        else:
            return None
    return out


def match_from_dataset(ds: Any, level: str) -> Match:
    """A :class:`Match` from a C-FIND identifier or a QIDO result turned into a pydicom Dataset."""
    from pydicom.multival import MultiValue

    raw = _raw_texts(ds)
    if raw is not None:
        return Match(level=level, **{k: _int(v) if k in _COUNTS else v for k, v in raw.items()})  # type: ignore[arg-type]

    def text(keyword: str) -> str:
        value = ds.get(keyword, "")
        if value is None:
            return ""
        if isinstance(value, MultiValue):
            return "\\".join(str(v) for v in value)
        return str(value)

    return Match(level=level, **{k: _int(ds.get(v)) if k in _COUNTS else text(v)  # type: ignore[arg-type]
                                 for k, v in _FIELDS.items()})


#: Keys returned at each level (requested empty in C-FIND, as includefield in QIDO).
STUDY_KEYS = ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber",
              "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
              "NumberOfStudyRelatedInstances")
SERIES_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality",
               "NumberOfSeriesRelatedInstances")


def study_filters(q: Query) -> dict[str, str]:
    """The matching values of a study-level query, by DICOM keyword (empty keys left out)."""
    pairs = {"PatientID": q.patient_id, "PatientName": q.patient_name, "StudyDate": q.study_date,
             "ModalitiesInStudy": q.modality, "AccessionNumber": q.accession, "StudyDescription": q.description,
             "StudyInstanceUID": q.study_uid}
    return {k: v for k, v in pairs.items() if v}
