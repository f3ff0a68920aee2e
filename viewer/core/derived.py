"""DICOM objects derived from a series, as plain records: a segmentation (SEG) or a measurement report
(SR) to draw over the series it references. No pydicom here (``viewer.annotations.derived`` reads them).

Everything is keyed by the referenced image: (SOPInstanceUID, 1-based frame number), the way a SEG frame
or an SR region names its source image; a viewer finds the slice through ``SeriesInfo.slices``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from viewer.core.series_info import SeriesInfo

ImageRef = tuple[str, int]  # (SOPInstanceUID, 1-based frame; 1 for a single-frame image)


@dataclass(frozen=True)
class SegmentMasks:
    """One segment: its label, display colour and a boolean (rows, columns) mask per source image."""

    label: str
    rgb: tuple[int, int, int]
    masks: dict[ImageRef, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class RegionOutline:
    """One SR region (or measurement) on one image: kind ("point", "line", "angle", "box", "ellipse",
    "polygon"), (column, row) pixel points, and its label."""

    image: ImageRef
    kind: str
    points: tuple[tuple[float, float], ...]
    label: str = ""


@dataclass(frozen=True)
class DerivedOverlay:
    """A SEG or SR read from a file, to be drawn over its source series.

    Attributes
    ----------
    path, kind
        Where it was read from; "SEG" or "SR".
    series_uids
        The SeriesInstanceUID(s) of the images it references.
    frame_of_reference_uid
        The SEG's FrameOfReferenceUID ("" for an SR or when absent).
    description
        SeriesDescription of the derived object (or its content label).
    segments, regions
        What to draw: SEG masks, SR outlines.
    """

    path: str
    kind: str
    series_uids: frozenset[str]
    frame_of_reference_uid: str = ""
    description: str = ""
    segments: tuple[SegmentMasks, ...] = ()
    regions: tuple[RegionOutline, ...] = ()

    def images(self) -> set[ImageRef]:
        refs: set[ImageRef] = {r.image for r in self.regions}
        for s in self.segments:
            refs.update(s.masks)
        return refs

    def applies_to(self, info: SeriesInfo) -> bool:
        """Whether this object belongs over the series ``info`` describes: it references that series and
        at least one of its images; a SEG also needs the same frame of reference when both carry one."""
        if info.series_uid not in self.series_uids:
            return False
        if (self.frame_of_reference_uid and info.frame_of_reference_uid
                and self.frame_of_reference_uid != info.frame_of_reference_uid):
            return False
        ours = {(s.sop_instance_uid, 1 if s.frame is None else s.frame + 1) for s in info.slices}
        return bool(ours & self.images())


def image_ref(info: SeriesInfo, k: int) -> ImageRef | None:
    """The (SOPInstanceUID, frame) of slice ``k`` of a series, None when unknown."""
    if not 0 <= k < len(info.slices) or not info.slices[k].sop_instance_uid:
        return None
    s = info.slices[k]
    return s.sop_instance_uid, 1 if s.frame is None else s.frame + 1
