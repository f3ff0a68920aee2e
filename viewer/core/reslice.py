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

Extraction is a strided numpy view (no copy, O(1)), so scrolling through a reformat costs nothing here.
The planes follow the voxel grid: when the grid is oblique to the patient axes (tilted gantry,
angulated MR) a "coronal" is the grid plane closest to coronal and ``SliceGeometry.obliquity_deg``
says by how much it is off, so the viewport can label it as the acquired grid.

Index conventions: voxel index (i=column, j=row, k=slice) as in ``Volume.affine``; the array is
(z=k, y=j, x=i), so voxel axis ``a`` is array axis ``2 - a``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

PLANES: tuple[str, ...] = ("acquired", "axial", "coronal", "sagittal")

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
        Angle between the grid's slice axis and the requested plane's normal (0 for "acquired").
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


def plane_geometry(shape: tuple[int, int, int], affine: np.ndarray, plane: str) -> SliceGeometry:
    """The ``SliceGeometry`` of ``plane`` for a volume of ``shape`` (z, y, x) and LPS ``affine``.

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
        plane_normal = np.cross(dirs[:, row_axis], dirs[:, col_axis])
        cosang = abs(float(plane_normal @ normal)) / (float(np.linalg.norm(plane_normal)) or 1.0)
        obliquity = float(np.degrees(np.arccos(min(1.0, cosang))))
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
