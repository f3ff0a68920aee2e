"""Display filters on the viewport (mean, median, Gaussian, bilateral): the toolbar menu and the hook.

The filter changes only what is drawn, never the pixels in state (measurements and AI read the
original). The slice on screen (any plane: MPR reformats are filtered as the 2D image they show) is
filtered in a worker (:class:`viewer.ui.workers.Background`), the original stays on screen until the
result arrives, and the last result is cached, so scrolling back or redrawing costs nothing. The corner
text names the filter while one is on. Off by default. Image-to-image models (a denoiser such as the
shipped ``ct-denoise``) are offered in the same menu and run tile by tile on the shown slice
(``Inference.image_to_image``), so the user toggles between the original and the model's
output like any other filter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QToolButton, QWidget

from viewer.core.filters import PRESETS, DisplayFilter
from viewer.state.services import Inference, Manifest
from viewer.ui.workers import Background


class ModelFilter:
    """An image-to-image model used as a display filter (hashable by the model file's sha256), run by the
    application's :class:`~viewer.state.services.Inference`."""

    def __init__(self, manifest: Manifest, inference: Inference) -> None:
        self.manifest, self.inference = manifest, inference
        self.label = f"filter: {manifest.name} {manifest.version}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelFilter) and other.manifest.sha256 == self.manifest.sha256

    def __hash__(self) -> int:
        return hash(self.manifest.sha256)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The model's output for one slice (in the worker: the session is created there, once)."""
        out: np.ndarray = self.inference.image_to_image(self.manifest, np.asarray(x, dtype=np.float32)[None])[0]
        return out


def image_to_image_models(inference: Inference) -> list[ModelFilter]:
    """The usable image-to-image models (a denoiser) of the model folders."""
    return [ModelFilter(e.manifest, inference) for e in inference.models()
            if e.manifest is not None and e.manifest.task == "image-to-image"]


class DisplayFilterHook:
    """One viewport's display filter: :meth:`shown` gives the array to draw for the state's slice."""

    def __init__(self, viewport: Any) -> None:
        self.viewport = viewport
        self.filter: DisplayFilter | ModelFilter | None = None
        self._background: Background | None = None
        self._key: tuple[Any, ...] | None = None
        self._result: np.ndarray | None = None
        self._pending: tuple[Any, ...] | None = None

    def set_filter(self, f: DisplayFilter | ModelFilter | None) -> None:
        self.filter = f
        self._key = self._result = self._pending = None
        self.viewport.refresh_display()

    @property
    def label(self) -> str:
        return self.filter.label if self.filter is not None else ""

    def shown(self, arr: np.ndarray) -> np.ndarray:
        """The filtered slice when ready, else ``arr`` (and the filtering is started in a worker)."""
        f = self.filter
        if f is None or arr.ndim != 2:  # colour images are not filtered
            return arr
        st = self.viewport.state
        key = (id(st.volume), st.plane, st.slice_index, arr.shape, f)
        if key == self._key and self._result is not None:
            return self._result
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
        return arr

    def _done(self, key: tuple[Any, ...], out: np.ndarray) -> None:
        if key != self._pending:
            return
        self._key, self._result, self._pending = key, out, None
        self.viewport.refresh_display()


def build_filter_button(parent: QWidget, viewports: Any) -> QToolButton:
    """A toolbar button with the filter menu (Off + the presets); ``viewports()`` lists the viewports
    the choice applies to."""
    menu = QMenu("Display filter", parent)
    group = QActionGroup(parent)
    button = QToolButton(parent)
    button.setText("Filter")
    button.setToolTip("Display filter (noise reduction for viewing; measurements use the original)")
    button.setMenu(menu)
    button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    button.setProperty("filter_group", group)  # add_model_filters appends to the same exclusive group
    for f in (None, *PRESETS):
        _add_choice(button, f, viewports)
    return button


def _add_choice(button: QToolButton, f: Any, viewports: Any) -> None:
    act = QAction("Off" if f is None else f.label.removeprefix("filter: "), button, checkable=True)
    act.setChecked(f is None)
    act.triggered.connect(lambda _=False, choice=f: [vp.display_filter.set_filter(choice) for vp in viewports()])
    button.property("filter_group").addAction(act)
    button.menu().addAction(act)


def add_model_filters(button: QToolButton, viewports: Any, inference: Inference) -> None:
    """Offer the image-to-image models (a denoiser) in the Filter menu."""
    for f in image_to_image_models(inference):
        _add_choice(button, f, viewports)
