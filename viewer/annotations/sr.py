"""ROIs and measurements to and from DICOM Comprehensive 3D SR, TID 1500 Measurement Report (highdicom).

Each ROI becomes one "Planar ROI Measurements and Qualitative Evaluations" group (TID 1410) with:
its image region (SCOORD on the referenced image; PS3.3 C.18.6: POINT, POLYLINE (closed for box and
polygon), ELLIPSE as the end points of the major then the minor axis), its finding type (the label's
code, or an uncoded-label code), its tracking UID (derived from the ROI id, so exporting twice gives
the same UID) and identifier (``kind|label set|label``, read back on import), and its measurements:
Length (SCT 410668003, mm) for lines, Area (SCT 42798000, mm2) for boxes, ellipses and polygons.

SCOORD coordinates put (0, 0) at the top-left corner of the top-left pixel (PS3.3 C.18.6.1.2); ROI
points put it at that pixel's centre, hence the 0.5 pixel shift both ways.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from viewer import __version__
from viewer.annotations.labelsets import Code
from viewer.core.atomic import write_atomically
from viewer.annotations.model import ImageKey, Roi, utc_now

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from viewer.annotations.deid import Deidentifier

LENGTH = Code("SCT", "410668003", "Length")
AREA = Code("SCT", "42798000", "Area")
FINDING = Code("SCT", "404684003", "Clinical finding")
UNCODED_SCHEME = "99DCMVIEWER"  # private coding scheme (PS3.16 8.2: "99" prefix) for labels without a code
_SEP = "|"


class SrError(ValueError):
    """ROIs cannot be written as SR, or a file cannot be read back as a TID 1500 report."""


def _cc(code: Code):  # type: ignore[no-untyped-def]
    import highdicom as hd

    return hd.sr.CodedConcept(code.value, code.scheme, code.meaning)


def uncoded(label: str) -> Code:
    """A stable private code for a label that has no standard one (code value <= 16 characters)."""
    return Code(UNCODED_SCHEME, "L" + hashlib.sha1(label.encode()).hexdigest()[:12].upper(), label[:64] or "ROI")


def tracking_uid(roi_id: str) -> str:
    """A UID derived from the ROI id: ``2.25.<int>`` (PS3.5 B.2)."""
    if re.fullmatch(r"[0-9a-f]{32}", roi_id):
        value = int(roi_id, 16)
    else:
        value = int.from_bytes(hashlib.sha256(roi_id.encode()).digest()[:16], "big")
    return f"2.25.{value}"


def _graphic(roi: Roi) -> tuple[str, np.ndarray]:
    pts = np.asarray(roi.points, dtype=np.float64) + 0.5
    if roi.kind == "point":
        return "POINT", pts
    if roi.kind in ("line", "angle"):
        return "POLYLINE", pts
    if roi.kind == "polygon":
        return "POLYLINE", np.vstack([pts, pts[:1]])  # closed: first point repeated (C.18.6.1.1)
    (x0, y0), (x1, y1) = pts
    if roi.kind == "box":
        return "POLYLINE", np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
    horizontal = [[cx - rx, cy], [cx + rx, cy]]
    vertical = [[cx, cy - ry], [cx, cy + ry]]
    return "ELLIPSE", np.array(horizontal + vertical if rx >= ry else vertical + horizontal)


def _roi_from_graphic(graphic_type: str, data: np.ndarray, identifier: str) -> tuple[str, list[tuple[float, float]]]:
    pts = np.asarray(data, dtype=np.float64).reshape(-1, 2) - 0.5
    kind = identifier.split(_SEP)[0] if _SEP in identifier else ""
    if graphic_type == "POINT":
        return "point", [tuple(pts[0])]
    if graphic_type == "ELLIPSE":
        xs, ys = pts[:, 0], pts[:, 1]
        return "ellipse", [(xs.min(), ys.min()), (xs.max(), ys.max())]
    closed = len(pts) > 3 and np.allclose(pts[0], pts[-1])
    if kind == "box" and closed and len(pts) == 5:
        return "box", [tuple(pts[0]), tuple(pts[2])]
    if closed:
        return "polygon", [tuple(p) for p in pts[:-1]]
    if kind == "angle" and len(pts) == 3:
        return "angle", [tuple(p) for p in pts]
    if len(pts) == 2:
        return "line", [tuple(p) for p in pts]
    return "polygon", [tuple(p) for p in pts]


def build_sr(source_images: Sequence[Dataset], rois: Sequence[Roi], *,
             code_of: Callable[[str, str], Code | None] | None = None, observer: str = "",
             series_uid: str | None = None, sop_uid: str | None = None,
             deidentifier: Deidentifier | None = None) -> Dataset:
    """A Comprehensive 3D SR (TID 1500) with one measurement group per ROI.

    Parameters
    ----------
    source_images
        Datasets (headers suffice) of every image an ROI lies on, all of one study.
    rois
        What to write; each ROI's ``key.sop_uid`` must be one of ``source_images``.
    code_of
        (label_set, label) -> the label's code or None (then a private code naming the label is used).
    observer
        The person observer's name (the annotator).

    Raises
    ------
    SrError
        No ROIs, an ROI on an image not given, or an image without UIDs.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    from viewer.annotations.seg import SegExportError, check_sources

    if not rois:
        raise SrError("no ROIs or measurements to export")
    for ds in source_images:
        try:
            check_sources([ds])  # every image needs its UIDs; they may come from several series
        except SegExportError as exc:
            raise SrError(str(exc)) from exc
    by_uid = {str(ds.SOPInstanceUID): ds for ds in source_images if ds.get("SOPInstanceUID")}
    studies = {str(ds.get("StudyInstanceUID", "")) for ds in source_images}
    if len(studies) != 1:
        raise SrError(f"source images come from {len(studies)} studies; an SR covers one study")
    groups = []
    for roi in rois:
        found = by_uid.get(roi.key.sop_uid)
        if found is None:
            raise SrError(f"ROI {roi.roi_id} ({roi.kind}) lies on image {roi.key.sop_uid or '(none)'}, which is "
                          "not among the source images")
        ds = found
        frames = [roi.key.frame] if int(ds.get("NumberOfFrames", 1) or 1) > 1 else None
        graphic_type, data = _graphic(roi)
        region = hd.sr.ImageRegion(graphic_type=graphic_type, graphic_data=data,
                                   source_image=hd.sr.SourceImageForRegion.from_source_image(ds, frames))
        spacing = [float(v) for v in (ds.get("PixelSpacing") or [0, 0])]
        col_row_mm = (spacing[1], spacing[0])  # PixelSpacing is (row spacing, column spacing), PS3.3 10.7.1.3
        measurements = []
        if all(col_row_mm):
            length, area = roi.length_mm(col_row_mm), roi.area_mm2(col_row_mm)
            if length is not None:
                measurements.append(hd.sr.Measurement(name=_cc(LENGTH), value=length,
                                                      unit=hd.sr.CodedConcept("mm", "UCUM", "millimeter")))
            if area is not None:
                measurements.append(hd.sr.Measurement(name=_cc(AREA), value=area,
                                                      unit=hd.sr.CodedConcept("mm2", "UCUM", "square millimeter")))
        code = (code_of(roi.label_set, roi.label) if code_of and roi.label else None)
        finding = code or (uncoded(roi.label) if roi.label else FINDING)
        ident = _SEP.join((roi.kind, roi.label_set, roi.label))
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking_uid(roi.roi_id), identifier=ident),
            referenced_region=region, finding_type=_cc(finding), measurements=measurements or None))
    context = hd.sr.ObservationContext(observer_person_context=hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121006", "DCM", "Person"),
        # A trailing "^" marks a one-component person name as intended (PS3.5 6.2.1.2), e.g. a login name.
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=(observer or "Unknown") if "^" in observer else (observer or "Unknown") + "^")))
    report = hd.sr.MeasurementReport(observation_context=context,
                                     procedure_reported=hd.sr.CodedConcept("363679005", "SCT", "Imaging procedure"),
                                     imaging_measurements=groups)
    used = [by_uid[u] for u in dict.fromkeys(r.key.sop_uid for r in rois)]
    with warnings.catch_warnings():
        # The source images' one-component PatientName ("Pancreas-CT-CB_001") is copied as is.
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        sr = hd.sr.Comprehensive3DSR(evidence=used, content=report, series_instance_uid=series_uid or generate_uid(),
                                     series_number=9902, sop_instance_uid=sop_uid or generate_uid(),
                                     instance_number=1, manufacturer="dicom-viewer", is_complete=True)
    sr.SeriesDescription = "Viewer ROIs and measurements"
    if any(_uses_scheme(g, UNCODED_SCHEME) for g in groups):
        identify_uncoded_scheme(sr)
    sr.SoftwareVersions = __version__
    return deidentifier.dataset(sr) if deidentifier is not None else sr


def identify_uncoded_scheme(sr: Dataset) -> None:
    """Name the private "uncoded label" scheme in ``sr``: a private coding scheme must be identified in the
    object that uses it (PS3.3 C.12.1.1.5)."""
    from pydicom.dataset import Dataset as _Dataset

    item = _Dataset()
    item.CodingSchemeDesignator = UNCODED_SCHEME
    item.CodingSchemeName = "dicom-viewer label names"
    item.CodingSchemeResponsibleOrganization = "dicom-viewer"
    sr.CodingSchemeIdentificationSequence = [item]


def _uses_scheme(group: object, scheme: str) -> bool:
    finding = getattr(group, "finding_type", None)
    return finding is not None and str(finding.scheme_designator) == scheme


def write_sr(path: str | Path, *args: object, **kwargs: object) -> Dataset:
    """:func:`build_sr` and save to ``path``."""
    ds = build_sr(*args, **kwargs)  # type: ignore[arg-type]
    # Temporary file + fsync + rename: a failed export leaves the earlier file and no partial one.
    write_atomically(path, lambda tmp: ds.save_as(str(tmp), enforce_file_format=True))
    return ds


def read_sr(path: str | Path, *, annotator: str = "", time: str | None = None) -> list[Roi]:
    """ROIs of a TID 1500 SR (planar image regions); measurements are recomputed from the points.

    Raises
    ------
    SrError
        Not a readable SR or not a TID 1500 measurement report.
    """
    import highdicom as hd

    try:
        sr = hd.sr.srread(str(path))
        report: Any = sr.content  # a MeasurementReport for TID 1500 documents
        groups = report.get_planar_roi_measurement_groups()
    except Exception as exc:  # noqa: BLE001 - one clear message for any malformed file
        raise SrError(f"{path}: not a readable TID 1500 measurement report: {exc}") from exc
    study = str(sr.StudyInstanceUID)
    observers = []
    for ctx in report.get_observer_contexts():
        name = getattr(ctx.observer_identifying_attributes, "name", None)
        if name:
            observers.append(str(name).rstrip("^"))
    when = time or _sr_time(sr)
    out = []
    for n, g in enumerate(groups):
        region = g.roi
        if region is None:
            continue  # a group that references a segment or a volume surface, not a drawn image region
        # The region's SELECTED FROM child names the image (PS3.16 TID 1410, row 7).
        src = region.ContentSequence[0].ReferencedSOPSequence[0]
        sop = str(src.ReferencedSOPInstanceUID)
        frames = src.get("ReferencedFrameNumber")
        frame = 1 if frames in (None, "") else int(frames if isinstance(frames, int) else list(frames)[0])
        ident = str(g.tracking_identifier or "")
        kind, pts = _roi_from_graphic(str(region.graphic_type.value), region.value, ident)
        parts = ident.split(_SEP) if ident.count(_SEP) == 2 else ["", "", ""]
        label = parts[2]
        if not label and g.finding_type is not None and g.finding_type.value != FINDING.value:
            label = str(g.finding_type.meaning)  # an SR from another tool: the finding names the label
        uid = str(g.tracking_uid or "")
        if uid.startswith("2.25.") and uid[5:].isdigit() and int(uid[5:]) < 2 ** 128:
            roi_id = format(int(uid[5:]), "032x")  # inverse of tracking_uid(): same ROI after a round trip
        else:
            roi_id = hashlib.sha1(f"{uid}{path}{n}".encode()).hexdigest()[:32]
        try:
            out.append(Roi(ImageKey(study, _series_of(sr, sop), sop, frame), kind, tuple(pts), parts[1], label,
                           annotator or (observers[0] if observers else ""), when, roi_id=roi_id))
        except ValueError as exc:
            raise SrError(f"{path}: measurement group {n + 1}: {exc}") from exc
    return out


def _series_of(sr: Dataset, sop_uid: str) -> str:
    for study in sr.get("CurrentRequestedProcedureEvidenceSequence", []):
        for series in study.get("ReferencedSeriesSequence", []):
            for inst in series.get("ReferencedSOPSequence", []):
                if str(inst.ReferencedSOPInstanceUID) == sop_uid:
                    return str(series.SeriesInstanceUID)
    return ""


def _sr_time(sr: Dataset) -> str:
    from viewer.annotations.model import parse_time

    d, t = str(sr.get("ContentDate", "") or ""), str(sr.get("ContentTime", "") or "")
    try:
        return parse_time(f"{d[:4]}-{d[4:6]}-{d[6:8]}T{t[:2]}:{t[2:4]}:{t[4:6] or '00'}")
    except ValueError:
        return utc_now()
