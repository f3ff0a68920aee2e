"""The scanner's typed records: one file's header (:class:`HeaderRecord`), one loadable stack
(:class:`Stack`) and a scan's result (:class:`ScanResult`).

Plain dataclasses with no pydicom or SimpleITK behind them: ``viewer.io`` fills them (``read_header``,
``find_stacks``, the SQLite index) and every layer above reads their fields (``state``, ``ui``,
``commands``). An import-linter contract keeps ``viewer.core`` free of pydicom and SimpleITK, and
``tests/core/test_records.py`` checks that importing this module loads neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
import operator
from collections.abc import Sequence
from typing import Any


@dataclass(slots=True)
class HeaderRecord:
    """What the scanner keeps of one file (plain values; one row of the SQLite index).

    ``orientation`` is ImageOrientationPatient (6 direction cosines, LPS) and ``position`` is
    ImagePositionPatient (LPS mm of the first voxel centre), both as backslash-joined text ("" when
    absent) so the record is hashable and stores as-is. ``frames`` is NumberOfFrames (1 when absent).

    The last fields serve the loader, which trusts them only while ``size`` and ``mtime_ns`` still match
    the file: ``rescale_slope``/``rescale_intercept`` (text of the floats, "" when absent),
    ``bits_allocated``, ``bits_stored``, ``pixel_representation`` (0 unsigned, 1 signed),
    ``samples_per_pixel``, and ``pixel_offset``/``pixel_length``: the byte offset in the file of the
    PixelData *value* (just after its element header) and its length, for native (not encapsulated,
    not deflated) pixel data only; -1 otherwise.
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
    rescale_slope: str = ""
    rescale_intercept: str = ""
    bits_allocated: int = 0
    bits_stored: int = 0
    pixel_representation: int = 0
    samples_per_pixel: int = 0
    pixel_offset: int = -1
    pixel_length: int = -1
    #: The file's VOI window(s) as written (WindowCenter, WindowWidth, WindowCenterWidthExplanation;
    #: backslash-joined, "" when absent): the loader's opening window without parsing the file again.
    window_center: str = ""
    window_width: str = ""
    window_explanation: str = ""
    #: Identity beyond size and mtime: the inode change time (an in-place edit that restores the mtime
    #: still changes it) and a digest of the file's first IDENTITY_BYTES (the header: a changed
    #: RescaleIntercept is seen even where timestamps are coarse). See :func:`viewer.io.headers.same_file`.
    ctime_ns: int = 0
    digest: str = ""

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


def records_to_columns(records: Sequence[HeaderRecord]) -> dict[str, Any]:
    """``records`` as columns: ``n``, ``same`` (field -> the value every record has) and ``each`` (field ->
    the list of values). The records of one series share most fields (UIDs, geometry, pixel format), so
    this pickles to about a quarter of the records' size, 3-4x faster (a batch task carries them)."""
    same: dict[str, Any] = {}
    each: dict[str, list[Any]] = {}
    row = operator.attrgetter(*RECORD_FIELDS)
    for name, values in zip(RECORD_FIELDS, zip(*map(row, records))):
        if values.count(values[0]) == len(values):
            same[name] = values[0]
        else:
            each[name] = list(values)
    return {"n": len(records), "same": same, "each": each}


def records_from_columns(columns: dict[str, Any]) -> list[HeaderRecord]:
    """The records :func:`records_to_columns` was given (equal, in order)."""
    n, same, each = columns["n"], columns["same"], columns["each"]
    if not n:
        return []
    cols = [each[name] if name in each else [same[name]] * n for name in RECORD_FIELDS]
    return [HeaderRecord(*row) for row in zip(*cols)]


@dataclass
class Stack:
    """One loadable stack: files that form one volume (or one multi-frame file, or one image)."""

    series_uid: str
    files: list[str]
    modality: str = ""
    description: str = ""
    split_reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    patient_id: str = ""
    patient_name: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    series_number: str = ""
    series_date: str = ""
    rows: int = 0
    columns: int = 0
    frames: int = 0
    image_type: str = ""
    #: Short text telling a split stack from its siblings (shown after the description), None if not split.
    split_label: str | None = None
    #: Volumes of a 4D stack as the scan sees them (repeated positions); the loader's count is final.
    volumes: int = 1
    #: The scanner's record of each file, in ``files`` order: the loader reads geometry, rescale and the
    #: PixelData offset from them instead of parsing every header again (it checks the file is unchanged).
    records: list[HeaderRecord] = field(default_factory=list, repr=False, compare=False)


@dataclass
class ScanResult:
    stacks: list[Stack] = field(default_factory=list)
    bad_files: list[tuple[str, str]] = field(default_factory=list)
    non_image: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False
    files_total: int = 0
    headers_read: int = 0
    warnings: list[str] = field(default_factory=list)

    def tree(self) -> list[dict[str, Any]]:
        """Patients -> studies -> series -> stacks, as plain dicts (the ``scan --json`` ``patients``).

        A stack appears as its index into ``stacks``.
        """
        patients: dict[tuple[str, str], dict[str, Any]] = {}
        for i, s in enumerate(self.stacks):
            p = patients.setdefault((s.patient_id, s.patient_name), {
                "patient_id": s.patient_id, "patient_name": s.patient_name, "studies": {}})
            st = p["studies"].setdefault(s.study_uid or f"(no uid) {s.study_date}", {
                "study_uid": s.study_uid, "study_date": s.study_date,
                "study_description": s.study_description, "series": {}})
            se = st["series"].setdefault((s.series_uid, s.series_number, s.description, s.modality), {
                "series_uid": s.series_uid, "series_number": s.series_number, "modality": s.modality,
                "description": s.description, "files": 0, "stacks": []})
            se["files"] += len(s.files)
            se["stacks"].append(i)
        out = []
        for p in patients.values():
            studies = []
            for st in p["studies"].values():
                st["series"] = list(st["series"].values())
                studies.append(st)
            p["studies"] = studies
            out.append(p)
        return out
