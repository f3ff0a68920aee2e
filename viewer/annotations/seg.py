"""Masks to and from DICOM Segmentation (SEG) objects, written with highdicom.

The caller (the command layer, which may read DICOM) passes the source image datasets of the series in
volume order (z = 0, 1, ...), the same order as the masks' first axis. Headers are enough:
highdicom takes geometry and references from them, not pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from viewer import __version__
from viewer.annotations.labelsets import Code
from viewer.core.atomic import write_atomically

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from viewer.annotations.deid import Deidentifier

# Used when a label has no code of its own: category "Morphologically Altered Structure" is too specific,
# "Tissue" (SCT 85756007) as category and type is the generic choice other tools (Slicer) read fine.
GENERIC_CATEGORY = Code("SCT", "85756007", "Tissue")
ANATOMY_CATEGORY = Code("SCT", "123037004", "Anatomical Structure")


class SegExportError(ValueError):
    """The masks or source images cannot make a valid SEG (the message says why)."""


@dataclass(frozen=True)
class Segment:
    """One label's mask for SEG export.

    Attributes
    ----------
    name
        Segment label.
    mask
        Boolean (z, y, x), z in the order of the source images.
    color
        "#RRGGBB" display colour (stored as CIELab, PS3.3 C.8.20.2).
    code
        Segmented property type; None -> generic "Tissue".
    """

    name: str
    mask: np.ndarray
    color: str = "#ff0000"
    code: Code | None = None


def _coded(code: Code):  # type: ignore[no-untyped-def]
    import highdicom as hd

    return hd.sr.CodedConcept(code.value, code.scheme, code.meaning)


def check_sources(source_images: Sequence[Dataset]) -> None:
    """Raise :class:`SegExportError` when the images cannot be referenced (missing UIDs, mixed series)."""
    if not source_images:
        raise SegExportError("no source images given")
    for attr in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        empty = sum(1 for ds in source_images if not str(ds.get(attr, "") or "").strip())
        if empty:
            raise SegExportError(f"{empty} of {len(source_images)} source images have no {attr}: a DICOM SEG/SR "
                                 "must reference its images by UID; export masks as NIfTI instead")
    series = {str(ds.SeriesInstanceUID) for ds in source_images}
    if len(series) != 1:
        raise SegExportError(f"source images come from {len(series)} series; export one series at a time")
    uids = [str(ds.SOPInstanceUID) for ds in source_images]
    if len(set(uids)) != len(uids):
        raise SegExportError("source images repeat a SOPInstanceUID")


def build_seg(source_images: Sequence[Dataset], segments: Sequence[Segment], *,
              frame_numbers: Sequence[int] | None = None, series_uid: str | None = None,
              sop_uid: str | None = None, series_description: str = "Viewer labels", creator: str = "",
              deidentifier: Deidentifier | None = None) -> Dataset:
    """Build a binary DICOM SEG of ``segments`` over ``source_images``.

    Parameters
    ----------
    source_images
        The series' image datasets (headers suffice), z order.
    segments
        Non-empty list; each mask must have shape (len(source_images), Rows, Columns), or
        (len(frame_numbers), Rows, Columns) for a multi-frame source.
    frame_numbers
        For ONE multi-frame source image: the 1-based frame number of each mask slice (z order).
    series_uid, sop_uid
        UIDs for the new object (generated when None).
    creator
        Content Creator's Name (the annotator).
    deidentifier
        When given, the SEG is de-identified (references remapped consistently with the images).

    Raises
    ------
    SegExportError
        Bad sources (see :func:`check_sources`), shape mismatch, or all masks empty.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    check_sources(source_images)
    if not segments:
        raise SegExportError("no masks to export")
    rows, cols = int(source_images[0].Rows), int(source_images[0].Columns)
    n_frames = int(source_images[0].get("NumberOfFrames", 1) or 1)
    if frame_numbers is not None:
        if len(source_images) != 1 or n_frames < 2:
            raise SegExportError("frame numbers are for exactly one multi-frame source image")
        bad = [f for f in frame_numbers if not 1 <= int(f) <= n_frames]
        if bad or len(set(frame_numbers)) != len(frame_numbers):
            raise SegExportError(f"frame numbers must be distinct and within 1..{n_frames}")
    elif n_frames > 1:
        raise SegExportError("a multi-frame source image needs the frame number of each mask slice")
    want = (len(frame_numbers) if frame_numbers is not None else len(source_images), rows, cols)
    stack = []
    for seg in segments:
        if tuple(seg.mask.shape) != want:
            raise SegExportError(f"mask {seg.name!r} has shape {tuple(seg.mask.shape)}, the series is {want} "
                                 "(z, y, x)")
        stack.append(np.asarray(seg.mask, dtype=bool))
    pixels = np.stack(stack, axis=-1)
    if not pixels.any():
        raise SegExportError("every mask is empty: nothing to export")
    if frame_numbers is not None:
        # highdicom wants one mask frame per source frame, in frame order.
        full = np.zeros((n_frames, rows, cols, len(segments)), dtype=bool)
        full[np.asarray(frame_numbers, dtype=int) - 1] = pixels
        pixels = full
    descriptions = []
    for n, seg in enumerate(segments, start=1):
        category = ANATOMY_CATEGORY if seg.code is not None and seg.code.scheme == "SCT" else GENERIC_CATEGORY
        rgb = tuple(int(seg.color[i:i + 2], 16) for i in (1, 3, 5))
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=n, segment_label=seg.name[:64], segmented_property_category=_coded(category),
            segmented_property_type=_coded(seg.code or GENERIC_CATEGORY),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            tracking_uid=generate_uid(), tracking_id=seg.name[:64],
            display_color=hd.color.CIELabColor.from_rgb(*rgb)))
    if frame_numbers is not None:
        source_images = [_with_shared_geometry(source_images[0], n_frames)]
    try:
        with warnings.catch_warnings():
            # The source images' one-component PatientName ("Pancreas-CT-CB_001") is copied as is.
            warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
            out = hd.seg.Segmentation(
                source_images=list(source_images), pixel_array=pixels,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
                series_instance_uid=series_uid or generate_uid(), series_number=9901,
                sop_instance_uid=sop_uid or generate_uid(), instance_number=1, manufacturer="dicom-viewer",
                manufacturer_model_name="dicom-viewer", software_versions=__version__, device_serial_number="0",
                content_label="LABELS", content_description=series_description[:64],
                content_creator_name=creator or None)
    except (ValueError, TypeError) as exc:
        raise SegExportError(f"highdicom refused the segmentation: {exc}") from exc
    out.SeriesDescription = series_description[:64]
    return deidentifier.dataset(out) if deidentifier is not None else out


def _with_shared_geometry(ds: Dataset, n_frames: int) -> Dataset:
    """The source header with pixel measures and orientation in its shared functional groups.

    Philips and Siemens enhanced MR keep them per frame; highdicom only looks in the shared groups. When
    every frame has the same values (a SEG shares one spacing and orientation anyway) a header copy with
    them moved to the shared group describes the same geometry; UIDs, and so references, are unchanged.
    """
    import copy

    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if shared is not None and "PixelMeasuresSequence" in shared and "PlaneOrientationSequence" in shared:
        return ds

    def group(k: int, name: str) -> Any:
        for src in ((per_frame[k] if k < len(per_frame) else None), shared):
            if src is not None and name in src:
                return src[name].value[0]
        raise SegExportError(f"frame {k + 1} of the source image has no {name}: no geometry to reference")

    pm, po = group(0, "PixelMeasuresSequence"), group(0, "PlaneOrientationSequence")
    for k in range(1, n_frames):
        if (list(group(k, "PixelMeasuresSequence").PixelSpacing) != list(pm.PixelSpacing)
                or list(group(k, "PlaneOrientationSequence").ImageOrientationPatient)
                != list(po.ImageOrientationPatient)):
            raise SegExportError("the source frames differ in pixel spacing or orientation; a SEG shares one")
    out = copy.deepcopy(ds)
    sh = out.SharedFunctionalGroupsSequence[0]
    sh.PixelMeasuresSequence = [copy.deepcopy(pm)]
    sh.PlaneOrientationSequence = [copy.deepcopy(po)]
    return out


def write_seg(path: str | Path, *args: object, **kwargs: object) -> Dataset:
    """:func:`build_seg` and save to ``path``; returns the dataset written."""
    ds = build_seg(*args, **kwargs)  # type: ignore[arg-type]
    # Temporary file + fsync + rename: a failed export leaves the earlier file and no partial one.
    write_atomically(path, lambda tmp: ds.save_as(str(tmp), enforce_file_format=True))
    return ds


def read_seg(path: str | Path, source_images: Sequence[Dataset], frame_numbers: Sequence[int] | None = None
             ) -> dict[str, np.ndarray]:
    """Masks of a SEG file, aligned to ``source_images`` (z order): segment label -> (z, y, x) bool.

    For one multi-frame source image, ``frame_numbers`` gives the 1-based frame of each z.

    Raises
    ------
    SegExportError
        When the file is not a SEG or references none of the given images.
    """
    import highdicom as hd

    try:
        seg = hd.seg.segread(str(path))
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear message
        raise SegExportError(f"{path}: not a readable DICOM SEG: {exc}") from exc
    wanted = [str(ds.SOPInstanceUID) for ds in source_images]
    referenced = {uid for _study, _series, uid in seg.get_source_image_uids()}
    if not referenced & set(wanted):
        raise SegExportError(f"{path}: the SEG references none of the {len(wanted)} given images")
    out: dict[str, np.ndarray] = {}
    if frame_numbers is not None:
        arr = seg.get_pixels_by_source_frame(wanted[0], [int(f) for f in frame_numbers], combine_segments=False,
                                             assert_missing_frames_are_empty=True, dtype=bool)
        for k, number in enumerate(seg.segment_numbers):
            out[seg.get_segment_description(number).segment_label] = np.ascontiguousarray(arr[..., k])
        return out
    present = [u for u in wanted if u in referenced]
    arr = seg.get_pixels_by_source_instance(present, combine_segments=False, dtype=bool)
    rows, cols = arr.shape[1:3]
    for k, number in enumerate(seg.segment_numbers):
        full = np.zeros((len(wanted), rows, cols), dtype=bool)
        idx = [wanted.index(u) for u in present]
        full[idx] = arr[..., k]
        out[seg.get_segment_description(number).segment_label] = full
    return out
