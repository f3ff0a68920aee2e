"""Display filters on the viewport (mean, median, Gaussian, bilateral, and image-to-image models such as the
shipped denoiser ``ct-denoise``): the Filter toolbar menu, the F / Shift+F keys, the split view, the hook.

A filter changes only what is drawn, never the pixels in state (measurements, the pixel readout and AI
read the original). Off by default; the corner text names the filter while one is on.

- **2-D** (1x1, 1x2, 2x2 layouts): the slice on screen is filtered in a worker
  (:class:`viewer.ui.workers.Background`); the original stays on screen until the result arrives. Each
  result is kept per slice (:class:`SliceCache`, bounded in bytes), so scrolling back, toggling the filter
  off and on, or redrawing after a window change costs nothing. A model runs tile by tile
  (``Inference.image_to_image``).
- **3-D** (MPR): the three planes share one :class:`VolumeFilters`, which filters the whole volume once
  in a worker, with progress in the corner text (SimpleITK's 3-D filters with true spacing through
  ``IoServices.filter_volume``; a model runs on every acquired slice), and each plane shows its reformat of
  the filtered volume.
- **Toggle and split** (:class:`FilterControls`): F switches between the original and the last filter
  chosen (the denoiser when none was, if one is installed); Shift+F is the split view: the original left
  of a vertical divider, the filtered image right of it, on the same slice, zoom and pan (the curtain of
  before/after comparisons, in one viewport, so a 1x2 or 2x2 layout keeps its other series). The divider
  is dragged with the mouse.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QToolButton, QWidget

from viewer.core.filters import PRESETS, DisplayFilter, volume_label
from viewer.core.volume import Volume
from viewer.state.services import Inference, Manifest
from viewer.ui.workers import Background

#: Filtered slices kept per viewport (float32: a 512x512 slice is 1 MiB).
SLICE_CACHE_BYTES = 128 * 1024 * 1024
#: Filtered volumes kept per MPR view: the last one (F off and on again shows it at once; another filter
#: replaces it, a 134-slice CT filtered is 140 MB of float32).
VOLUMES_KEPT = 1


class ModelFilter:
    """An image-to-image model used as a display filter (hashable by the model file's sha256), run by the
    application's :class:`~viewer.state.services.Inference`."""

    def __init__(self, manifest: Manifest, inference: Inference) -> None:
        self.manifest, self.inference = manifest, inference
        self.label = f"filter: {manifest.id} {manifest.version}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelFilter) and other.manifest.sha256 == self.manifest.sha256

    def __hash__(self) -> int:
        return hash(self.manifest.sha256)

    def refusal(self, volume: Volume | None) -> str:
        """Why the model is not run on ``volume`` ("" when it is): it is trained for other modalities."""
        wanted = tuple(self.manifest.applies_to.modalities)
        if volume is None or not wanted or volume.modality.upper() in wanted:
            return "" if volume is None or not volume.is_color else "not for colour images"
        return f"not applied: {'/'.join(wanted)} only, this is {volume.modality or 'no modality'}"

    def apply(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.apply_volume(np.asarray(x, dtype=np.float32)[None])[0]
        return out

    def apply_volume(self, array: np.ndarray, progress: Callable[[int, int], None] | None = None,
                     cancel: Callable[[], bool] | None = None) -> np.ndarray:
        """The model on every slice of a (z, y, x) array, in modality units (in the worker: the session is
        created there, once)."""
        return self.inference.image_to_image(self.manifest, array, progress=progress, cancel=cancel)


AnyFilter = DisplayFilter | ModelFilter


def short_name(f: AnyFilter) -> str:
    """The filter in a word or two (toolbar button, split-view label): "ct-denoise", "median 3x3"."""
    return f.manifest.id if isinstance(f, ModelFilter) else f.label.removeprefix("filter: ").split(" sigma")[0]


def image_to_image_models(inference: Inference) -> list[ModelFilter]:
    """The usable image-to-image models (a denoiser) of the model folders."""
    return [ModelFilter(e.manifest, inference) for e in inference.models()
            if e.manifest is not None and e.manifest.task == "image-to-image"]


class SliceCache:
    """Filtered slices by key, least recently used dropped first once over ``budget`` bytes."""

    def __init__(self, budget: int = SLICE_CACHE_BYTES) -> None:
        self.budget = budget
        self._items: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[Any, ...]) -> np.ndarray | None:
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
        return hit

    def put(self, key: tuple[Any, ...], value: np.ndarray) -> None:
        old = self._items.pop(key, None)
        self._bytes -= 0 if old is None else old.nbytes
        self._items[key] = value
        self._bytes += value.nbytes
        while self._bytes > self.budget and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= dropped.nbytes

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)


class VolumeFilters:
    """The filtered copies of one MPR view's volume, computed in a worker and shared by its three planes.

    ``filter_volume`` is ``IoServices.filter_volume`` (SimpleITK, 3-D, true spacing); without it a
    display filter is not done in 3-D (the planes filter their 2-D image instead). Models need no service.
    """

    def __init__(self, filter_volume: Callable[..., np.ndarray] | None = None) -> None:
        self.filter_volume = filter_volume
        self._done: OrderedDict[tuple[int, AnyFilter], tuple[weakref.ref[Volume], np.ndarray]] = OrderedDict()
        self._pending: tuple[int, AnyFilter] | None = None
        self._progress: float = 0.0
        self.error = ""  # why the last computation failed (shown in the corner text)
        self._background: Background | None = None
        self.listeners: list[Callable[[bool], None]] = []  # called with True when a volume is ready

    def handles(self, f: AnyFilter) -> bool:
        return isinstance(f, ModelFilter) or self.filter_volume is not None

    def get(self, vol: Volume, f: AnyFilter) -> np.ndarray | None:
        """The filtered array of ``vol`` (same shape), or None while it is computed (started here)."""
        key = (id(vol), f)
        hit = self._done.get(key)
        if hit is not None and hit[0]() is vol:
            self._done.move_to_end(key)
            return hit[1]
        if key != self._pending:
            self._start(key, vol, f)
        return None

    def progress_text(self) -> str:
        return f"failed: {self.error}" if self.error else f"computing {self._progress:.0%}"

    def _start(self, key: tuple[int, AnyFilter], vol: Volume, f: AnyFilter) -> None:
        self._pending, self._progress, self.error = key, 0.0, ""
        if self._background is None:
            self._background = Background(max_threads=1)
        array, spacing, service = vol.array, vol.spacing, self.filter_volume

        def job(ctx: Any) -> np.ndarray:
            if isinstance(f, ModelFilter):
                return f.apply_volume(array, progress=ctx.progress, cancel=ctx.cancelled)
            assert service is not None
            return service(array, spacing, f, progress=ctx.progress, cancel=ctx.cancelled)

        ref = weakref.ref(vol)

        def delivered(out: Any) -> None:
            self._pending = None
            self._done[key] = (ref, np.asarray(out, dtype=np.float32))
            while len(self._done) > VOLUMES_KEPT:
                self._done.popitem(last=False)
            self._notify(True)

        def progressed(done: int, total: int) -> None:
            self._progress = done / total if total else 0.0
            self._notify(False)

        def failed(message: str) -> None:
            # Not retried on every redraw: a new filter or volume tries again.
            self.error = message.strip().splitlines()[-1] if message.strip() else "unknown error"
            self._notify(False)

        self._background.submit("volume-filter", job, on_result=delivered, on_progress=progressed,
                                on_error=failed)

    def _notify(self, ready: bool) -> None:
        for listener in list(self.listeners):
            listener(ready)

    def close(self) -> None:
        """Cancel the computation and drop the results (the MPR view is closing)."""
        if self._background is not None:
            self._background.cancel_all()
        self.listeners.clear()
        self._done.clear()
        self._pending = None


class DisplayFilterHook:
    """One viewport's display filter: :meth:`shown` gives the array to draw for the state's slice."""

    def __init__(self, viewport: Any) -> None:
        self.viewport = viewport
        self.filter: AnyFilter | None = None
        self.split = False
        self.divider = 0.5  # split view: fraction of the shown width left of the divider (the original)
        self.volumes: VolumeFilters | None = None  # set by the MPR view: planes show the filtered volume
        self.note = ""  # "computing", "not applied: CT only", ...
        self._waiting_volume = False  # the MPR's filtered volume is being computed (progress in the label)
        self._cache = SliceCache()
        self._background: Background | None = None
        self._pending: tuple[Any, ...] | None = None

    # -- choices ----------------------------------------------------------------------------------------------
    def set_filter(self, f: AnyFilter | None) -> None:
        if f == self.filter:
            return
        self.filter, self._pending = f, None
        self.viewport.refresh_display()

    def set_split(self, on: bool) -> None:
        if bool(on) != self.split:
            self.split = bool(on)
            self.viewport.refresh_display()

    def set_divider(self, fraction: float) -> None:
        self.divider = min(1.0, max(0.0, float(fraction)))
        self.viewport.refresh_display()

    def invalidate(self) -> None:
        """The volume or its pixels changed: filtered slices of the old ones are dropped."""
        self._cache.clear()
        self._pending = None

    def controls(self) -> FilterControls | None:
        """The window's filter controls (the toggle applies to every viewport), if the viewport is in one."""
        controls = getattr(self.viewport.window(), "filter_controls", None)
        return controls if isinstance(controls, FilterControls) else None

    @property
    def splitting(self) -> bool:
        """The split view is drawn: on, with a filter on."""
        return self.split and self.filter is not None

    # -- what is drawn ----------------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """The corner-text line ("" with no filter)."""
        f = self.filter
        if f is None:
            return ""
        vol = self.viewport.state.plane_volume()
        text = f.label
        if self._in_3d(f, vol):
            assert vol is not None
            text = volume_label(f, vol.spacing) if isinstance(f, DisplayFilter) else f"{f.label} (3D: each slice)"
        if self.split:
            text += " | split: original left"
        note = self.volumes.progress_text() if self._waiting_volume and self.volumes is not None else self.note
        return f"{text} — {note}" if note else text

    def _in_3d(self, f: AnyFilter, vol: Volume | None) -> bool:
        return self.volumes is not None and vol is not None and self.volumes.handles(f)

    def shown(self, arr: np.ndarray) -> np.ndarray:
        """The filtered slice when ready, else ``arr`` (and the filtering is started in a worker)."""
        f = self.filter
        self.note, self._waiting_volume = "", False
        if f is None or arr.ndim != 2:  # colour images are not filtered
            return arr
        st = self.viewport.state
        vol = st.plane_volume()
        if isinstance(f, ModelFilter):
            self.note = f.refusal(vol)
            if self.note:
                return arr
        key = (id(vol), st.plane, st.slice_index, arr.shape, f)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if self._in_3d(f, vol):
            assert self.volumes is not None and vol is not None and st.geometry is not None
            full = self.volumes.get(vol, f)
            if full is None:
                self._waiting_volume = True
                return arr
            out = np.ascontiguousarray(st.geometry.extract(full, st.slice_index), dtype=np.float32)
            self._cache.put(key, out)
            return out
        if key != self._pending:
            self._pending = key
            if self._background is None:
                self._background = Background(max_threads=1)
            src = np.array(arr, dtype=np.float32)  # a copy: the worker must not see later edits

            def job(ctx: Any) -> np.ndarray:
                return f.apply(src)

            def delivered(out: Any) -> None:
                self._done(key, out)

            self._background.submit("display-filter", job, on_result=delivered)
        self.note = "computing…"
        return arr

    def _done(self, key: tuple[Any, ...], out: np.ndarray) -> None:
        self._cache.put(key, np.asarray(out, dtype=np.float32))
        if key == self._pending:
            self._pending = None
            self.viewport.refresh_display()

    def volume_ready(self, ready: bool) -> None:
        """A listener of :class:`VolumeFilters`: redraw when the volume is ready, else the progress text."""
        if ready:
            self.viewport.refresh_display()
        else:
            self.viewport.refresh_overlay()

    @property
    def ready(self) -> bool:
        """The filter's result for the slice on screen is drawn (no computation pending, nothing refused)."""
        return self.filter is not None and not self.note and not self._waiting_volume


class FilterControls:
    """The Filter toolbar button and menu (Off, the presets, the image-to-image models, the toggle and the
    split view), applied to every viewport ``viewports()`` lists; keys F and Shift+F (in the viewport's
    binding table) come here through :meth:`DisplayFilterHook.controls`."""

    def __init__(self, parent: QWidget, viewports: Callable[[], list[Any]]) -> None:
        self.viewports = viewports
        self.choice: AnyFilter | None = None
        self.last: AnyFilter | None = None
        self.split = False
        self.models: list[ModelFilter] = []
        self.menu = QMenu("Display filter", parent)
        self.group = QActionGroup(parent)
        self.button = QToolButton(parent)
        self.button.setText("Filter")
        self.button.setToolTip("Display filter (noise reduction for viewing; measurements use the original). "
                               "F: on/off, Shift+F: split view against the original")
        self.button.setMenu(self.menu)
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.choice_actions: dict[AnyFilter | None, QAction] = {}
        for f in (None, *PRESETS):
            self._add_choice(f)
        self._models_end = self.menu.addSeparator()
        # The key is shown after the tab but not registered as a shortcut: the viewport's binding table
        # handles it, after the brush and label panel (whose F fills) had their turn.
        self.act_toggle = QAction("Filter On/Off\tF", parent)
        self.act_toggle.triggered.connect(lambda _=False: self.toggle())
        self.act_split = QAction("Split View Against the Original\tShift+F", parent, checkable=True)
        self.act_split.triggered.connect(lambda on=False: self.set_split(bool(on)))
        self.menu.addActions([self.act_toggle, self.act_split])

    def _add_choice(self, f: AnyFilter | None, before: QAction | None = None) -> None:
        text = "Off" if f is None else f.label.removeprefix("filter: ")
        act = QAction(text, self.button, checkable=True)
        act.setChecked(f is None)
        act.triggered.connect(lambda _=False, choice=f: self.choose(choice))
        self.group.addAction(act)
        if before is None:
            self.menu.addAction(act)
        else:
            self.menu.insertAction(before, act)
        self.choice_actions[f] = act

    def add_models(self, inference: Inference) -> None:
        """Offer the image-to-image models (a denoiser), run by the application's inference service."""
        for f in image_to_image_models(inference):
            if f not in self.choice_actions:
                self.models.append(f)
                self._add_choice(f, before=self._models_end)

    def default(self) -> AnyFilter:
        """What F turns on when nothing was chosen yet: the denoiser if installed, else the median."""
        return self.models[0] if self.models else PRESETS[1]

    def choose(self, f: AnyFilter | None) -> None:
        self.choice = f
        if f is not None:
            self.last = f
        self.apply()

    def toggle(self) -> None:
        """F: the original, or back to the last filter (the default when none was chosen)."""
        self.choose(None if self.choice is not None else (self.last or self.default()))

    def set_split(self, on: bool) -> None:
        """Shift+F: the split view on or off; turning it on with no filter on turns the filter on too."""
        self.split = bool(on)
        if self.split and self.choice is None:
            self.choose(self.last or self.default())
        else:
            self.apply()

    def apply(self) -> None:
        """Show the current choice in every viewport (also called for viewports a layout change made)."""
        for vp in self.viewports():
            vp.display_filter.set_filter(self.choice)
            vp.display_filter.set_split(self.split)
        self.choice_actions[self.choice].setChecked(True)
        self.button.setText("Filter" if self.choice is None else f"Filter: {short_name(self.choice)}")
        self.act_split.setChecked(self.split)
