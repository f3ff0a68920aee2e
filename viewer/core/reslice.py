"""Slicing a volume along its grid: the acquired plane and the axial/coronal/sagittal reformats.

A ``SliceGeometry`` says which voxel axis a plane walks through and how the other two map onto the
rows and columns of the 2D image, so that the standard planes come out in the usual radiological
orientation whatever the acquisition (screen right / screen down, in patient LPS):

=========  ============  ============
plane      right         down
=========  ============  ============
axial      L (+x)        P (+y)
coronal    L (+x)        F (-z)
sagittal   P (+y)        F (-z)
=========  ============  ============

"acquired" keeps the slice exactly as stored (rows down, columns right), like a PACS viewer shows it.

Extraction is a strided numpy view (no copy, O(1)) whenever the grid is aligned with the plane, so
scrolling through a reformat costs nothing here. When the grid is oblique to the patient axes by more
than ``OBLIQUE_LIMIT_DEG`` (tilted gantry, angulated MR) the standard plane is resampled in patient
space instead (``ResampledGeometry``: trilinear, square pixels, about 50 ms for a 512^2 cut of a
512x512x134 volume); ``obliquity_deg`` and ``resampled`` say so, so the viewport can label it.
The acquired plane always shows the stored slices.

Index conventions: voxel index (i=column, j=row, k=slice) as in ``Volume.affine``; the array is
(z=k, y=j, x=i), so voxel axis ``a`` is array axis ``2 - a``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

PLANES: tuple[str, ...] = ("acquired", "axial", "coronal", "sagittal")

# Beyond this angle between a standard plane and the nearest grid plane, the plane is resampled in
# patient space; below it the grid plane is shown (sub-degree tilts are rounding in the headers).
OBLIQUE_LIMIT_DEG = 1.0

# (screen-right, screen-down, plane normal) in LPS for the standard planes.
_TARGETS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)),
}


@dataclass(frozen=True)
class SliceGeometry:
    """How one plane maps a volume's voxel grid to 2D slices.

    Attributes
    ----------
    plane
        One of ``PLANES``.
    slice_axis, row_axis, col_axis
        Voxel axes (0=i, 1=j, 2=k) walked by the slice index, the 2D rows and the 2D columns.
    row_reversed, col_reversed
        True when the 2D rows (columns) run against the voxel axis, to put the patient the usual way up.
    count
        Number of slices.
    shape
        (rows, cols) of each 2D slice.
    row_mm, col_mm, slice_mm
        Pixel height, pixel width and slice step in mm.
    row_dir, col_dir
        Unit LPS directions of increasing 2D row and column.
    normal
        Unit LPS normal used for the slice position: the patient axis (x, y or z) closest to the plane
        normal, pointing to its positive (L, P, H) side.
    obliquity_deg
        How far the grid plane is from the requested one: the largest of the angles between the plane
        normals and between the row and column directions and the standard ones (0 for "acquired").
    """

    plane: str
    slice_axis: int
    row_axis: int
    col_axis: int
    row_reversed: bool
    col_reversed: bool
    count: int
    shape: tuple[int, int]
    row_mm: float
    col_mm: float
    slice_mm: float
    row_dir: tuple[float, float, float]
    col_dir: tuple[float, float, float]
    normal: tuple[float, float, float]
    obliquity_deg: float
    resampled: bool = False

    def extract(self, array: np.ndarray, index: int) -> np.ndarray:
        """The 2D slice ``index`` of ``array`` (z, y, x[, 3]) as a view, rows x cols[ x 3]."""
        if not 0 <= index < self.count:
            raise IndexError(f"slice {index} out of range 0..{self.count - 1} for the {self.plane} plane")
        sl: list[int | slice] = [slice(None)] * 3
        sl[2 - self.slice_axis] = index
        out = array[tuple(sl)]
        # The two remaining array axes are in array order (descending voxel axis); put rows first.
        remaining = [a for a in (2, 1, 0) if a != self.slice_axis]
        if remaining[0] != self.row_axis:
            out = np.swapaxes(out, 0, 1)
        if self.row_reversed:
            out = out[::-1]
        if self.col_reversed:
            out = out[:, ::-1]
        return out

    def to_voxel(self, index: float, row: float, col: float) -> np.ndarray:
        """Continuous voxel (i, j, k) of a point on slice ``index`` at 2D (row, col)."""
        n_rows, n_cols = self.shape
        ijk = np.zeros(3, dtype=np.float64)
        ijk[self.slice_axis] = index
        ijk[self.row_axis] = (n_rows - 1 - row) if self.row_reversed else row
        ijk[self.col_axis] = (n_cols - 1 - col) if self.col_reversed else col
        return ijk

    def from_voxel(self, ijk: np.ndarray) -> tuple[float, float, float]:
        """(slice index, row, col), continuous, of voxel (i, j, k); the inverse of ``to_voxel``."""
        n_rows, n_cols = self.shape
        ijk = np.asarray(ijk, dtype=np.float64)
        row = float(ijk[self.row_axis])
        col = float(ijk[self.col_axis])
        if self.row_reversed:
            row = n_rows - 1 - row
        if self.col_reversed:
            col = n_cols - 1 - col
        return float(ijk[self.slice_axis]), row, col


def _unit_columns(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cols = np.asarray(affine, dtype=np.float64)[:3, :3]
    norms = np.linalg.norm(cols, axis=0)
    # A degenerate single-slice volume may carry a zero slice column; give it the row x column normal.
    if norms[2] == 0.0:
        n = np.cross(cols[:, 0], cols[:, 1])
        cols = cols.copy()
        cols[:, 2] = n / (np.linalg.norm(n) or 1.0)
        norms[2] = 1.0
    return cols / np.where(norms == 0.0, 1.0, norms), norms


def plane_geometry(
    shape: tuple[int, int, int], affine: np.ndarray, plane: str, resample_oblique: bool = True
) -> SliceGeometry | ResampledGeometry:
    """The geometry of ``plane`` for a volume of ``shape`` (z, y, x) and LPS ``affine``.

    A standard plane that the voxel grid misses by more than ``OBLIQUE_LIMIT_DEG`` (tilted gantry,
    angulated MR) is resampled in patient space (``ResampledGeometry``) when ``resample_oblique``;
    otherwise, and for "acquired", it is a grid plane (``SliceGeometry``, strided views).

    Raises
    ------
    ValueError
        For an unknown plane name.
    """
    if plane not in PLANES:
        raise ValueError(f"unknown plane {plane!r}; expected one of {', '.join(PLANES)}")
    dirs, norms = _unit_columns(affine)
    counts = (int(shape[2]), int(shape[1]), int(shape[0]))  # voxels along i, j, k
    if plane == "acquired":
        slice_axis, row_axis, col_axis = 2, 1, 0
        row_rev = col_rev = False
        obliquity = 0.0
    else:
        right, down, normal = (np.array(v) for v in _TARGETS[plane])
        # Slice through the grid axis most parallel to the plane normal (the slice axis may be sheared
        # by a gantry tilt; the in-plane axes decide, so score by the in-plane fit as well).
        best: tuple[float, int, int, int] | None = None
        for s, r, c in itertools.permutations(range(3)):
            score = abs(dirs[:, c] @ right) + abs(dirs[:, r] @ down)
            if best is None or score > best[0] + 1e-9:
                best = (score, s, r, c)
        assert best is not None
        _, slice_axis, row_axis, col_axis = best
        row_rev = bool(dirs[:, row_axis] @ down < 0)
        col_rev = bool(dirs[:, col_axis] @ right < 0)
        # How far the grid plane is from the standard one: the tilt of its normal, or an in-plane turn
        # of its rows or columns (an angulated MR sagittal), whichever is larger.
        plane_normal = np.cross(dirs[:, row_axis], dirs[:, col_axis])
        cos_normal = abs(float(plane_normal @ normal)) / (float(np.linalg.norm(plane_normal)) or 1.0)
        cos_rows = abs(float(dirs[:, row_axis] @ down))
        cos_cols = abs(float(dirs[:, col_axis] @ right))
        obliquity = float(np.degrees(np.arccos(min(1.0, cos_normal, cos_rows, cos_cols))))
    if resample_oblique and plane != "acquired" and obliquity > OBLIQUE_LIMIT_DEG:
        return resampled_geometry(shape, affine, plane, obliquity)
    row_dir = dirs[:, row_axis] * (-1.0 if row_rev else 1.0)
    col_dir = dirs[:, col_axis] * (-1.0 if col_rev else 1.0)
    n = np.cross(col_dir, row_dir)
    axis = int(np.argmax(np.abs(n)))
    normal_axis = np.zeros(3)
    normal_axis[axis] = 1.0
    return SliceGeometry(
        plane=plane,
        slice_axis=slice_axis,
        row_axis=row_axis,
        col_axis=col_axis,
        row_reversed=row_rev,
        col_reversed=col_rev,
        count=counts[slice_axis],
        shape=(counts[row_axis], counts[col_axis]),
        row_mm=float(norms[row_axis]),
        col_mm=float(norms[col_axis]),
        slice_mm=float(norms[slice_axis]),
        row_dir=tuple(float(v) for v in row_dir),  # type: ignore[arg-type]
        col_dir=tuple(float(v) for v in col_dir),  # type: ignore[arg-type]
        normal=tuple(float(v) for v in normal_axis),  # type: ignore[arg-type]
        obliquity_deg=obliquity,
    )


def repair_affine(affine: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An invertible LPS affine for display, and a warning when ``affine`` had to be changed.

    Files in the wild carry PixelSpacing "0\\0" (pydicom-data's RG1_J2KI.dcm) or no orientation; a
    zero or non-finite column would make the view collapse to nothing and mouse mapping divide by
    zero. Such a column becomes 1 mm along the default axis (rows +x, columns +y, slices their
    normal), which is what viewers show for an image without geometry.
    """
    a = np.array(affine, dtype=np.float64)
    problems = []
    defaults = (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    for col in (0, 1):
        v = a[:3, col]
        if not np.all(np.isfinite(v)) or np.linalg.norm(v) == 0.0:
            a[:3, col] = defaults[col]
            problems.append(("column", "row")[col] + " spacing")
    v = a[:3, 2]
    if not np.all(np.isfinite(v)) or np.linalg.norm(v) == 0.0:
        n = np.cross(a[:3, 0], a[:3, 1])
        a[:3, 2] = n / (np.linalg.norm(n) or 1.0)
        problems.append("slice step")
    if not np.all(np.isfinite(a[:3, 3])):
        a[:3, 3] = 0.0
        problems.append("origin")
    if abs(np.linalg.det(a[:3, :3])) < 1e-12:
        spacing = np.linalg.norm(a[:3, :3], axis=0)
        a[:3, :3] = np.diag(np.where(spacing > 0, spacing, 1.0))
        problems.append("orientation (axes not independent)")
    if not problems:
        return np.asarray(affine, dtype=np.float64), None
    return a, "geometry unusable (" + ", ".join(problems) + "): shown with 1 mm pixels where missing; lengths may be wrong"


@dataclass(frozen=True)
class ResampledGeometry:
    """A standard plane cut through an oblique grid in patient space, by trilinear interpolation.

    Same interface as ``SliceGeometry`` (``extract``, ``to_voxel``, ``from_voxel``, sizes in mm,
    directions in LPS). Pixels are square, ``pixel_mm`` on a side (the finest in-plane voxel
    spacing); slices are ``slice_mm`` apart along ``normal`` and cover the volume's bounding box.
    Samples outside the volume get ``fill`` (the volume minimum, e.g. air).

    Attributes
    ----------
    origin
        LPS mm of pixel (row 0, col 0) of slice 0.
    inverse
        4x4 inverse of the volume affine (LPS mm -> voxel i, j, k).
    """

    plane: str
    count: int
    shape: tuple[int, int]
    row_mm: float
    col_mm: float
    slice_mm: float
    row_dir: tuple[float, float, float]
    col_dir: tuple[float, float, float]
    normal: tuple[float, float, float]
    obliquity_deg: float
    origin: tuple[float, float, float]
    inverse: tuple[tuple[float, ...], ...]
    resampled: bool = True

    def _lps(self, index: float, row: float, col: float) -> np.ndarray:
        return (
            np.asarray(self.origin)
            + index * self.slice_mm * np.asarray(self.normal)
            + row * self.row_mm * np.asarray(self.row_dir)
            + col * self.col_mm * np.asarray(self.col_dir)
        )

    def to_voxel(self, index: float, row: float, col: float) -> np.ndarray:
        """Continuous voxel (i, j, k) of a point on slice ``index`` at 2D (row, col)."""
        inv = np.asarray(self.inverse)
        return np.asarray(inv[:3, :3] @ self._lps(index, row, col) + inv[:3, 3], dtype=np.float64)

    def from_voxel(self, ijk: np.ndarray) -> tuple[float, float, float]:
        """(slice index, row, col), continuous, of voxel (i, j, k)."""
        aff = np.linalg.inv(np.asarray(self.inverse))
        d = aff[:3, :3] @ np.asarray(ijk, dtype=np.float64) + aff[:3, 3] - np.asarray(self.origin)
        return (
            float(d @ np.asarray(self.normal)) / self.slice_mm,
            float(d @ np.asarray(self.row_dir)) / self.row_mm,
            float(d @ np.asarray(self.col_dir)) / self.col_mm,
        )

    def extract(self, array: np.ndarray, index: int) -> np.ndarray:
        """Slice ``index`` resampled from ``array`` (z, y, x[, 3]); integer input stays integer.

        Colour is sampled nearest-neighbour (interpolating RGB triplets invents colours).
        """
        if not 0 <= index < self.count:
            raise IndexError(f"slice {index} out of range 0..{self.count - 1} for the {self.plane} plane")
        rows, cols = self.shape
        inv = np.asarray(self.inverse)[:3, :3]
        ijk0 = self.to_voxel(index, 0, 0)
        d_row = inv @ (np.asarray(self.row_dir) * self.row_mm)
        d_col = inv @ (np.asarray(self.col_dir) * self.col_mm)
        r = np.arange(rows, dtype=np.float32)[:, None]
        c = np.arange(cols, dtype=np.float32)[None, :]
        coords = [np.float32(ijk0[a]) + r * np.float32(d_row[a]) + c * np.float32(d_col[a]) for a in range(3)]
        return sample(array, coords[0], coords[1], coords[2], nearest=array.ndim == 4)


def sample(array: np.ndarray, i: np.ndarray, j: np.ndarray, k: np.ndarray, nearest: bool = False) -> np.ndarray:
    """Values of ``array`` (z, y, x[, 3]) at continuous voxel indices (trilinear; outside -> minimum).

    Integer arrays give integers of the same dtype (rounded), so windowing keeps its lookup table.
    """
    nz, ny, nx = array.shape[:3]
    fill = array.min()
    inside = (i > -0.5) & (i < nx - 0.5) & (j > -0.5) & (j < ny - 0.5) & (k > -0.5) & (k < nz - 0.5)
    if nearest:
        ii = np.clip(np.rint(i), 0, nx - 1).astype(np.intp)
        jj = np.clip(np.rint(j), 0, ny - 1).astype(np.intp)
        kk = np.clip(np.rint(k), 0, nz - 1).astype(np.intp)
        picked: np.ndarray = array[kk, jj, ii]
        picked[~inside] = fill
        return picked
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    # Only the pixels inside the volume are interpolated (an oblique cut is often half outside); their
    # eight neighbours are fixed offsets from one flat index, gathered with ``take`` (about 2x faster
    # than 3-index fancy indexing; 20-35 ms instead of 40-50 ms for a 512 x 613 cut).
    out = np.full(i.shape, fill, dtype=np.float32)
    # Clamp to the edge voxels' centres, so the half-voxel rim interpolates like its neighbour.
    ii = np.clip(i[inside], 0, nx - 1)
    jj = np.clip(j[inside], 0, ny - 1)
    kk = np.clip(k[inside], 0, nz - 1)
    # The coordinates are >= 0 here, so truncation is floor; the lower corner stays one below the edge so
    # that corner + 1 is inside (a clamped coordinate then gets weight 1 on the edge voxel).
    i0 = np.minimum(ii.astype(np.intp), max(nx - 2, 0))
    j0 = np.minimum(jj.astype(np.intp), max(ny - 2, 0))
    k0 = np.minimum(kk.astype(np.intp), max(nz - 2, 0))
    fi, fj, fk = ii - i0, jj - j0, kk - k0
    flat = array.reshape(-1)
    dx, dy, dz = int(nx > 1), nx if ny > 1 else 0, nx * ny if nz > 1 else 0
    base = k0 * (nx * ny) + j0 * nx + i0

    def along_x(b: np.ndarray) -> np.ndarray:
        lo: np.ndarray = flat.take(b).astype(np.float32)
        mixed: np.ndarray = lo + (flat.take(b + dx) - lo) * fi
        return mixed

    c00, c01 = along_x(base), along_x(base + dy)
    c10, c11 = along_x(base + dz), along_x(base + dz + dy)
    c0 = c00 + (c01 - c00) * fj
    c1 = c10 + (c11 - c10) * fj
    out[inside] = c0 + (c1 - c0) * fk
    if np.issubdtype(array.dtype, np.integer):
        rounded: np.ndarray = np.rint(out).astype(array.dtype)
        return rounded
    same: np.ndarray = out.astype(array.dtype, copy=False)
    return same


def resampled_geometry(
    shape: tuple[int, int, int], affine: np.ndarray, plane: str, obliquity_deg: float = 0.0
) -> ResampledGeometry:
    """The patient-space ``ResampledGeometry`` of a standard ``plane`` covering the whole volume."""
    right, down, normal = (np.array(v, dtype=np.float64) for v in _TARGETS[plane])
    a = np.asarray(affine, dtype=np.float64)
    norms = np.linalg.norm(a[:3, :3], axis=0)
    pixel = float(min(norms[0], norms[1]))
    # Step between slices: the grid's spacing along the normal, from the axis closest to it.
    along = np.abs((a[:3, :3] / np.where(norms == 0, 1, norms)).T @ normal)
    step = float(norms[int(np.argmax(along))] * along.max()) or pixel
    z, y, x = shape
    corners = np.array([[ci, cj, ck] for ci in (-0.5, x - 0.5) for cj in (-0.5, y - 0.5) for ck in (-0.5, z - 0.5)])
    lps = corners @ a[:3, :3].T + a[:3, 3]
    lo = np.array([(lps @ right).min(), (lps @ down).min(), (lps @ normal).min()])
    hi = np.array([(lps @ right).max(), (lps @ down).max(), (lps @ normal).max()])
    cols = max(1, int(np.ceil((hi[0] - lo[0]) / pixel)))
    rows = max(1, int(np.ceil((hi[1] - lo[1]) / pixel)))
    count = max(1, int(np.ceil((hi[2] - lo[2]) / step)))
    # Pixel centres half a pixel inside the box.
    origin = right * (lo[0] + pixel / 2) + down * (lo[1] + pixel / 2) + normal * (lo[2] + step / 2)
    inv = np.linalg.inv(a)
    return ResampledGeometry(
        plane=plane,
        count=count,
        shape=(rows, cols),
        row_mm=pixel,
        col_mm=pixel,
        slice_mm=step,
        row_dir=(float(down[0]), float(down[1]), float(down[2])),
        col_dir=(float(right[0]), float(right[1]), float(right[2])),
        normal=(float(normal[0]), float(normal[1]), float(normal[2])),
        obliquity_deg=float(obliquity_deg),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        inverse=tuple(tuple(float(v) for v in row) for row in inv),
    )
