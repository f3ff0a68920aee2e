"""A classifier's findings on a series as DICOM Comprehensive 3D SR, TID 1500 Measurement Report (highdicom).

The ROI writer (:mod:`viewer.annotations.sr`) covers drawn regions; a model's per-image classification
has no region. Each class the model decided on some image of the series becomes one "Measurement and
Qualitative Evaluation Group" (TID 1501) with:

- the images it was decided on (``Source of Measurement`` each, with the frame of a multi-frame image):
  every classified image is in exactly one group, so the SR says which image got which class;
- the class as the finding type (``Finding``, DCM 121071): the class's code where the caller has one, else
  the private "uncoded label" code of the ROI writer, so one label has one code in every SR the viewer
  writes;
- the class's probability (its mean over those images, derivation ``Mean``, when there are several) as a
  measurement (unit ``1``, UCUM "no units") named by a private code ``Probability of <class>``;
- the algorithm (TID 4019: model id, version, the operating point as a parameter).

A group per class, not per image: highdicom builds a 134-group SR in seconds, which would cost more than
running the model; the per-image probabilities are in the batch results.

The observer is a device (the model), the SR's evidence lists every source image, so its
CurrentRequestedProcedureEvidenceSequence names the source series. UIDs are given by the caller, so a
re-run of the same model on the same series writes the same SR instance (a PACS replaces, not doubles it).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from viewer import __version__
from viewer.annotations.labelsets import Code
from viewer.annotations.sr import SrError, identify_uncoded_scheme, uncoded

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

SERIES_NUMBER = 9903


@dataclass(frozen=True)
class ImageFinding:
    """What a model decided about one image: the decided ``label`` and every class's probability."""

    sop_uid: str
    frame: int  # 1-based
    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True)
class Algorithm:
    """The model as the SR names it (TID 4019) and the device observer."""

    id: str
    version: str
    title: str = ""
    parameters: tuple[str, ...] = ()  # e.g. the operating point, "pneumonia if P(pneumonia) >= 0.42"


@dataclass(frozen=True)
class ImageRef:
    """The identity of a source image, as the scanner's header records hold it."""

    sop_class_uid: str
    sop_uid: str
    series_uid: str
    study_uid: str
    frames: int = 1


def source_datasets(first: Dataset, refs: Sequence[ImageRef]) -> list[Dataset]:
    """Header data sets for :func:`build_findings_sr`: ``first`` (a real header: the SR copies its patient
    and study modules) and, for every other image, a data set holding only its identity; reading 134
    headers to copy four UIDs each would cost more than the SR itself."""
    from pydicom.dataset import Dataset as _Dataset

    out = [first]
    for r in refs:
        if r.sop_uid == str(first.get("SOPInstanceUID", "")):
            continue
        ds = _Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = r.sop_class_uid, r.sop_uid
        ds.SeriesInstanceUID, ds.StudyInstanceUID = r.series_uid, r.study_uid
        if r.frames > 1:
            ds.NumberOfFrames = r.frames
        out.append(ds)
    return out


def derived_uid(*parts: str) -> str:
    """A UID that depends only on ``parts``: ``2.25.<int>`` (PS3.5 B.2)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


def _cc(code: Code) -> Any:
    import highdicom as hd

    return hd.sr.CodedConcept(code.value, code.scheme, code.meaning)


def build_findings_sr(source_images: Sequence[Dataset], findings: Sequence[ImageFinding], algorithm: Algorithm, *,
                      series_uid: str, sop_uid: str, code_of: dict[str, Code] | None = None) -> Dataset:
    """The SR of ``findings`` on ``source_images`` (headers suffice; one study; the first one's patient and
    study modules are copied, see :func:`source_datasets`); see the module doc.

    Raises
    ------
    SrError
        No findings, a finding on an image not given, images of several studies or without UIDs.
    """
    import highdicom as hd

    from viewer.annotations.seg import SegExportError, check_sources

    if not findings:
        raise SrError("no findings to write")
    try:
        check_sources(list(source_images))
    except SegExportError as exc:
        raise SrError(str(exc)) from exc
    by_uid = {str(ds.SOPInstanceUID): ds for ds in source_images}
    if len({str(ds.get("StudyInstanceUID", "")) for ds in source_images}) != 1:
        raise SrError("the source images come from several studies; an SR covers one study")
    codes = dict(code_of or {})
    algo = hd.sr.AlgorithmIdentification(name=algorithm.id, version=algorithm.version,
                                         parameters=list(algorithm.parameters) or None)
    unit = hd.sr.CodedConcept("1", "UCUM", "no units")
    mean = hd.sr.CodedConcept("373098007", "SCT", "Mean")
    by_label: dict[str, list[ImageFinding]] = {}
    for f in findings:
        if f.sop_uid not in by_uid:
            raise SrError(f"a finding lies on image {f.sop_uid or '(none)'}, which is not among the source images")
        by_label.setdefault(f.label, []).append(f)
    groups = []
    for label, fs in by_label.items():
        value = codes.get(label) or uncoded(label)
        p = [f.probabilities[label] for f in fs if label in f.probabilities]
        measurements = [hd.sr.Measurement(name=_cc(uncoded(f"Probability of {label}")), value=sum(p) / len(p),
                                          unit=unit, derivation=mean if len(p) > 1 else None)] if p else None
        sources = [hd.sr.SourceImageForMeasurementGroup(
            str(by_uid[f.sop_uid].SOPClassUID), f.sop_uid,
            [f.frame] if int(by_uid[f.sop_uid].get("NumberOfFrames", 1) or 1) > 1 else None) for f in fs]
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=derived_uid(sop_uid, label),
                                                         identifier=f"{algorithm.id}: {label}"[:64]),
            finding_type=_cc(value), algorithm_id=algo, measurements=measurements, source_images=sources))
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=derived_uid("device", algorithm.id, algorithm.version),
                                                       name=algorithm.id, manufacturer_name="dicom-viewer",
                                                       model_name=f"{algorithm.id} {algorithm.version}")
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"), observer_identifying_attributes=device))
    report = hd.sr.MeasurementReport(observation_context=context,
                                     procedure_reported=hd.sr.CodedConcept("363679005", "SCT", "Imaging procedure"),
                                     imaging_measurements=groups)
    # in source_images' order: the SR copies the patient and study modules of the first (source_datasets)
    named = {f.sop_uid for f in findings}
    used = [ds for ds in source_images if str(ds.SOPInstanceUID) in named]
    with warnings.catch_warnings():
        # The source images' one-component PatientName ("Pancreas-CT-CB_001") is copied as is.
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        sr = hd.sr.Comprehensive3DSR(evidence=used, content=report, series_instance_uid=series_uid,
                                     series_number=SERIES_NUMBER, sop_instance_uid=sop_uid, instance_number=1,
                                     manufacturer="dicom-viewer", is_complete=True,
                                     series_description=f"AI findings: {algorithm.title or algorithm.id}"[:64])
    identify_uncoded_scheme(sr)  # the probability names (and labels without a code) are private codes
    sr.SoftwareVersions = __version__
    return sr


def read_findings(sr: Dataset) -> dict[tuple[str, int], str]:
    """(SOP Instance UID, frame) -> label of every image an SR written by :func:`build_findings_sr` names."""
    import highdicom as hd

    doc = hd.sr.Comprehensive3DSR.from_dataset(sr)
    report: Any = doc.content  # a MeasurementReport for TID 1500 documents
    out = {}
    for g in report.get_image_measurement_groups():
        for src in g.source_images:
            frames = src.referenced_frame_numbers
            out[(str(src.referenced_sop_instance_uid), int(frames[0]) if frames else 1)] = str(g.finding_type.meaning)
    return out
