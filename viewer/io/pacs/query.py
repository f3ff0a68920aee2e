"""What a query asks and what a match says, the same for DIMSE (C-FIND) and DICOMweb (QIDO-RS)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

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


@dataclass
class Match:
    """One study or series found. Counts are -1 when the PACS did not say."""

    level: str
    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    study_time: str = ""
    accession: str = ""
    study_description: str = ""
    modalities: str = ""
    study_series: int = -1
    study_instances: int = -1
    series_uid: str = ""
    series_number: str = ""
    series_description: str = ""
    modality: str = ""
    series_instances: int = -1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def match_from_dataset(ds: Any, level: str) -> Match:
    """A :class:`Match` from a C-FIND identifier or a QIDO result turned into a pydicom Dataset."""
    from pydicom.multival import MultiValue

    def text(keyword: str) -> str:
        value = ds.get(keyword, "")
        if value is None:
            return ""
        if isinstance(value, MultiValue):
            return "\\".join(str(v) for v in value)
        return str(value)

    return Match(level=level, study_uid=text("StudyInstanceUID"), patient_name=text("PatientName"),
                 patient_id=text("PatientID"), study_date=text("StudyDate"), study_time=text("StudyTime"),
                 accession=text("AccessionNumber"), study_description=text("StudyDescription"),
                 modalities=text("ModalitiesInStudy"), study_series=_int(ds.get("NumberOfStudyRelatedSeries")),
                 study_instances=_int(ds.get("NumberOfStudyRelatedInstances")),
                 series_uid=text("SeriesInstanceUID"), series_number=text("SeriesNumber"),
                 series_description=text("SeriesDescription"), modality=text("Modality"),
                 series_instances=_int(ds.get("NumberOfSeriesRelatedInstances")))


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
