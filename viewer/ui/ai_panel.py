"""The AI dock: choose a model, run it on the shown series in the background, overlay the results.

Everything slow runs on the panel's own :class:`~viewer.ui.workers.Background` (its pool threads):
listing and checking the models, creating a model's session (``ModelSession.get``: once per model, cached),
preprocessing and inference. Each kind of request has its channel; a new request replaces the channel's
previous one, whose result is then dropped, so scrolling fast never queues slices ("ai:slice" is also
debounced by :data:`DEBOUNCE_MS`).

Models are run through an :class:`~viewer.state.services.Inference` service that the composition root
hands in (``viewer.ai.inference.ModelInference``, over ``viewer.ai``), as it does with ``IoServices``
for ``viewer.io``; the dock reads the models' typed manifests. Listing them starts no network runtime:
ONNX Runtime is imported by the first run, on a worker.

Public interface::

    panel = AiPanel(ModelInference(device="auto"), background=None)
    panel.set_viewport(vp)          # the SliceViewport the panel works on (follows volume/slice changes)
    panel.select_model("organ-ct")  # False when absent or not applicable
    panel.classify_slice(); panel.classify_series(); panel.cancel_series()
    panel.classify_box((row0, col0, row1, col1)); panel.start_box_drawing()
    panel.class_map(); panel.occlusion()
    panel.overlay                   # AiOverlay of the viewport; panel.plot: AiProbabilityPlot
    signals: models_listed(), result_ready(str kind, object result), failed(str kind, str message),
             series_cancelled()
    attach_ai_panel(main_window, inference) -> AiPanel   # a right-hand dock following the active viewport
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QDockWidget, QGridLayout, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QProgressBar, QPushButton, QSlider, QVBoxLayout, QWidget)

from viewer.core.jobs import JobContext
from viewer.state.ai_results import AiResults
from viewer.state.services import ClassMap, Inference, Manifest, ModelEntry, ModelRun, OcclusionMap, Predictions
from viewer.ui.ai_overlay import AiOverlay
from viewer.ui.ai_plot import AiProbabilityPlot
from viewer.ui.workers import Background

if TYPE_CHECKING:
    from viewer.core.volume import Volume
    from viewer.ui.main_window import MainWindow
    from viewer.ui.viewport import SliceViewport

T = TypeVar("T")

DEBOUNCE_MS = 150
ROLE_ID = Qt.ItemDataRole.UserRole


class AiPanel(QWidget):
    """Model list, run buttons, opacity, auto-classify toggle, progress/cancel and the probability plot."""

    models_listed = Signal()
    result_ready = Signal(str, object)
    failed = Signal(str, str)
    series_cancelled = Signal()

    def __init__(self, inference: Inference, background: Background | None = None, parent: QWidget | None = None,
                 *, results: AiResults | None = None) -> None:
        super().__init__(parent)
        self.inference = inference
        # Results per series, observed by every viewport's overlay (and MPR): the application model's.
        self.results = results if results is not None else AiResults()
        # A private pool: a whole-series run must not wait behind (or hold up) the shell's loads.
        self.background = background or Background(max_threads=2, parent=self)
        self.entries: list[ModelEntry] = []
        self.vp: SliceViewport | None = None
        self.overlay: AiOverlay | None = None
        self._overlays: dict[int, AiOverlay] = {}
        self._unsub: list[Callable[[], None]] = []
        self._provider: dict[str, str] = {}  # model id -> the provider its last run used
        self._box_start: tuple[float, float] | None = None
        self._box_filter: _BoxFilter | None = None
        self._progress_ids: dict[str, int] = {}  # channel -> request id of the runs that show progress

        self.models = QListWidget(self)
        self.models.setWordWrap(True)
        self.models.setMinimumHeight(90)
        self.info = QLabel("Looking for models…", self)
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self.warning = QLabel(self)
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #e0a040;")
        self.warning.hide()
        self.btn_slice = QPushButton("Classify slice", self)
        self.btn_series = QPushButton("Classify series", self)
        self.btn_box = QPushButton("Classify box", self)
        self.btn_box.setCheckable(True)
        self.btn_box.setToolTip("Drag a box on the image with the left button")
        self.btn_map = QPushButton("Class map", self)
        self.btn_map.setToolTip("Slide the model's window over the slice (ROI models)")
        self.btn_occ = QPushButton("Occlusion heatmap", self)
        self.btn_clear = QPushButton("Clear", self)
        self.auto = QCheckBox("Classify the shown slice automatically", self)
        # ROI models were trained on boxes (a crop of an organ), not on whole slices: run on a whole slice
        # only when the reader says so, and label the result as out of scope.
        self.out_of_scope = QCheckBox("Allow ROI models on whole slices (out of scope)", self)
        self.out_of_scope.setToolTip("An ROI model was trained on crops: on a whole slice its answer is outside "
                                     "its intended use. Boxes and class maps are its scope.")
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.progress = QProgressBar(self)
        self.progress.hide()
        self.btn_cancel = QPushButton("Cancel", self)
        self.btn_cancel.hide()
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.plot = AiProbabilityPlot(self)

        grid = QGridLayout()
        for i, b in enumerate((self.btn_slice, self.btn_series, self.btn_box, self.btn_map, self.btn_occ,
                               self.btn_clear)):
            grid.addWidget(b, i // 2, i % 2)
        prog = QHBoxLayout()
        prog.addWidget(self.progress, 1)
        prog.addWidget(self.btn_cancel)
        op = QHBoxLayout()
        op.addWidget(QLabel("Overlay opacity", self))
        op.addWidget(self.opacity, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.models, 1)
        lay.addWidget(self.info)
        lay.addWidget(self.warning)
        lay.addLayout(grid)
        lay.addWidget(self.auto)
        lay.addWidget(self.out_of_scope)
        lay.addLayout(op)
        lay.addLayout(prog)
        lay.addWidget(self.status)
        lay.addWidget(self.plot, 2)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.classify_slice)
        self.models.currentItemChanged.connect(lambda *_: self._update_info())
        self.btn_slice.clicked.connect(self.classify_slice)
        self.btn_series.clicked.connect(self.classify_series)
        self.btn_box.toggled.connect(self._box_toggled)
        self.btn_map.clicked.connect(self.class_map)
        self.btn_occ.clicked.connect(self.occlusion)
        self.btn_clear.clicked.connect(self.clear)
        self.btn_cancel.clicked.connect(self.cancel_series)
        self.auto.toggled.connect(self._auto_toggled)
        self.out_of_scope.toggled.connect(lambda _on: self._update_info())
        self.opacity.valueChanged.connect(lambda v: self.overlay is not None and self.overlay.set_opacity(v / 100.0))
        self.plot.slice_clicked.connect(lambda k: self.vp is not None and self.vp.set_slice(k))
        self._update_info()
        self.refresh_models()

    # -- models -----------------------------------------------------------------------------------------
    def refresh_models(self) -> None:
        """List the models off the UI thread (reading the manifests hashes each model file)."""
        inference = self.inference

        def job(ctx: JobContext) -> object:
            return list(inference.models())

        def done(entries: list[ModelEntry]) -> None:
            self.entries = entries
            self._fill_models()
            self.models_listed.emit()

        self.background.submit("ai:registry", job, on_result=done,
                               on_error=lambda m: self.info.setText("Cannot list models: " + html.escape(m)))

    def _fill_models(self) -> None:
        keep = self.model_id()
        self.models.blockSignals(True)
        self.models.clear()
        vol = self.vp.volume if self.vp is not None else None
        first_ok = None
        for e in self.entries:
            m = e.manifest
            if m is None:
                item = QListWidgetItem(f"{e.folder.name}\n  cannot be used: {e.error}")
                item.setFlags(Qt.ItemFlag.NoItemFlags)
                item.setData(ROLE_ID, e.id)
                self.models.addItem(item)
                continue
            if m.task != "classification":  # a denoiser: it changes the picture, it does not classify
                item = QListWidgetItem(f"{m.name}  v{m.version}\n  an image filter: choose it in the toolbar's "
                                       "Filter menu")
                item.setFlags(Qt.ItemFlag.NoItemFlags)
                item.setData(ROLE_ID, m.id)
                item.setToolTip(f"{m.id} — {m.intended_use}")
                self.models.addItem(item)
                continue
            ok, reason = (True, "") if vol is None else self.inference.applicability(m, vol)
            # applicability's reason starts with the model's name, already on the first line
            why = reason[len(m.name):].strip() if reason.startswith(m.name) else reason
            # ok with a reason: runs, with a warning (e.g. a radiograph whose header names no body part)
            text = f"{m.name}  v{m.version}" + (f"\n  warning: {why}" if ok and why else "" if ok
                                                 else f"\n  not applicable: {why}")
            item = QListWidgetItem(text)
            item.setData(ROLE_ID, m.id)
            item.setToolTip(f"{m.id} — {m.intended_use}\ndecision: {m.output.decision}" + (f"\n{reason}" if reason else ""))
            if not ok:
                item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.models.addItem(item)
            if ok and (first_ok is None or m.id == keep):
                first_ok = item
        self.models.blockSignals(False)
        if first_ok is not None:
            self.models.setCurrentItem(first_ok)
        self._update_info()

    def model_item(self, model_id: str) -> QListWidgetItem | None:
        for i in range(self.models.count()):
            it = self.models.item(i)
            if it.data(ROLE_ID) == model_id:
                return it
        return None

    def select_model(self, model_id: str) -> bool:
        """Make ``model_id`` current; False when it is not listed or does not apply to the series."""
        it = self.model_item(model_id)
        if it is None or not it.flags() & Qt.ItemFlag.ItemIsEnabled:
            return False
        self.models.setCurrentItem(it)
        return True

    def model_id(self) -> str | None:
        it = self.models.currentItem()
        if it is None or not it.flags() & Qt.ItemFlag.ItemIsEnabled:
            return None
        return str(it.data(ROLE_ID))

    def manifest(self) -> Manifest | None:
        mid = self.model_id()
        for e in self.entries:
            if e.manifest is not None and e.manifest.id == mid:
                return e.manifest
        return None

    def _update_info(self, provider: str | None = None) -> None:
        m = self.manifest()
        ready = m is not None and self.vp is not None and self.vp.volume is not None
        for b in (self.btn_box, self.btn_occ):
            b.setEnabled(ready)
        whole = ready and self._whole_slice_allowed(m)
        self.btn_slice.setEnabled(whole)
        self.btn_series.setEnabled(whole)
        self.btn_map.setEnabled(ready and m is not None and m.applies_to.scope == "roi")
        self.out_of_scope.setVisible(m is not None and m.applies_to.scope == "roi")
        if m is None:
            if self.entries:
                shown = self.vp is not None and self.vp.volume is not None
                self.info.setText("No model applies to this series." if shown else "Open a series to run a model.")
            return
        prov = provider or self._provider.get(m.id, "not started yet")
        self.info.setText(f"<b>{html.escape(m.name)}</b> v{html.escape(m.version)} ({html.escape(m.applies_to.scope)})"
                          f"<br>{html.escape(m.intended_use)}<br>Provider: {html.escape(prov)}")

    def _whole_slice_allowed(self, m: Manifest | None) -> bool:
        return m is not None and (m.applies_to.scope != "roi" or self.out_of_scope.isChecked())

    def _scope_note(self, m: Manifest) -> str:
        """What the overlay says about a whole-slice result: "(out of scope)" for an ROI model."""
        return " — out of scope" if m.applies_to.scope == "roi" else ""

    def _refuse_whole_slice(self, m: Manifest) -> bool:
        """True (and says why) when ``m`` may not run on whole slices."""
        if self._whole_slice_allowed(m):
            return False
        self.status.setText(f"{m.name} is an ROI model: draw a box or run a class map (whole slices are outside "
                            "its scope unless you allow them below)")
        return True

    def _series_uid(self) -> str:
        vol = self.vp.volume if self.vp is not None else None
        return vol.series_uid if vol is not None else ""

    def _ran(self, m: Manifest, run: ModelRun[T]) -> T:
        """Note which runtime ran ``m`` (shown under its name) and return the run's result."""
        self._provider[m.id] = run.provider
        if run.note:  # CUDA asked for but not running: say so where the user looks
            self.warning.setText(run.note)
            self.warning.show()
        self._update_info()
        return run.result

    # -- viewport ---------------------------------------------------------------------------------------
    def set_viewport(self, vp: SliceViewport | None) -> None:
        """Work on ``vp`` (a SliceViewport); results already drawn on another viewport stay there."""
        if vp is self.vp:
            return
        for u in self._unsub:
            u()
        self._unsub = []
        if self.vp is not None:
            self._set_box_mode(False)
            try:
                self.vp.slice_changed.disconnect(self._on_slice)
            except (RuntimeError, TypeError):
                pass
        self.vp = vp
        self.background.cancel("ai:slice")
        self.overlay = None
        if vp is not None:
            ov = self._overlays.get(id(vp))
            if ov is None:
                ov = AiOverlay(vp, self.results)
                ov.set_opacity(self.opacity.value() / 100.0)
                self._overlays[id(vp)] = ov
            self.overlay = ov
            vp.slice_changed.connect(self._on_slice)
            self._unsub.append(vp.state.image.subscribe(self._on_image))
        self._show_series_results()
        self._fill_models()

    def _on_image(self, changes: frozenset[str]) -> None:
        if "volume" in changes and "refined" not in changes:
            # Another series: its runs stop, the status of the last one goes, its own results (if any) show.
            for ch in ("ai:slice", "ai:series", "ai:box", "ai:map", "ai:occlusion"):
                self.background.cancel(ch)
            self._end_progress()
            self.status.setText("")
            self._show_series_results()
            self._fill_models()

    def _show_series_results(self) -> None:
        """The plot shows the shown series' per-slice predictions (from the results), else nothing."""
        pred = self.results.of(self._series_uid()).predictions if self.vp is not None else None
        if self.vp is not None and pred is not None and pred.indices is not None and len(pred) > 1:
            self.plot.set_predictions(pred)
            self.plot.set_current(self.vp.slice_index)
        else:
            self.plot.clear_predictions()

    def _on_slice(self, k: int) -> None:
        self.plot.set_current(k)
        if self.auto.isChecked():
            self._schedule()
        else:
            self._show_series_row(k)

    def _show_series_row(self, k: int) -> None:
        """After a whole-series run, the shown slice's labels are already known: draw them at once."""
        pred = self.plot.predictions
        if pred is None or pred.indices is None or self.overlay is None or self.vp is None:
            return
        if self.vp.state.plane != "acquired":
            return
        rows = np.flatnonzero(np.asarray(pred.indices) == k)
        if rows.size:
            i = int(rows[0])
            one = dataclasses.replace(pred, probabilities=pred.probabilities[i:i + 1], scores=pred.scores[i:i + 1],
                                      indices=np.array([k]))
            m = next((e.manifest for e in self.entries if e.manifest is not None and e.manifest.id == pred.model_id), None)
            self.overlay.set_topk(k, one, "series" + (self._scope_note(m) if m is not None else ""))

    def _auto_toggled(self, on: bool) -> None:
        if on:
            self._schedule()

    def _schedule(self) -> None:
        self._debounce.start()  # restarting drops the slices scrolled past

    # -- running ----------------------------------------------------------------------------------------
    def _ready(self) -> tuple[Manifest, Volume, int] | None:
        m = self.manifest()
        if m is None or self.vp is None or self.vp.volume is None:
            return None
        return m, self.vp.volume, int(self.vp.slice_index)

    def _fail(self, kind: str, message: str) -> None:
        self.status.setText(f"{kind}: {message.splitlines()[0]}")
        self.failed.emit(kind, message)

    def classify_slice(self) -> None:
        """Classify the shown slice (acquired plane); only the newest request's result is drawn."""
        ready = self._ready()
        if ready is None or self.vp is None:
            return
        if self.vp.state.plane != "acquired":  # the models take the slices as acquired, not reformats
            self.status.setText("Slice classification runs on the acquired plane; switch the view back to it")
            return
        m, vol, k = ready
        if self._refuse_whole_slice(m):
            return
        inference = self.inference

        def job(ctx: JobContext) -> object:
            return inference.classify_slices(m, vol, [k], cancel=ctx.cancelled)

        def done(run: ModelRun[Predictions]) -> None:
            pred = self._ran(m, run)
            if self.overlay is not None:
                self.overlay.set_topk(k, pred, "slice" + self._scope_note(m))
            self.results.set_predictions(vol.series_uid, pred)
            self.result_ready.emit("slice", pred)

        self.background.submit("ai:slice", job, on_result=done, on_error=lambda msg: self._fail("slice", msg))

    def classify_series(self) -> None:
        """Classify every slice of the series (progress, cancel); the results fill the plot."""
        ready = self._ready()
        if ready is None:
            return
        m, vol, _k = ready
        if self._refuse_whole_slice(m):
            return
        inference = self.inference

        def job(ctx: JobContext) -> object:
            return inference.classify_slices(m, vol, progress=ctx.progress, cancel=ctx.cancelled)

        def done(run: ModelRun[Predictions]) -> None:
            pred = self._ran(m, run)
            self.results.set_predictions(vol.series_uid, pred)
            self.plot.set_predictions(pred)
            self.plot.set_current(self.vp.slice_index if self.vp is not None else None)
            # The slice the reader looks at shows its labels at once, not after the next scroll.
            if self.vp is not None and self.vp.volume is vol:
                self._show_series_row(self.vp.slice_index)
            self.status.setText(f"{len(pred)} images classified with {m.name} v{m.version}{self._scope_note(m)}")
            self.result_ready.emit("series", pred)

        self._start_progress("Classifying the series")
        self._progress_ids["ai:series"] = self.background.submit(
            "ai:series", job, on_result=done, on_progress=self._on_progress,
            on_error=lambda msg: self._fail("series", msg), on_done=self._end_progress)

    def cancel_series(self) -> None:
        """Cancel the running series, class map or occlusion run (the Cancel button); nothing of it is drawn."""
        running = [ch for ch in ("ai:series", "ai:map", "ai:occlusion") if self.background.pending(ch)]
        for ch in running:
            self.background.cancel(ch)
        self.progress.hide()
        self.btn_cancel.hide()
        if running:
            self.status.setText("Cancelled")
            self.series_cancelled.emit()

    def classify_box(self, box: tuple[int, int, int, int]) -> None:
        """Classify ``box`` (row0, col0, row1, col1), pixels, half-open, of the shown slice."""
        ready = self._ready()
        if ready is None:
            return
        m, vol, k = ready
        inference = self.inference
        if self.overlay is not None:
            self.overlay.set_box(k, box)

        def job(ctx: JobContext) -> object:
            return inference.classify_box(m, vol, k, box, cancel=ctx.cancelled)

        def done(run: ModelRun[Predictions]) -> None:
            pred = self._ran(m, run)
            if self.overlay is not None:
                self.overlay.set_topk(k, pred, f"box {box[3] - box[1]}×{box[2] - box[0]} px")
            self.results.add_box(vol.series_uid, k, box, pred)
            self.result_ready.emit("box", pred)

        self.background.submit("ai:box", job, on_result=done, on_error=lambda msg: self._fail("box", msg))

    def class_map(self) -> None:
        """Sliding-window class map of the shown slice (models of scope ``roi``)."""
        ready = self._ready()
        if ready is None or ready[0].applies_to.scope != "roi":
            return
        m, vol, k = ready
        inference = self.inference

        def job(ctx: JobContext) -> object:
            return inference.class_map(m, vol, k, progress=ctx.progress, cancel=ctx.cancelled)

        def done(run: ModelRun[ClassMap]) -> None:
            cm = self._ran(m, run)
            if self.overlay is not None:
                self.overlay.set_class_map(k, cm)
            self.results.set_class_map(vol.series_uid, k, cm)
            self.status.setText(f"Class map of image {k + 1}: {len(cm.rows)}×{len(cm.cols)} windows of "
                                f"{cm.window[0]}×{cm.window[1]} px")
            self.result_ready.emit("classmap", cm)

        self._start_progress("Class map")
        self._progress_ids["ai:map"] = self.background.submit(
            "ai:map", job, on_result=done, on_progress=self._on_progress,
            on_error=lambda msg: self._fail("class map", msg), on_done=self._end_progress)

    def occlusion(self) -> None:
        """Occlusion-sensitivity heatmap of the shown slice for the model's top class."""
        ready = self._ready()
        if ready is None:
            return
        m, vol, k = ready
        inference = self.inference

        def job(ctx: JobContext) -> object:
            return inference.occlusion(m, vol, k, progress=ctx.progress, cancel=ctx.cancelled)

        def done(run: ModelRun[OcclusionMap]) -> None:
            occ = self._ran(m, run)
            if self.overlay is not None:
                self.overlay.set_occlusion(k, occ)
            self.results.set_occlusion(vol.series_uid, k, occ)
            self.status.setText(f"Occlusion heatmap of image {k + 1} for {occ.label} "
                                f"(patch {occ.patch[0]}×{occ.patch[1]} px)")
            self.result_ready.emit("occlusion", occ)

        self._start_progress("Occlusion heatmap")
        self._progress_ids["ai:occlusion"] = self.background.submit(
            "ai:occlusion", job, on_result=done, on_progress=self._on_progress,
            on_error=lambda msg: self._fail("occlusion", msg), on_done=self._end_progress)

    def clear(self) -> None:
        for ch in ("ai:slice", "ai:box", "ai:map", "ai:occlusion"):
            self.background.cancel(ch)
        if self.overlay is not None:
            self.overlay.clear()
        if self.vp is not None and self.vp.volume is not None:
            self.results.clear(self._series_uid())
        self.plot.clear_predictions()

    def _start_progress(self, text: str) -> None:
        self.progress.setRange(0, 0)
        self.progress.setFormat(text + " %p%")
        self.progress.show()
        self.btn_cancel.show()
        self.status.setText(text + "…")

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _end_progress(self) -> None:
        # a cancelled request stays pending until its worker returns; only live ones keep the bar
        if not any(self.background.pending(ch) and self.background.is_current(rid)
                   for ch, rid in self._progress_ids.items()):
            self.progress.hide()
            self.btn_cancel.hide()

    # -- box drawing ------------------------------------------------------------------------------------
    def start_box_drawing(self) -> None:
        self.btn_box.setChecked(True)

    def _box_toggled(self, on: bool) -> None:
        self._set_box_mode(on)

    def _set_box_mode(self, on: bool) -> None:
        if self.vp is None:
            return
        target = self.vp.viewport()
        if on and self._box_filter is None:
            self._box_filter = _BoxFilter(self)
            target.installEventFilter(self._box_filter)
            target.setCursor(Qt.CursorShape.CrossCursor)
        elif not on and self._box_filter is not None:
            target.removeEventFilter(self._box_filter)
            target.unsetCursor()
            self._box_filter = None
            if self.btn_box.isChecked():
                self.btn_box.setChecked(False)

    def _box_event(self, kind: str, pos: Any) -> None:
        vp = self.vp
        if vp is None or vp.state.geometry is None:
            return
        row, col = vp.scene_to_slice(vp.mapToScene(pos))
        if kind == "press":
            self._box_start = (row, col)
            return
        if self._box_start is None:
            return
        r0, c0 = self._box_start
        rows, cols = vp.state.geometry.shape
        box = (max(0, int(round(min(r0, row)))), max(0, int(round(min(c0, col)))),
               min(rows, int(round(max(r0, row))) + 1), min(cols, int(round(max(c0, col))) + 1))
        if kind == "move":
            if self.overlay is not None:
                self.overlay.set_box(vp.slice_index, box)
            return
        self._box_start = None
        self._set_box_mode(False)
        if box[2] - box[0] >= 4 and box[3] - box[1] >= 4:
            self.classify_box(box)
        elif self.overlay is not None:
            self.overlay.set_box(vp.slice_index, None)


class _BoxFilter(QObject):
    """Takes the left button on the viewport while a box is drawn (other gestures keep working)."""

    def __init__(self, panel: AiPanel) -> None:
        super().__init__(panel)
        self.panel = panel

    def eventFilter(self, obj: Any, ev: Any) -> bool:  # noqa: N802 (Qt override)
        t = ev.type()
        if t == QEvent.Type.MouseButtonPress and ev.button() == Qt.MouseButton.LeftButton:
            self.panel._box_event("press", ev.position().toPoint())
            return True
        if t == QEvent.Type.MouseMove and ev.buttons() & Qt.MouseButton.LeftButton:
            self.panel._box_event("move", ev.position().toPoint())
            return True
        if t == QEvent.Type.MouseButtonRelease and ev.button() == Qt.MouseButton.LeftButton:
            self.panel._box_event("release", ev.position().toPoint())
            return True
        return False


def attach_ai_panel(window: MainWindow, inference: Inference) -> AiPanel:
    """Add the AI dock to the main window (right side, under Measurements) with a View-menu toggle; the
    panel follows the active viewport and keeps its results in the window's workspace (per series)."""
    panel = AiPanel(inference, parent=window, results=window.workspace.ai)
    dock = window.add_panel("AI", "aiDock", panel)
    from viewer.ui.display_filter import add_model_filters

    add_model_filters(window.filter_button, window._all_viewports, inference)  # a denoiser as a display filter
    # The plot needs width and the model list height; the measurements list above can do with less. Other
    # tall docks already under it (Labels) share the space as tabs, AI in front: stacked, none fits.
    above = window.measurements_dock
    tall = [d for d in window.findChildren(QDockWidget) if d is not dock and d is not above
            and window.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea and not d.isFloating()]
    if tall:
        window.tabifyDockWidget(tall[0], dock)
    elif above is not None:
        window.splitDockWidget(above, dock, Qt.Orientation.Vertical)

    def arrange() -> None:  # after the tab bar and layout exist (raise_ does nothing before)
        dock.raise_()
        if above is not None:
            window.resizeDocks([above, dock], [160, 700], Qt.Orientation.Vertical)
        window.resizeDocks([dock], [340], Qt.Orientation.Horizontal)

    arrange()
    QTimer.singleShot(0, arrange)
    window.ai_panel, window.ai_dock = panel, dock

    def follow(idx: int) -> None:
        panel.set_viewport(window.grid.slots[idx].view)

    window.grid.active_changed.connect(follow)
    def loaded(idx: int) -> None:
        if idx == window.grid.active:
            follow(idx)

    window.series_loaded.connect(loaded)
    follow(window.grid.active)
    return panel


__all__ = ["DEBOUNCE_MS", "AiPanel", "attach_ai_panel"]
