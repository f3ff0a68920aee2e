"""Read a DICOM SEG or SR file into a :class:`~viewer.core.derived.DerivedOverlay` to draw over its series.

SEG: every segment's frames, each keyed by the source image (SOPInstanceUID, frame) it was derived from
(highdicom's ``get_pixels_by_source_instance`` / ``..._by_source_frame``). SR: the planar regions of a
TID 1500 measurement report (:func:`viewer.annotations.sr.read_sr`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from viewer.core.derived import DerivedOverlay, RegionOutline, SegmentMasks

# A colour per segment when the SEG gives none (Okabe-Ito).
_PALETTE = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
            (204, 121, 167))


class DerivedError(ValueError):
    """The file is not a SEG or SR this viewer can draw (the message says why)."""


def read_derived(path: str | Path) -> DerivedOverlay:
    """The SEG or SR at ``path`` as an overlay record.

    Raises
    ------
    DerivedError
        Not DICOM, neither SEG nor a TID 1500 SR, or referencing no image.
    """
    import pydicom

    try:
        head = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - one clear message for any unreadable file
        raise DerivedError(f"{path}: not a readable DICOM file: {exc}") from exc
    modality = str(head.get("Modality", ""))
    if modality == "SEG":
        return _read_seg(path)
    if modality == "SR":
        return _read_sr(path, head)
    raise DerivedError(f"{path}: a {modality or 'non-DICOM-SEG/SR'} object, not a segmentation (SEG) or report (SR)")


def _read_seg(path: str | Path) -> DerivedOverlay:
    import highdicom as hd

    try:
        seg = hd.seg.segread(str(path))
        sources = list(seg.get_source_image_uids())
    except Exception as exc:  # noqa: BLE001
        raise DerivedError(f"{path}: not a readable DICOM SEG: {exc}") from exc
    if not sources:
        raise DerivedError(f"{path}: the SEG references no source image")
    uids = list(dict.fromkeys(str(uid) for _study, _series, uid in sources))
    numbers = list(seg.segment_numbers)
    segments = []
    if len(uids) == 1 and int(seg.get("NumberOfFrames", 1) or 1) > 1 and _multiframe_source(seg):
        # One multi-frame source image: frames are referenced by number.
        frames = sorted({int(f) for f in _source_frames(seg)})
        arr = seg.get_pixels_by_source_frame(uids[0], frames, combine_segments=False, dtype=bool)
        refs = [(uids[0], f) for f in frames]
    else:
        arr = seg.get_pixels_by_source_instance(uids, combine_segments=False, dtype=bool)
        refs = [(u, 1) for u in uids]
    for j, number in enumerate(numbers):
        desc = seg.get_segment_description(number)
        rgb = _PALETTE[j % len(_PALETTE)]
        lab = getattr(desc, "RecommendedDisplayCIELabValue", None)
        if lab is not None:
            rgb = _cielab_to_rgb([int(v) for v in lab])
        masks = {ref: np.ascontiguousarray(arr[i, ..., j]) for i, ref in enumerate(refs) if arr[i, ..., j].any()}
        segments.append(SegmentMasks(str(desc.segment_label), rgb, masks))
    series = frozenset(str(s) for _study, s, _uid in sources)
    return DerivedOverlay(str(path), "SEG", series, str(seg.get("FrameOfReferenceUID", "") or ""),
                          str(seg.get("SeriesDescription", "") or "segmentation"), segments=tuple(segments))


def _multiframe_source(seg: object) -> bool:
    return any(True for _ in _source_frames(seg))


def _source_frames(seg: object) -> list[int]:
    out: list[int] = []
    for item in getattr(seg, "PerFrameFunctionalGroupsSequence", []) or []:
        for der in item.get("DerivationImageSequence", []) or []:
            for src in der.get("SourceImageSequence", []) or []:
                n = src.get("ReferencedFrameNumber")
                if n not in (None, ""):
                    out.extend(int(v) for v in (n if isinstance(n, (list, tuple)) or hasattr(n, "__iter__")
                                                 and not isinstance(n, str) else [n]))
    return out


def _cielab_to_rgb(lab16: list[int]) -> tuple[int, int, int]:
    """DICOM's 16-bit scaled CIELab (PS3.3 C.10.7.1.1) to 8-bit sRGB."""
    import highdicom as hd

    try:
        r, g, b = hd.color.CIELabColor.from_dicom_value(lab16).to_rgb()
        return int(r), int(g), int(b)
    except Exception:  # noqa: BLE001 - an odd colour is not worth refusing the segmentation
        return _PALETTE[0]


def _read_sr(path: str | Path, head: object) -> DerivedOverlay:
    from viewer.annotations.sr import SrError, read_sr

    try:
        rois = read_sr(path)
    except SrError as exc:
        raise DerivedError(str(exc)) from exc
    if not rois:
        raise DerivedError(f"{path}: the report holds no image region to draw")
    regions = tuple(RegionOutline((r.key.sop_uid, r.key.frame), r.kind, r.points, r.label) for r in rois)
    series = frozenset(r.key.series_uid for r in rois if r.key.series_uid)
    return DerivedOverlay(str(path), "SR", series, "", str(getattr(head, "SeriesDescription", "") or "report"),
                          regions=regions)
