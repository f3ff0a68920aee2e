"""Per-viewport state: which plane and slice, zoom, pan, flips and rotation, and the active tool."""

from __future__ import annotations

import numpy as np

from viewer.core.orientation import DisplayTransform
from viewer.core.reslice import PLANES, ResampledGeometry, SliceGeometry, plane_geometry
from viewer.core.volume import Volume, regular_grid
from viewer.state.image import ImageState
from viewer.state.observable import Observable

TOOLS: tuple[str, ...] = ("window", "pan", "zoom", "distance", "angle", "rect", "ellipse", "crosshair")


class ViewState(Observable):
    """One viewport's view of an ``ImageState``.

    Change notifications: "plane", "slice", "view" (zoom, pan, flips, rotation), "tool"; the shared
    image state notifies its own changes separately.

    Attributes
    ----------
    image
        The shared ``ImageState`` (volume, window, crosshair, measurements).
    plane
        "acquired", "axial", "coronal" or "sagittal" (see ``viewer.core.reslice``).
    slice_index
        Current slice of the plane, 0-based.
    zoom
        Magnification relative to "fit the slice in the viewport" (1.0).
    pan
        (x, y) offset in mm of the view centre from the slice centre, in screen directions.
    transform
        Flips and quarter turns (``DisplayTransform``).
    tool
        What the left button does: one of ``TOOLS``.
    """

    def __init__(self, image: ImageState | None = None, plane: str = "acquired") -> None:
        super().__init__()
        if plane not in PLANES:
            raise ValueError(f"unknown plane {plane!r}; expected one of {', '.join(PLANES)}")
        self.image = image if image is not None else ImageState()
        self.plane = plane
        self.slice_index = 0
        self.zoom = 1.0
        self.pan = (0.0, 0.0)
        self.transform = DisplayTransform()
        self.tool = "window"
        self._geometry: SliceGeometry | ResampledGeometry | None = None
        self._geometry_key: tuple[int, str] | None = None
        self._slice_cache: tuple[tuple[int, int], np.ndarray] | None = None
        self._unsubscribe_image = self.image.subscribe(self._image_changed)
        if self.image.volume is not None:
            self._reset_slice()

    def detach(self) -> None:
        """Stop following the image state (an MPR plane closed while its image state lives on)."""
        self._unsubscribe_image()
        self._slice_cache = None

    # -- derived ------------------------------------------------------------------------------------
    @property
    def volume(self) -> Volume | None:
        return self.image.volume

    def plane_volume(self) -> Volume | None:
        """The volume this plane cuts: the loaded one, or for a reformat of slices that one affine cannot
        describe (interleaved, overlapping, uneven), its resampling onto an even grid (cached)."""
        vol = self.image.volume
        if vol is None or self.plane == "acquired":
            return vol
        return regular_grid(vol)  # the volume itself when regular; cached on the volume otherwise

    @property
    def geometry(self) -> SliceGeometry | ResampledGeometry | None:
        """The current plane's geometry (cached per volume and plane)."""
        vol = self.plane_volume()
        if vol is None:
            return None
        key = (id(vol), self.plane)
        if self._geometry_key != key:
            self._geometry = plane_geometry(vol.shape, vol.affine, self.plane)
            self._geometry_key = key
            self._slice_cache = None
        return self._geometry

    @property
    def slice_count(self) -> int:
        g = self.geometry
        return g.count if g is not None else 0

    def slice_array(self) -> np.ndarray | None:
        """The current slice in modality units, as stored for the plane (before flips), a view."""
        g = self.geometry
        vol = self.plane_volume()
        if g is None or vol is None:
            return None
        if not g.resampled:
            return g.extract(vol.array, self.slice_index)  # a strided view: free
        # A resampled slice costs milliseconds: keep the last one for window drags and hovering.
        key = (id(g), self.slice_index)
        if self._slice_cache is None or self._slice_cache[0] != key:
            self._slice_cache = (key, g.extract(vol.array, self.slice_index))
        return self._slice_cache[1]

    def slice_position_mm(self, index: int | None = None) -> float:
        """Position of a slice (default the current) along the plane's patient axis, mm (LPS sign)."""
        g, vol = self.geometry, self.plane_volume()
        if g is None or vol is None:
            return 0.0
        idx = self.slice_index if index is None else index
        rows, cols = g.shape
        centre = vol.voxel_to_patient(g.to_voxel(idx, (rows - 1) / 2, (cols - 1) / 2))
        return float(centre @ np.asarray(g.normal))

    def point_to_lps(self, row: float, col: float, index: int | None = None) -> np.ndarray:
        """LPS mm of 2D slice (row, col) on slice ``index`` (default the current)."""
        g, vol = self.geometry, self.plane_volume()
        if g is None or vol is None:
            raise RuntimeError("no volume")
        idx = self.slice_index if index is None else index
        return vol.voxel_to_patient(g.to_voxel(idx, row, col))

    def lps_to_point(self, lps: np.ndarray) -> tuple[float, float, float]:
        """(slice index, row, col), continuous, of an LPS point (mm) in this plane."""
        g, vol = self.geometry, self.plane_volume()
        if g is None or vol is None:
            raise RuntimeError("no volume")
        return g.from_voxel(vol.patient_to_voxel(np.asarray(lps, dtype=np.float64)))

    # -- changes ------------------------------------------------------------------------------------
    def _image_changed(self, changes: frozenset[str]) -> None:
        if "pixels" in changes:
            # Another volume of a 4D series: same grid, so slice, zoom and pan stay; cached cuts go.
            self._geometry_key = None
            self._slice_cache = None
            self.notify("slice")
        if "refined" in changes:
            # The same series, more of it (the whole volume after its preview): the reader's zoom, pan
            # and flips stay; the owner places the slice (:meth:`refine`).
            self._geometry_key = None
            self._slice_cache = None
            self.notify("slice", "reset")
        elif "volume" in changes:
            self._geometry_key = None
            with self.batch():
                self._reset_slice()
                self.reset_view()
                # "reset": the slice moved because the volume changed, not because the reader scrolled
                # (linked views do not follow it).
                self.notify("reset")

    def refine(self, slice_index: int) -> None:
        """After a refining volume: show ``slice_index`` without counting it as the reader's scroll."""
        n = self.slice_count
        self.slice_index = int(np.clip(slice_index, 0, max(n - 1, 0)))
        self.notify("slice", "reset")

    def _reset_slice(self) -> None:
        n = self.slice_count
        if self.plane == "acquired":
            # Readers start a stack at its first image; reformats start at the crosshair (the middle).
            self.slice_index = 0
        else:
            self.slice_index = max(0, n // 2)
            if self.image.crosshair is not None:
                self.slice_index = int(np.clip(round(self.lps_to_point(self.image.crosshair)[0]), 0, max(n - 1, 0)))
        self.notify("slice")

    def set_plane(self, plane: str) -> None:
        if plane not in PLANES:
            raise ValueError(f"unknown plane {plane!r}; expected one of {', '.join(PLANES)}")
        if plane != self.plane:
            with self.batch():
                self.plane = plane
                self._reset_slice()
                self.reset_view()
                self.notify("plane")

    def set_slice(self, index: int) -> None:
        """Go to slice ``index``, clamped to the plane's range."""
        n = self.slice_count
        index = int(np.clip(index, 0, max(n - 1, 0)))
        if index != self.slice_index:
            self.slice_index = index
            self.notify("slice")

    def step_slice(self, delta: int) -> None:
        self.set_slice(self.slice_index + int(delta))

    def set_slice_at(self, lps: np.ndarray) -> None:
        """Go to the slice nearest to an LPS point (mm): linked scrolling by position, not index."""
        if self.geometry is not None:
            self.set_slice(int(round(self.lps_to_point(lps)[0])))

    def set_zoom(self, zoom: float) -> None:
        zoom = float(np.clip(zoom, 0.05, 64.0))
        if zoom != self.zoom:
            self.zoom = zoom
            self.notify("view")

    def set_pan(self, x_mm: float, y_mm: float) -> None:
        if (x_mm, y_mm) != self.pan:
            self.pan = (float(x_mm), float(y_mm))
            self.notify("view")

    def set_transform(self, transform: DisplayTransform) -> None:
        if transform != self.transform:
            self.transform = transform
            self.notify("view")

    def flip(self, horizontal: bool) -> None:
        """Mirror the image on screen (left-right when ``horizontal``)."""
        self.set_transform(self.transform.flipped_on_screen(horizontal))

    def rotate(self, quarter_turns: int) -> None:
        """Turn the image on screen by quarter turns, clockwise positive."""
        self.set_transform(self.transform.rotated(quarter_turns))

    def reset_view(self) -> None:
        """Zoom to fit, no pan, no flips or rotation (the window is kept; key 0 restores it)."""
        self.zoom = 1.0
        self.pan = (0.0, 0.0)
        self.transform = DisplayTransform()
        self.notify("view")

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")
        if tool != self.tool:
            self.tool = tool
            self.notify("tool")
