"""The labeling dock: label set, annotator, fast labeling mode, progress, AI suggestions; and the glue that
keeps measurements in the label store across restarts.

Keys (while "Labeling mode" is on and a viewport has focus): the label set's keys label the current slice
and the view jumps to the next unlabeled one; Enter accepts the offered AI suggestion, Backspace rejects
it; Ctrl+Z / Ctrl+Shift+Z undo and redo (labels and brush strokes share one undo stack).

All labeling logic lives in :class:`viewer.annotations.session.LabelingSession`; this module forwards
events to it and redraws from the store.
"""

from __future__ import annotations

import functools
import getpass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDockWidget, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget)

from viewer.annotations.labelsets import LabelSet, available_label_sets
from viewer.annotations.model import Suggestion
from viewer.annotations.session import LabelingSession
from viewer.state.services import Inference, Predictions
from viewer.annotations.store import LabelStore
from viewer.state.labels import measurement_to_roi, roi_to_measurement, session_images

if TYPE_CHECKING:
    from viewer.ui.ai_panel import AiPanel
    from viewer.ui.brush_tool import BrushControls
    from viewer.ui.eval_panel import EvalPanel
    from viewer.ui.label_export import LabelExport
    from viewer.ui.main_window import MainWindow
    from viewer.ui.viewport import SliceViewport


def default_annotator() -> str:
    """The OS user name (the default annotator), "annotator" when it cannot be found."""
    try:
        return getpass.getuser() or "annotator"
    except Exception:  # no USER/LOGNAME and no passwd entry (containers)
        return "annotator"


class LabelPanel(QWidget):
    """Label the slices of the active viewport's series with one label set."""

    session_changed = Signal()  # a new session (series, set or annotator changed)
    labels_changed = Signal()  # a label was set, accepted, undone...
    view_slice_changed = Signal(int)  # the labelled view moved to another slice (its suggestion dropped)

    def __init__(self, store: LabelStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.view: SliceViewport | None = None
        self.session: LabelingSession | None = None
        self.suggestion: Suggestion | None = None
        self._syncing = False
        # Set by attach_label_panel: the brush controls, the evaluation panel, their docks, the keeper.
        self.brush: BrushControls | None = None
        self.eval_panel: EvalPanel | None = None
        self.dock: QDockWidget | None = None
        self.eval_dock: QDockWidget | None = None
        self.keeper: MeasurementKeeper | None = None
        self.export: LabelExport | None = None  # File ▸ Export Labels
        self.sets, errors = available_label_sets()
        # Series-scope sets need a study list, not a slice stack; this panel labels slices.
        self.set_box = QComboBox(self)
        for name, ls in self.sets.items():
            if ls.scope != "series":
                self.set_box.addItem(name)
        self.annotator_edit = QLineEdit(default_annotator(), self)
        self.mode_box = QCheckBox("Labeling mode (keys label, then next unlabeled)", self)
        self.progress_label = QLabel("no series", self)
        self.current_label = QLabel("", self)
        self.current_label.setWordWrap(True)
        self.label_list = QListWidget(self)
        self.label_list.setToolTip("The label set (double-click to label the current slice)")
        self.done_list = QListWidget(self)
        self.done_list.setToolTip("Labels of this series (double-click to show the slice)")
        self.suggestion_label = QLabel("No AI suggestion", self)
        self.suggestion_label.setWordWrap(True)
        self.accept_button = QPushButton("Accept (Enter)", self)
        self.reject_button = QPushButton("Reject (Backspace)", self)
        self.message = QLabel("; ".join(errors), self)
        self.message.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Label set", self.set_box)
        form.addRow("Annotator", self.annotator_edit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.reject_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.mode_box)
        lay.addWidget(self.progress_label)
        lay.addWidget(self.current_label)
        lay.addWidget(self.label_list, 1)
        lay.addWidget(QLabel("Labelled", self))
        lay.addWidget(self.done_list, 1)
        lay.addWidget(self.suggestion_label)
        lay.addLayout(buttons)
        lay.addWidget(self.message)

        self.set_box.currentTextChanged.connect(lambda _t: self._new_session())
        self.annotator_edit.editingFinished.connect(self._new_session)
        self.mode_box.toggled.connect(self._mode_toggled)
        self.accept_button.clicked.connect(self.accept_suggestion)
        self.reject_button.clicked.connect(self.reject_suggestion)
        self.label_list.itemActivated.connect(self._list_activated)
        self.done_list.itemActivated.connect(self._done_activated)
        self._refresh()

    # -- wiring -------------------------------------------------------------------------------------------
    @property
    def label_set(self) -> LabelSet | None:
        return self.sets.get(self.set_box.currentText())

    @property
    def labeling(self) -> bool:
        return self.mode_box.isChecked()

    def set_label_set(self, name: str) -> None:
        """Choose the label set by name (KeyError listing the choices)."""
        i = self.set_box.findText(name)
        if i < 0:
            raise KeyError(f"no label set {name!r}; known: {', '.join(self.sets)}")
        self.set_box.setCurrentIndex(i)
        self._new_session()

    def set_view(self, view: SliceViewport | None) -> None:
        """Label what ``view`` shows."""
        if view is self.view:
            return
        if self.view is not None:
            try:
                self.view.slice_changed.disconnect(self._slice_changed)
            except (RuntimeError, TypeError):
                pass
        self.view = view
        if view is not None:
            view.slice_changed.connect(self._slice_changed)
        self._new_session()

    def volume_changed(self) -> None:
        """The viewed series changed (a volume was loaded into the view)."""
        self._new_session()

    def _new_session(self) -> None:
        self.session = None
        self.suggestion = None
        vol = self.view.volume if self.view is not None else None
        ls = self.label_set
        annotator = self.annotator_edit.text().strip()
        if vol is not None and ls is not None:
            if not annotator:
                self.message.setText("Enter an annotator name to label")
            else:
                try:
                    images = session_images(vol, ls)
                    self.session = LabelingSession(self.store, ls, images, annotator)
                    self.message.setText("")
                except ValueError as exc:
                    self.message.setText(f"Cannot label this series: {exc}")
        if self.session is not None:
            if self.labeling:
                self._show_session_index()
            else:
                self._follow_view()
        self.session_changed.emit()
        self._refresh()

    def _mode_toggled(self, on: bool) -> None:
        if on and self.session is not None:
            nxt = self.session.next_unlabeled(self.session.index)
            if nxt is not None:
                self.session.go_to(nxt)
            self._show_session_index()
            if self.view is not None:
                self.view.setFocus()
        self._refresh()

    def _follow_view(self) -> None:
        if self.session is not None and self.view is not None and self.session.label_set.scope != "series":
            self.session.go_to(self.view.slice_index)

    def _show_session_index(self) -> None:
        """Move the view to the session's current image."""
        if self.session is None or self.view is None or self.session.label_set.scope == "series":
            return
        if self.view.state.plane != "acquired":
            self.view.set_plane("acquired")
        self._syncing = True
        try:
            self.view.set_slice(self.session.index)
        finally:
            self._syncing = False

    def _slice_changed(self, _index: int) -> None:
        if self._syncing or self.session is None or self.view is None:
            return
        if self.view.state.plane != "acquired":
            return
        self._follow_view()
        self.suggestion = None  # a suggestion belongs to the image it was made for
        self._refresh()
        self.view_slice_changed.emit(self.view.slice_index)

    # -- actions ------------------------------------------------------------------------------------------
    def press_key(self, key: str) -> bool:
        """Label the current slice with the label bound to ``key``; True when a label was set."""
        if self.session is None:
            return False
        lab = self.session.press_key(key)
        if lab is None:
            return False
        self._after_change()
        return True

    def set_label(self, name: str) -> None:
        """Label the current slice ``name`` (as if its key were pressed)."""
        if self.session is not None:
            self.session.set_label(name)
            self._after_change()

    def offer_suggestion(self, label: str, probability: float, model_id: str, model_version: str) -> bool:
        """Show an AI suggestion for the current image (the AI panel calls this); False when ``label`` is
        not in the chosen label set (nothing shown)."""
        ls = self.label_set
        if ls is None or label not in ls.names:
            self.suggestion = None
            self._refresh()
            return False
        self.suggestion = Suggestion(label, model_id, model_version, float(probability))
        self._refresh()
        return True

    def accept_suggestion(self) -> bool:
        """Save the offered suggestion as the label (source "model"); False when none is offered."""
        if self.session is None or self.suggestion is None:
            return False
        self.session.accept(self.suggestion)
        self._after_change()
        return True

    def reject_suggestion(self) -> None:
        """Drop the suggestion: the image stays unlabeled and the view moves on."""
        if self.session is None:
            return
        self.session.reject()
        self._after_change()

    def undo(self) -> bool:
        done = self.session.undo() if self.session is not None else False
        if done:
            self._after_change()
        return done

    def redo(self) -> bool:
        done = self.session.redo() if self.session is not None else False
        if done:
            self._after_change()
        return done

    def _after_change(self) -> None:
        self.suggestion = None
        self._show_session_index()
        self.labels_changed.emit()
        self._refresh()

    def _list_activated(self, item: QListWidgetItem) -> None:
        name = item.data(Qt.ItemDataRole.UserRole)
        if name:
            self.set_label(str(name))

    def _done_activated(self, item: QListWidgetItem) -> None:
        z = item.data(Qt.ItemDataRole.UserRole)
        if z is not None and self.session is not None:
            self.session.go_to(int(z))
            self._show_session_index()
            self._refresh()

    def handle_key(self, ev: QKeyEvent) -> bool:
        """Labeling-mode keys of a viewport; True when handled (the viewport then ignores the key)."""
        if not self.labeling or self.session is None:
            return False
        key, mods = ev.key(), ev.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        if ctrl and key == Qt.Key.Key_Z:
            if mods & Qt.KeyboardModifier.ShiftModifier:
                self.redo()
            else:
                self.undo()
            return True
        if ctrl or mods & Qt.KeyboardModifier.AltModifier:
            return False
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            return self.accept_suggestion() or True
        if key == Qt.Key.Key_Backspace:
            self.reject_suggestion()
            return True
        text = ev.text()
        return bool(text) and self.press_key(text)

    # -- display -----------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        s = self.session
        self.label_list.clear()
        ls = self.label_set
        current = s.label_of() if s is not None else None
        if ls is not None:
            for d in ls.labels:
                item = QListWidgetItem(f"{d.key or ' '}  {d.name}")
                item.setData(Qt.ItemDataRole.UserRole, d.name)
                item.setForeground(QColor(*d.rgb))
                if current is not None and current.label == d.name:
                    item.setText(item.text() + "   ✓")
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                self.label_list.addItem(item)
        self.done_list.clear()
        if s is not None:
            where_of = {k: i for i, k in enumerate(s.images)}
            for lab in sorted(self.store.labels(s.label_set.name, series_uid=s.images[0].series_uid)
                              if s.images else [], key=lambda lab: where_of.get(lab.key, -1)):
                i = where_of.get(lab.key)
                if i is None:
                    continue
                src = ""
                if lab.source == "model" and lab.probability is not None:
                    src = f", {lab.model_id} {lab.probability:.0%}"
                item = QListWidgetItem(f"{'series' if lab.key.is_series else f'slice {i + 1}'}: {lab.label} "
                                       f"({lab.annotator}{src})")
                item.setData(Qt.ItemDataRole.UserRole, i)
                self.done_list.addItem(item)
        if s is None:
            self.progress_label.setText("No series to label" if self.view is None or self.view.volume is None
                                        else "Cannot label this series")
            self.current_label.setText("")
        else:
            done, total = s.progress
            self.progress_label.setText(f"{done} of {total} labelled")
            where = "series" if s.label_set.scope == "series" else f"slice {s.index + 1} of {len(s.images)}"
            if current is None:
                self.current_label.setText(f"{where}: unlabeled")
            else:
                src = (f" (accepted from {current.model_id} {current.model_version})"
                       if current.source == "model" else "")
                self.current_label.setText(f"{where}: {current.label} by {current.annotator}{src}")
        g = self.suggestion
        self.suggestion_label.setText("No AI suggestion" if g is None else
                                      f"AI suggests {g.label} ({g.probability:.0%}, {g.model_id} {g.model_version})")
        self.accept_button.setEnabled(g is not None and s is not None)
        self.reject_button.setEnabled(s is not None)


class MeasurementKeeper(QObject):
    """Saves a viewport's measurements as ROIs in the store and draws them again when the series reopens.

    ROIs saved for measurements carry no label set; their ``roi_id`` is remembered per measurement id so
    an edit replaces the ROI and a deletion removes it.
    """

    def __init__(self, store: LabelStore, annotator: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.annotator = annotator  # callable returning the current annotator name
        self.views: list[Any] = []
        self._rois: dict[int, dict[int, tuple[str, tuple[Any, ...]]]] = {}  # id(view) -> m.id -> (roi_id, points)
        self._restoring = False
        self.last_error = ""

    def watch(self, view: Any) -> None:
        if any(v is view for v in self.views):
            return
        self.views.append(view)
        self._rois[id(view)] = {}
        view.state.image.subscribe(lambda changes, v=view: self._image_changed(v, changes))
        if view.volume is not None:
            self.restore(view)

    def _image_changed(self, view: Any, changes: frozenset[str]) -> None:
        # One callback for both: a new volume also empties the measurement list, which must not read as
        # "the user deleted them all".
        if "volume" in changes:
            if "refined" not in changes:  # a refined volume keeps its measurements (restore skips them)
                self._rois[id(view)] = {}
            if view.volume is not None:
                self.restore(view)
        elif "measurements" in changes:
            self._changed(view)

    def restore(self, view: Any) -> int:
        """Draw the saved measurement ROIs of the view's series; returns how many."""
        from viewer.annotations.roi_geometry import slice_keys

        vol = view.volume
        try:
            keys = slice_keys(vol)
        except ValueError:
            return 0
        known = self._rois.setdefault(id(view), {})
        drawn = {roi_id for roi_id, _ in known.values()}
        n = 0
        self._restoring = True
        try:
            for roi in self.store.rois(series_uid=vol.series_uid):
                if roi.roi_id in drawn:
                    continue
                m = roi_to_measurement(roi, vol, keys)
                if m is None:
                    continue
                known[m.id] = (roi.roi_id, tuple(m.points))
                view.state.image.add_measurement(m)
                n += 1
        finally:
            self._restoring = False
        return n

    def _changed(self, view: Any) -> None:
        if self._restoring or view.volume is None:
            return
        from viewer.annotations.roi_geometry import slice_keys

        vol = view.volume
        known = self._rois.setdefault(id(view), {})
        current = {m.id: m for m in view.measurements()}
        for mid in [k for k in known if k not in current]:
            self.store.delete_roi(known.pop(mid)[0])
        try:
            keys = slice_keys(vol)
        except ValueError as exc:
            self.last_error = str(exc)
            return
        for mid, m in current.items():
            pts = tuple(tuple(p) for p in m.points)
            old = known.get(mid)
            if old is not None and old[1] == pts:
                continue
            try:
                roi = measurement_to_roi(m, vol, keys, self.annotator(), roi_id=old[0] if old else None)
            except ValueError as exc:  # drawn in a reformatted plane: kept on screen, not saved
                self.last_error = str(exc)
                continue
            self.store.put_roi(roi)
            known[mid] = (roi.roi_id, pts)


class _ViewportKeys(QObject):
    """Event filter on viewports: labeling keys go to the panel before the viewport's own bindings."""

    def __init__(self, panel: LabelPanel) -> None:
        super().__init__(panel)
        self.panel = panel

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802 (Qt override)
        if ev.type() == QEvent.Type.KeyPress and obj is self.panel.view:
            return self.panel.handle_key(ev)  # type: ignore[arg-type]
        return False


def _volume_changed(panel: LabelPanel, view: Any, changes: frozenset[str]) -> None:
    if "volume" in changes and view is panel.view:
        panel.volume_changed()


def attach_label_panel(window: MainWindow, store: LabelStore | None = None,
                       inference: Inference | None = None) -> LabelPanel:
    """Add the Labels (with brush) and Evaluation docks to a :class:`~viewer.ui.main_window.MainWindow`,
    View-menu toggles for them, and measurement persistence for its viewports.

    ``store`` defaults to the user's store (``$VIEWER_DATA_DIR/labels.sqlite``); ``inference`` lists and
    runs the models the evaluation dock scores (none: the dock says models cannot run in this window).
    """
    from viewer.ui.brush_tool import BrushControls
    from viewer.ui.eval_panel import EvalPanel

    store = store if store is not None else LabelStore()
    panel = LabelPanel(store, window)
    panel.brush = BrushControls(panel, window)
    box = QWidget(window)
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(panel, 1)
    lay.addWidget(panel.brush)
    dock = window.add_panel("Labels", "labelsDock", box)
    panel.eval_panel = EvalPanel(panel, window, inference, background=window.background)
    eval_dock = window.add_panel("Evaluation", "evaluationDock", panel.eval_panel)
    window.tabifyDockWidget(dock, eval_dock)
    dock.raise_()
    panel.dock, panel.eval_dock = dock, eval_dock
    from viewer.ui.label_export import LabelExport

    panel.export = LabelExport(window, panel)

    keeper = MeasurementKeeper(store, lambda: panel.annotator_edit.text().strip() or default_annotator(), window)
    panel.keeper = keeper
    keys = _ViewportKeys(panel)

    def wire() -> None:
        for slot in window.grid.slots:
            view = slot.view
            if any(v is view for v in keeper.views):
                continue
            keeper.watch(view)
            view.installEventFilter(keys)
            view.state.image.subscribe(functools.partial(_volume_changed, panel, view))

    def active(idx: int) -> None:
        wire()
        panel.set_view(window.grid.slots[idx].view)

    wire()
    window.grid.active_changed.connect(active)
    window.grid.layout_changed.connect(lambda _n: active(window.grid.active))
    panel.set_view(window.grid.slots[window.grid.active].view)
    window.label_panel = panel
    return panel


def offer_ai_suggestions(labels: LabelPanel, ai: AiPanel) -> None:
    """Wire the AI dock's results into labelling: in labelling mode, the model's top label for the image
    shown is offered as the suggestion (Enter accepts it, saved with source "model"; Backspace rejects).

    Offered when a slice, series or box result arrives for the image shown, and when the reader (or the
    labelling session) moves to an image the series' results already cover.
    """

    def offer(k: int, pred: Predictions | None) -> None:
        if pred is None or not labels.labeling or labels.view is None or labels.view.slice_index != k:
            return
        label, probability = pred.top(1)[0][0]
        labels.offer_suggestion(label, probability, pred.model_id, pred.model_version)

    def from_results() -> None:
        view = labels.view
        if view is None or view.volume is None or view.state.plane != "acquired":
            return
        k = view.slice_index
        offer(k, ai.results.of(view.volume.series_uid).slice_predictions(k))

    def result(kind: str, pred: object) -> None:
        if kind == "box" and isinstance(pred, Predictions) and labels.view is not None:
            offer(labels.view.slice_index, pred)
        elif kind in ("slice", "series"):
            from_results()

    ai.result_ready.connect(result)
    # After the session moved the view (its own slice handler ran first and dropped the old suggestion).
    labels.labels_changed.connect(from_results)
    labels.session_changed.connect(from_results)
    labels.mode_box.toggled.connect(lambda _on: from_results())
    labels.view_slice_changed.connect(lambda _k: from_results())


__all__ = ["LabelPanel", "MeasurementKeeper", "attach_label_panel", "default_annotator", "offer_ai_suggestions"]
