"""Measurements as plain dataclasses: what a panel lists and what the annotations layer saves.

Points are patient LPS mm, so a measurement keeps its meaning whatever the zoom, flips or pixel
spacing; ``plane`` and ``slice_index`` say on which slice of which view it was drawn.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from viewer.core import measure
from viewer.core.reslice import ResampledGeometry, SliceGeometry, plane_geometry
from viewer.core.volume import Volume, regular_grid

KINDS: tuple[str, ...] = ("distance", "angle", "rect", "ellipse")
_ids = itertools.count(1)


@dataclass
class Measurement:
    """One measurement drawn on a slice.

    Attributes
    ----------
    kind
        "distance" (2 points), "angle" (3 points: arm end, vertex, arm end), "rect" or "ellipse"
        (2 opposite corners of the bounding box, in the slice plane).
    points
        LPS mm, one (x, y, z) tuple per point.
    plane, slice_index
        The view plane (see ``viewer.core.reslice.PLANES``) and the slice it was drawn on.
    value
        Length in mm (distance), angle in degrees (angle), area in mm^2 (rect/ellipse).
    stats
        Pixel statistics (HU for CT) for rect/ellipse, else None.
    """

    kind: str
    points: list[tuple[float, float, float]]
    plane: str
    slice_index: int
    id: int = field(default_factory=lambda: next(_ids))
    label: str = ""
    value: float = 0.0
    stats: measure.RoiStats | None = None

    @property
    def unit(self) -> str:
        return {"distance": "mm", "angle": "°"}.get(self.kind, "mm²")

    def describe(self) -> str:
        """One line for a list: kind and numbers, e.g. "distance 42.3 mm"."""
        return f"{self.kind} " + self.summary().replace("\n", ", ")

    def summary(self) -> str:
        """One line for a list or an on-image label, e.g. "42.3 mm" or "mean 41.2 SD 5.0 HU ..."."""
        if self.kind == "distance":
            return f"{self.value:.1f} mm"
        if self.kind == "angle":
            return f"{self.value:.1f}°"
        s = self.stats
        if s is None or s.pixels == 0:
            return f"area {self.value:.1f} mm²"
        return (
            f"mean {s.mean:.1f} SD {s.sd:.1f}\nmin {s.min:.0f} max {s.max:.0f}\narea {self.value:.1f} mm²"
        )


def slice_coords(volume: Volume, geometry: SliceGeometry | ResampledGeometry, point: tuple[float, float, float]) -> tuple[float, float]:
    """2D (row, col) on ``geometry``'s slices of an LPS point (mm)."""
    _, row, col = geometry.from_voxel(volume.patient_to_voxel(np.asarray(point)))
    return row, col


def compute(measurement: Measurement, volume: Volume, value_unit: str = "") -> Measurement:
    """Fill ``measurement.value`` (and ``stats`` for ROIs) from its points and the volume; returns it."""
    pts = [np.asarray(p, dtype=np.float64) for p in measurement.points]
    if measurement.kind == "distance":
        measurement.value = measure.distance_mm(pts[0], pts[1])
    elif measurement.kind == "angle":
        measurement.value = measure.angle_deg(pts[0], pts[1], pts[2])
    elif measurement.kind in ("rect", "ellipse"):
        if measurement.plane != "acquired":
            volume = regular_grid(volume)  # the grid the reformat shows (ViewState.plane_volume)
        geom = plane_geometry(volume.shape, volume.affine, measurement.plane)
        (r0, c0), (r1, c1) = (slice_coords(volume, geom, (p[0], p[1], p[2])) for p in pts[:2])
        image = geom.extract(volume.array, measurement.slice_index)
        if image.ndim == 3:  # colour: statistics of the channel mean
            image = image.mean(axis=2)
        if measurement.kind == "rect":
            mask = measure.rect_mask(geom.shape, r0, c0, r1, c1)
            area = measure.rect_area_mm2(r0, c0, r1, c1, geom.row_mm, geom.col_mm)
        else:
            mask = measure.ellipse_mask(geom.shape, r0, c0, r1, c1)
            area = measure.ellipse_area_mm2(r0, c0, r1, c1, geom.row_mm, geom.col_mm)
        measurement.stats = measure.roi_stats(image, mask, area)
        measurement.value = area
    else:
        raise ValueError(f"unknown measurement kind {measurement.kind!r}; expected one of {', '.join(KINDS)}")
    return measurement
