"""CSV and JSON exchange of labels (one row per label) and, in JSON, ROIs.

Columns / keys, in this order: study_uid, series_uid, sop_uid, frame, label_set, label, annotator, time,
source, model_id, model_version, probability. ``time`` is UTC ISO 8601; ``probability`` is empty (CSV)
or null (JSON) for human labels. JSON files are ``{"format": "dicom-viewer-labels", "version": 1,
"labels": [...], "rois": [...]}``.

Import is all or nothing: the whole file is parsed and validated first; the first bad row raises
:class:`LabelFileError` naming the line (CSV) or item (JSON) and the field, and the store is untouched.
Only then are the rows written, in one transaction.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from viewer.annotations.model import ROI_KINDS, SOURCES, ImageKey, Label, Roi, parse_time
from viewer.annotations.store import LabelStore
from viewer.core.atomic import write_atomically

COLUMNS = ("study_uid", "series_uid", "sop_uid", "frame", "label_set", "label", "annotator", "time", "source",
           "model_id", "model_version", "probability")
FORMAT = "dicom-viewer-labels"
VERSION = 1
# DICOM UIDs: digits and dots, components without leading zeros, at most 64 characters (PS3.5 9.1).
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")

UidMap = Callable[[str], str]


class LabelFileError(ValueError):
    """A label file is malformed; the message names the file, the line or item, and the field."""


def _label_dict(lab: Label, uid: UidMap | None) -> dict[str, Any]:
    k = lab.key
    m = uid or (lambda u: u)
    return {"study_uid": m(k.study_uid), "series_uid": m(k.series_uid), "sop_uid": m(k.sop_uid) if k.sop_uid else "",
            "frame": k.frame, "label_set": lab.label_set, "label": lab.label, "annotator": lab.annotator,
            "time": lab.time, "source": lab.source, "model_id": lab.model_id, "model_version": lab.model_version,
            "probability": lab.probability}


def labels_to_csv(labels: Iterable[Label], path: str | Path, *, uid_map: UidMap | None = None) -> int:
    """Write one CSV row per label (UTF-8, header row); returns the number of rows.

    ``uid_map`` replaces every UID (used by de-identified exports).
    """
    def write(tmp: Path) -> int:
        n = 0
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            for lab in labels:
                row = _label_dict(lab, uid_map)
                row["probability"] = "" if row["probability"] is None else repr(float(row["probability"]))
                writer.writerow(row)
                n += 1
        return n

    # Temporary file + fsync + rename: a failed export leaves the earlier file and no partial one.
    return write_atomically(path, write)


def _roi_dict(roi: Roi, uid: UidMap | None) -> dict[str, Any]:
    d = _label_dict(Label(roi.key, roi.label_set, roi.label, roi.annotator, roi.time, roi.source, roi.model_id,
                          roi.model_version, roi.probability), uid)
    d.update(roi_id=roi.roi_id, kind=roi.kind, points=[list(p) for p in roi.points])
    return d


def labels_to_json(labels: Iterable[Label], path: str | Path, *, rois: Iterable[Roi] = (),
                   uid_map: UidMap | None = None) -> int:
    """Write labels (and ROIs) as one JSON document; returns the number of labels."""
    rows = [_label_dict(lab, uid_map) for lab in labels]
    doc = {"format": FORMAT, "version": VERSION, "labels": rows, "rois": [_roi_dict(r, uid_map) for r in rois]}
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return len(rows)


# -- parsing -------------------------------------------------------------------------------------------
def _field_str(row: dict[str, Any], name: str, where: str, *, required: bool = True) -> str:
    value = row.get(name)
    if value is None or value == "":
        if required:
            raise LabelFileError(f"{where}: field '{name}' is missing or empty")
        return ""
    if not isinstance(value, str):
        raise LabelFileError(f"{where}: field '{name}' must be text, got {value!r}")
    return value.strip()


def _uid(row: dict[str, Any], name: str, where: str, *, required: bool = True) -> str:
    value = _field_str(row, name, where, required=required)
    if value and (len(value) > 64 or not _UID.match(value)):
        raise LabelFileError(f"{where}: field '{name}': {value!r} is not a DICOM UID (digits and dots, "
                             "at most 64 characters)")
    return value


def _common(row: dict[str, Any], where: str, *, need_label: bool = True) -> dict[str, Any]:
    study = _uid(row, "study_uid", where)
    series = _uid(row, "series_uid", where)
    sop = _uid(row, "sop_uid", where, required=False)
    raw_frame = row.get("frame")
    try:
        frame = int(raw_frame) if not isinstance(raw_frame, bool) else None  # type: ignore[arg-type]
        if frame is None or (isinstance(raw_frame, float) and not raw_frame.is_integer()):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise LabelFileError(f"{where}: field 'frame': {raw_frame!r} is not a whole number") from None
    if frame < 0 or (sop and frame < 1) or (not sop and frame != 0):
        raise LabelFileError(f"{where}: field 'frame': {frame} is invalid (1-based for an image, 0 with an "
                             "empty sop_uid for a whole series)")
    # A measurement ROI may carry no label; a label row always does.
    label_set = _field_str(row, "label_set", where, required=need_label)
    label = _field_str(row, "label", where, required=need_label)
    annotator = _field_str(row, "annotator", where)
    time_text = _field_str(row, "time", where)
    try:
        time = parse_time(time_text)
    except ValueError:
        raise LabelFileError(f"{where}: field 'time': {time_text!r} is not an ISO 8601 time") from None
    source = _field_str(row, "source", where)
    if source not in SOURCES:
        raise LabelFileError(f"{where}: field 'source': {source!r} must be one of {', '.join(SOURCES)}")
    model_id = _field_str(row, "model_id", where, required=source == "model")
    model_version = _field_str(row, "model_version", where, required=False)
    raw_p = row.get("probability")
    probability: float | None = None
    if raw_p not in (None, ""):
        try:
            if isinstance(raw_p, bool):
                raise ValueError
            probability = float(raw_p)
        except (TypeError, ValueError):
            raise LabelFileError(f"{where}: field 'probability': {raw_p!r} is not a number") from None
        if not 0.0 <= probability <= 1.0:  # also refuses NaN
            raise LabelFileError(f"{where}: field 'probability': {probability} is outside 0..1")
    return dict(key=ImageKey(study, series, sop, frame), label_set=label_set, label=label, annotator=annotator,
                time=time, source=source, model_id=model_id, model_version=model_version, probability=probability)


def _check_label_set(fields: dict[str, Any], where: str, known: Mapping[str, Sequence[str]] | None) -> None:
    if known is None or fields["label_set"] not in known:
        return
    if fields["label"] not in known[fields["label_set"]]:
        raise LabelFileError(f"{where}: field 'label': {fields['label']!r} is not in label set "
                             f"{fields['label_set']!r} ({', '.join(known[fields['label_set']])})")


def read_labels_csv(path: str | Path, *, known: Mapping[str, Sequence[str]] | None = None) -> list[Label]:
    """Parse and validate a labels CSV (nothing is written).

    Parameters
    ----------
    known
        label set name -> its label names; rows of those sets must use one of them.

    Raises
    ------
    LabelFileError
        Naming the file, the line (1 = header) and the field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheet programs add a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"{path}: cannot read as UTF-8 text: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise LabelFileError(f"{path}: line 1: not valid CSV: {exc}") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise LabelFileError(f"{path}: line 1: header lacks column(s) {', '.join(missing)}")
    labels = []
    try:
        for row in reader:
            where = f"{path}: line {reader.line_num}"
            if None in row:
                raise LabelFileError(f"{where}: more values than the {len(header)} header columns")
            fields = _common(row, where)
            _check_label_set(fields, where, known)
            labels.append(Label(**fields))
    except csv.Error as exc:
        raise LabelFileError(f"{path}: line {reader.line_num}: not valid CSV: {exc}") from None
    return labels


def read_labels_json(path: str | Path, *, known: Mapping[str, Sequence[str]] | None = None
                     ) -> tuple[list[Label], list[Roi]]:
    """Parse and validate a labels JSON document (nothing is written).

    Raises
    ------
    LabelFileError
        Naming the file and either the JSON syntax error (line, column) or the item and field
        (``labels[3].probability``).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"{path}: cannot read as UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise LabelFileError(f"{path}: line {exc.lineno} column {exc.colno}: not valid JSON: {exc.msg}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise LabelFileError(f"{path}: field 'format' must be {FORMAT!r}")
    if doc.get("version") != VERSION:
        raise LabelFileError(f"{path}: field 'version': {doc.get('version')!r} is not supported (want {VERSION})")
    rows, roi_rows = doc.get("labels", []), doc.get("rois", [])
    if not isinstance(rows, list) or not isinstance(roi_rows, list):
        raise LabelFileError(f"{path}: fields 'labels' and 'rois' must be arrays")
    labels = []
    for n, row in enumerate(rows):
        where = f"{path}: labels[{n}]"
        if not isinstance(row, dict):
            raise LabelFileError(f"{where}: must be an object")
        fields = _common(row, where)
        _check_label_set(fields, where, known)
        labels.append(Label(**fields))
    rois = []
    for n, row in enumerate(roi_rows):
        where = f"{path}: rois[{n}]"
        if not isinstance(row, dict):
            raise LabelFileError(f"{where}: must be an object")
        fields = _common(row, where, need_label=False)
        kind = _field_str(row, "kind", where)
        if kind not in ROI_KINDS:
            raise LabelFileError(f"{where}: field 'kind': {kind!r} must be one of {', '.join(ROI_KINDS)}")
        pts = row.get("points")
        if (not isinstance(pts, list) or not all(isinstance(p, list) and len(p) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in p) for p in pts)):
            raise LabelFileError(f"{where}: field 'points' must be a list of [x, y] number pairs")
        roi_id = _field_str(row, "roi_id", where)
        try:
            rois.append(Roi(points=tuple((float(x), float(y)) for x, y in pts), kind=kind, roi_id=roi_id,
                            **fields))
        except ValueError as exc:
            raise LabelFileError(f"{where}: field 'points': {exc}") from None
    return labels, rois


def import_labels(store: LabelStore, path: str | Path, fmt: str, *,
                  known: Mapping[str, Sequence[str]] | None = None) -> tuple[int, int]:
    """Validate a whole CSV/JSON file, then write it in one transaction; returns (labels, ROIs) written.

    Rows replace the store's label of the same image and label set (and ROI of the same roi_id).
    A malformed file raises :class:`LabelFileError` and the store is unchanged.
    """
    if fmt == "csv":
        labels, rois = read_labels_csv(path, known=known), list[Roi]()
    elif fmt == "json":
        labels, rois = read_labels_json(path, known=known)
    else:
        raise ValueError(f"unknown label file format {fmt!r} (csv or json)")
    store.put_all(labels, rois)
    return len(labels), len(rois)
