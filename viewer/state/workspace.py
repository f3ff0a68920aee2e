"""The application model: the scanned series, the viewports and what each one shows, linked scrolling.

One place for each fact (architecture.md, napari's ``ViewerModel``): widgets observe these objects and
send intents; none keeps a copy. The whole reading workflow can be driven and tested without a window.

- :class:`Workspace`: the series the scanner found (by browser key), the four viewports, which one is
  active, the layout, whether scrolling is linked, and the AI results per series (:class:`AiResults`).
- :class:`ViewportModel`: one viewport's series, loading status, preview, volume, error and progress;
  its :class:`~viewer.state.view.ViewState` (slice, zoom, pan) over an
  :class:`~viewer.state.image.ImageState` (volume, window, measurements).

Loading is a job (``viewer.core.jobs``): :meth:`ViewportModel.start_loading`, then
:meth:`~ViewportModel.show_preview` with the one-slice preview, then :meth:`~ViewportModel.finish` with the
whole volume, which *refines* the preview in place: the slice the reader sees, the window and zoom they set
on the preview are kept. A series still arriving from a PACS (:class:`~viewer.state.arrivals.Arrival`) grows
in the same way: :meth:`~ViewportModel.grow` with each larger volume of what is stored (``ready`` says which
slices hold their values), then :meth:`~ViewportModel.finish` with the whole load.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

from viewer.core.derived import DerivedOverlay
from viewer.core.volume import Volume
from viewer.state.ai_results import AiResults
from viewer.state.arrivals import Arrivals
from viewer.state.image import ImageState
from viewer.state.observable import Observable
from viewer.state.services import SeriesSource
from viewer.state.view import ViewState
from viewer.state.volume_cache import VolumeCache

STATUSES = ("empty", "loading", "preview", "loaded", "failed")
LAYOUTS: dict[str, tuple[int, int]] = {"1x1": (1, 1), "1x2": (1, 2), "2x2": (2, 2)}
VIEWPORTS = 4


def frame_of_reference(volume: Volume | None) -> str:
    """The key that decides which series scroll together: FrameOfReferenceUID ("" when unknown).

    When the loader recorded no FrameOfReferenceUID, series of the same StudyInstanceUID are treated as
    one frame of reference (the series of one CT study share the table coordinates); series without
    either never link.
    """
    if volume is None:
        return ""
    if volume.info.frame_of_reference_uid:
        return "for:" + volume.info.frame_of_reference_uid
    if volume.info.study_uid:
        return "study:" + volume.info.study_uid
    return ""


def slice_position(volume: Volume, k: int) -> np.ndarray:
    """Patient LPS mm of the centre of slice ``k`` of ``volume``."""
    z, y, x = volume.shape
    return volume.voxel_to_patient(np.array([(x - 1) / 2.0, (y - 1) / 2.0, float(k)]))


def nearest_slice(volume: Volume, lps: np.ndarray) -> int | None:
    """Index of the slice of ``volume`` nearest to patient point ``lps`` (mm) along its slice normal.

    None when the point lies more than half a slice step outside the volume: a linked view whose series
    does not cover that position keeps its slice rather than pretending to show it.
    """
    k = float(volume.patient_to_voxel(np.asarray(lps, dtype=np.float64))[2])
    n = volume.shape[0]
    if k < -0.5 or k > n - 0.5:
        return None
    return int(min(max(round(k), 0), n - 1))


class ViewportModel(Observable):
    """One viewport. Change notifications: "series", "status", "progress".

    Attributes
    ----------
    index
        0..3, the viewport's place in the grid (row-major).
    series_key
        The workspace key of the series shown or loading, None when empty.
    status
        One of :data:`STATUSES`.
    preview, volume
        The preview while loading (one slice, or what has arrived of a series still being retrieved); the
        whole volume once loaded (never both).
    ready
        With a preview that grows as a series arrives: ``ready[k]`` says slice k of the preview holds its
        values (the others are blank until their instance is stored); None otherwise.
    error
        Why the series could not be loaded ("failed"), else None.
    progress
        (done, total) of the running load, else None.
    view
        Slice, zoom, pan and tool; ``view.image`` holds the volume shown, window and measurements.
    """

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.series_key: str | None = None
        self.status = "empty"
        self.preview: Volume | None = None
        self.volume: Volume | None = None
        self.error: str | None = None
        self.progress: tuple[int, int] | None = None
        self.preview_total = 0
        self.ready: np.ndarray | None = None
        self.view = ViewState(ImageState())

    @property
    def image(self) -> ImageState:
        return self.view.image

    @property
    def shown(self) -> Volume | None:
        """What is on screen: the volume, else the preview."""
        return self.volume if self.volume is not None else self.preview

    @property
    def busy(self) -> bool:
        return self.status in ("loading", "preview")

    def _set_status(self, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self.status = status
        self.notify("status")

    # -- intents ----------------------------------------------------------------------------------
    def start_loading(self, key: str) -> None:
        """Series ``key`` starts loading here; what was shown stays until its preview arrives."""
        with self.batch():
            self.series_key = key
            self.error = None
            self.progress = None
            self.preview = None
            self.ready = None
            self._set_status("loading")
            self.notify("series")

    def show_preview(self, preview: Volume, total: int) -> None:
        """Draw the one-slice ``preview`` of a series of ``total`` slices, with its opening window."""
        with self.batch():
            self.preview = preview
            self.preview_total = int(total)
            self.volume = None
            self.image.set_volume(preview)
            self._set_status("preview")

    def grow(self, preview: Volume, ready: np.ndarray, total: int) -> None:
        """More of the series has arrived: ``preview`` holds what is stored (``ready[k]``: slice k holds its
        values) of ``total`` instances.

        The first one is shown like a preview (opening window, first slice); each later one refines what
        is shown in place: the reader stays at the patient position they look at, with the window, zoom,
        pan and flips they set, whatever arrived before or after it.
        """
        shown = self.preview if self.preview is not None and self.image.volume is self.preview else None
        with self.batch():
            self.preview = preview
            self.preview_total = int(total)
            self.volume = None
            self.ready = np.asarray(ready, dtype=bool).copy()
            if shown is None:
                self.image.set_volume(preview)
            else:
                point = slice_position(shown, self.view.slice_index) if self.view.plane == "acquired" else None
                self.image.set_volume(preview, keep_display=True)
                target = nearest_slice(preview, point) if point is not None else None
                if target is not None and target != self.view.slice_index:  # else drawn once already
                    self.view.refine(target)
            self.notify("ready")
            if self.status != "preview":
                self._set_status("preview")

    def set_progress(self, done: int, total: int) -> None:
        self.progress = (int(done), int(total))
        self.notify("progress")

    def finish(self, volume: Volume) -> None:
        """The whole ``volume`` arrived: it replaces the preview in place.

        With a preview shown, the reader keeps what they see: the same slice (by patient position), the
        window, inversion, zoom, pan and flips they may have set while the rest loaded.
        """
        preview = self.preview
        with self.batch():
            self.preview = None
            self.volume = volume
            self.progress = None
            self.ready = None
            if preview is not None and self.image.volume is preview:
                at = self.view.slice_index if self.view.plane == "acquired" else 0
                self.image.set_volume(volume, keep_display=True)
                start = nearest_slice(volume, slice_position(preview, min(at, preview.shape[0] - 1)))
                self.view.refine(start if start is not None else 0)
            else:
                self.image.set_volume(volume)
            self._set_status("loaded")

    def fail(self, message: str) -> None:
        with self.batch():
            self.error = message
            self.preview = None
            self.ready = None
            self.volume = None
            self.progress = None
            self.image.set_volume(None)
            self._set_status("failed")

    def show_volume(self, volume: Volume, key: str | None = None, slice_index: int | None = None) -> None:
        """Show an already loaded ``volume`` (a cached series, a test phantom)."""
        with self.batch():
            self.series_key = key
            self.error = None
            self.preview = None
            self.ready = None
            self.volume = volume
            self.progress = None
            self.image.set_volume(volume)
            if slice_index is not None:
                self.view.set_slice(slice_index)
            self._set_status("loaded")
            self.notify("series")


class Workspace(Observable):
    """The application model. Change notifications: "series", "active", "layout", "linked".

    Attributes
    ----------
    series
        The series the scanner found, by key (the browser's keys: "1", "2", ... in scan order).
    viewports
        Four :class:`ViewportModel`; the layout shows the first 1, 2 or 4.
    active
        Index of the viewport keyboard and tools act on.
    layout
        "1x1", "1x2", "2x2" or "mpr" (the active viewport's volume in three planes).
    linked
        Scroll series of one frame of reference together, by patient position.
    ai
        AI results per series (:class:`AiResults`).
    arrivals
        Series being retrieved from a PACS (:class:`~viewer.state.arrivals.Arrivals`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.series: dict[str, SeriesSource] = {}
        self.viewports = [ViewportModel(i) for i in range(VIEWPORTS)]
        self.active = 0
        self.layout = "1x1"
        self.linked = True
        self.ai = AiResults()
        self.arrivals = Arrivals()
        # SEG and SR objects the reader opened: drawn over the series they reference.
        self.derived: list[DerivedOverlay] = []
        # Loaded volumes by series (LRU, bounded by memory): reopening a series does not decode it again.
        self.cache = VolumeCache()
        self._syncing = False
        for vp in self.viewports:
            vp.view.subscribe(functools.partial(self._slice_changed, vp))

    # -- series -------------------------------------------------------------------------------------
    @staticmethod
    def cache_key(source: SeriesSource) -> tuple[str, tuple[str, ...]]:
        """What identifies a loaded series for the cache: its UID and exactly its files."""
        return source.series_uid, tuple(source.files)

    def add_series(self, key: str, source: SeriesSource) -> None:
        self.series[key] = source
        self.notify("series")

    def remove_series(self, key: str) -> None:
        if self.series.pop(key, None) is not None:
            self.notify("series")

    def clear_series(self) -> None:
        self.series.clear()
        self.notify("series")

    def add_derived(self, overlay: DerivedOverlay) -> None:
        """Show ``overlay`` over its series (replacing an earlier read of the same file)."""
        self.derived = [o for o in self.derived if o.path != overlay.path] + [overlay]
        self.notify("derived")

    def derived_for(self, volume: Volume | None) -> list[DerivedOverlay]:
        return [] if volume is None else [o for o in self.derived if o.applies_to(volume.info)]

    # -- viewports ------------------------------------------------------------------------------------
    @property
    def active_viewport(self) -> ViewportModel:
        return self.viewports[self.active]

    @property
    def visible(self) -> list[ViewportModel]:
        """The viewports the layout shows (none in MPR, which shows the active one's volume)."""
        rows, cols = LAYOUTS.get(self.layout, (0, 0))
        return self.viewports[: rows * cols]

    def set_active(self, index: int) -> None:
        if not 0 <= index < VIEWPORTS:
            raise IndexError(f"viewport {index} outside 0..{VIEWPORTS - 1}")
        self.active = index
        self.notify("active")

    def set_layout(self, name: str) -> None:
        if name not in LAYOUTS and name != "mpr":
            raise ValueError(f"unknown layout {name!r}; known: {', '.join([*LAYOUTS, 'mpr'])}")
        with self.batch():
            self.layout = name
            rows, cols = LAYOUTS.get(name, (1, 1))
            if name != "mpr" and self.active >= rows * cols:
                self.set_active(0)
            self.notify("layout")

    def set_linked(self, linked: bool) -> None:
        self.linked = bool(linked)
        self.notify("linked")

    def next_free_viewport(self) -> int:
        """The active viewport in 1x1, else the first visible empty one, else the active one."""
        visible = self.visible
        if len(visible) > 1:
            for vp in visible:
                if vp.status == "empty":
                    return vp.index
        return self.active

    def loaded(self) -> Iterator[ViewportModel]:
        return (vp for vp in self.viewports if vp.shown is not None)

    # -- linked scrolling -------------------------------------------------------------------------------
    def _slice_changed(self, source: ViewportModel, changes: frozenset[str]) -> None:
        """The reader scrolled ``source``: every other visible viewport of the same frame of reference
        goes to the slice nearest to the same patient position (mm along its own normal, never by index).

        A new series arriving in a viewport ("refined" or a new volume) moves nobody else: the reader's
        place in the other viewports is kept; the newcomer joins them instead (:meth:`align_to_active`).
        """
        if "slice" not in changes or self._syncing or not self.linked:
            return
        if "reset" in changes:
            return
        vol = source.view.volume
        if vol is None or source.view.plane != "acquired":
            return
        for_uid = frame_of_reference(vol)
        if not for_uid:
            return
        point = slice_position(vol, source.view.slice_index)
        self._syncing = True
        try:
            for vp in self.visible:
                other = vp.view.volume
                if vp is source or other is None or frame_of_reference(other) != for_uid:
                    continue
                target = nearest_slice(other, point)
                if target is not None:
                    vp.view.set_slice(target)
        finally:
            self._syncing = False

    def align_to(self, newcomer: ViewportModel, reference: ViewportModel) -> None:
        """Put ``newcomer`` at ``reference``'s patient position when linked and of one frame of reference."""
        a, b = newcomer.view.volume, reference.view.volume
        if (not self.linked or newcomer is reference or a is None or b is None
                or not frame_of_reference(a) or frame_of_reference(a) != frame_of_reference(b)):
            return
        target = nearest_slice(a, slice_position(b, reference.view.slice_index))
        if target is not None:
            self._syncing = True
            try:
                newcomer.view.set_slice(target)
            finally:
                self._syncing = False
