"""Slice ordering and the voxel -> patient (LPS mm) affine of a stack of slices.

Conventions: voxel index (i=column, j=row, k=slice); ``ImageOrientationPatient`` gives the row direction
cosine (the direction of increasing column index i) then the column direction cosine (increasing row j);
``PixelSpacing`` is (row spacing = distance between rows, column spacing = distance between columns) in mm
(PS3.3 C.7.6.2.1.1), so affine column 0 = row cosine * PixelSpacing[1], column 1 = column cosine *
PixelSpacing[0]. Column 2 is the real step between consecutive slice centres taken from
ImagePositionPatient (never SliceThickness), which is sheared for a tilted gantry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

# Relative and absolute tolerances for "the same step": 1 % of the step or 0.01 mm, whichever is larger.
STEP_REL_TOL = 0.01
STEP_ABS_TOL_MM = 0.01


@dataclass
class Geometry:
    """Result of :func:`stack_geometry`.

    Attributes
    ----------
    order
        Indices into the input positions, sorted by distance along the slice normal (ascending).
    affine
        4x4 voxel (i, j, k, 1) -> LPS mm.
    warnings
        Human-readable problems (uneven spacing naming the files, tilt, duplicates).
    """

    order: list[int]
    affine: np.ndarray
    warnings: list[str] = field(default_factory=list)


def slice_normal(orientation: ArrayLike) -> np.ndarray:
    """Unit normal row_cosine x column_cosine of an ImageOrientationPatient (6 values)."""
    iop = np.asarray(orientation, dtype=np.float64)
    n = np.cross(iop[:3], iop[3:])
    norm = np.linalg.norm(n)
    if norm < 1e-6:
        raise ValueError(f"ImageOrientationPatient {list(iop)} has parallel row and column directions")
    return n / norm


def in_plane_affine(orientation: ArrayLike, pixel_spacing: Sequence[float]) -> np.ndarray:
    """4x4 affine with columns 0/1 set from orientation and spacing; column 2 the unit normal."""
    iop = np.asarray(orientation, dtype=np.float64)
    row_mm, col_mm = float(pixel_spacing[0]), float(pixel_spacing[1])
    a = np.eye(4)
    a[:3, 0] = iop[:3] * col_mm
    a[:3, 1] = iop[3:] * row_mm
    a[:3, 2] = slice_normal(iop)
    return a


def stack_geometry(positions: ArrayLike, orientation: ArrayLike,
                   pixel_spacing: Sequence[float], names: Sequence[str] | None = None,
                   single_slice_step: float | None = None) -> Geometry:
    """Sort slices along the normal and build the affine.

    Parameters
    ----------
    positions
        ImagePositionPatient (LPS mm, centre of the first transmitted pixel) of each slice, any order.
        Positions must be distinct (handle repeated positions, e.g. time points, before calling).
    orientation
        ImageOrientationPatient shared by the slices.
    pixel_spacing
        PixelSpacing (row spacing, column spacing) in mm.
    names
        Labels for the slices (file names, "file#frame") used in warnings.
    single_slice_step
        Slice step (mm) used for a single slice (SpacingBetweenSlices or SliceThickness); 1 mm if None.

    Returns
    -------
    Geometry
        Sort order, affine and warnings. The affine's column 2 is (p_last - p_first) / (n - 1): the
        mean real step between slice centres, which keeps any gantry-tilt shear.
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    n = len(pos)
    names = list(names) if names is not None else [str(i) for i in range(n)]
    affine = in_plane_affine(orientation, pixel_spacing)
    normal = affine[:3, 2].copy()
    warnings: list[str] = []
    if n == 0:
        raise ValueError("no slices")
    dist = pos @ normal
    # Stable sort so equal distances keep input order; ties are reported below.
    order = [int(i) for i in np.argsort(dist, kind="stable")]
    pos_sorted = pos[order]
    if n == 1:
        step = float(single_slice_step) if single_slice_step else 1.0
        affine[:3, 2] = normal * step
        affine[:3, 3] = pos_sorted[0]
        return Geometry(order, affine, warnings)

    steps = np.diff(pos_sorted @ normal)
    dup = np.flatnonzero(np.abs(steps) < STEP_ABS_TOL_MM)
    if dup.size:
        pairs = ", ".join(f"{names[order[i]]} / {names[order[i + 1]]}" for i in dup[:5])
        warnings.append(f"{dup.size} pair(s) of slices share a position ({pairs}); the volume is not a "
                        "regular grid")
    vec = (pos_sorted[-1] - pos_sorted[0]) / (n - 1)
    affine[:3, 2] = vec
    affine[:3, 3] = pos_sorted[0]

    along = float(vec @ normal)
    typical = float(np.median(steps)) if steps.size else along
    tol = max(STEP_ABS_TOL_MM, STEP_REL_TOL * abs(typical))
    bad = np.flatnonzero(np.abs(steps - typical) > tol)
    bad = np.setdiff1d(bad, dup)
    if bad.size:
        detail = "; ".join(f"{names[order[i]]} -> {names[order[i + 1]]}: {steps[i]:.3f} mm"
                           for i in bad[:5])
        more = f" (and {bad.size - 5} more)" if bad.size > 5 else ""
        kind = "missing slices" if np.any(steps[bad] > typical + tol) else "uneven spacing"
        warnings.append(f"{kind}: the usual step is {typical:.3f} mm but {detail}{more}; every slice keeps "
                        f"its own position (the affine's mean step {along:.3f} mm is not used to place "
                        "slices) and reformats are resampled onto an even grid")

    lateral = vec - along * normal
    lat = float(np.linalg.norm(lateral))
    if lat > max(STEP_ABS_TOL_MM / 10, 1e-3 * abs(along)):
        angle = float(np.degrees(np.arctan2(lat, abs(along))))
        warnings.append(f"gantry tilt of {angle:.2f} degrees: slices are offset in-plane by "
                        f"{lat:.3f} mm per slice; the affine is sheared (the acquired grid is kept)")
    # Slices that leave the straight line between first and last (neither tilt nor regular).
    expected = pos_sorted[0] + np.outer(np.arange(n), vec)
    off = np.linalg.norm((pos_sorted - expected) - np.outer((pos_sorted - expected) @ normal, normal),
                         axis=1)
    if float(off.max()) > max(STEP_ABS_TOL_MM, STEP_REL_TOL * abs(typical)) * 10:
        worst = int(np.argmax(off))
        warnings.append(f"slice positions are not on a line: {names[order[worst]]} is {off[worst]:.3f} mm "
                        "off in-plane")
    return Geometry(order, affine, warnings)


def planar_affine(pixel_spacing: Sequence[float] | None, orientation: ArrayLike | None = None,
                  position: ArrayLike | None = None, step: float = 1.0) -> np.ndarray:
    """Affine of an image without usable slice positions (radiograph, secondary capture).

    Missing orientation -> rows along +x (L), columns along +y (P); missing position -> origin 0;
    missing spacing -> 1 mm (the caller warns).
    """
    spacing = pixel_spacing if pixel_spacing is not None else (1.0, 1.0)
    iop = orientation if orientation is not None else (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    a = in_plane_affine(iop, spacing)
    a[:3, 2] *= step
    if position is not None:
        a[:3, 3] = np.asarray(position, dtype=np.float64)
    return a


def display_reversed(distances: Sequence[float], instances: Sequence[int], normal: ArrayLike) -> bool:
    """Whether slices sorted by ascending distance along ``normal`` are shown last-to-first.

    The first image a PACS viewer shows ("Im 1") is the file with the lowest InstanceNumber when
    InstanceNumber runs monotonically with position; otherwise the cranial end of an axial-ish stack,
    else the end acquired first (the lower InstanceNumber of the two end slices); else ascending order.

    Parameters
    ----------
    distances
        Slice distances along the normal, ascending.
    instances
        InstanceNumber of each slice in the same order (0 when absent).
    normal
        The slice normal (LPS); +z is superior (cranial).
    """
    inst = np.asarray(instances, dtype=np.int64)
    n = len(inst)
    if n < 2:
        return False
    known = bool(np.all(inst != 0)) and len(set(inst.tolist())) == n
    if known:
        d = np.diff(inst)
        # Several slices at one distance (4D volumes are sorted separately) still need a strict order.
        if bool(np.all(d > 0)):
            return False
        if bool(np.all(d < 0)):
            return True
    nrm = np.asarray(normal, dtype=np.float64)
    if abs(nrm[2]) >= max(abs(nrm[0]), abs(nrm[1])):
        return bool(nrm[2] > 0)  # ascending runs towards +z (superior): show from the top
    if inst[0] != inst[-1] and inst[0] != 0 and inst[-1] != 0:
        return bool(inst[-1] < inst[0])
    return False
