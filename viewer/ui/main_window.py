"""The main window: study browser (left), viewport grid (centre), measurements (right), menus, toolbar.

Opening: File menu (folder, files, DICOMDIR), recent folders, drag and drop of files/folders onto the
window, and the command-line paths (``MainWindow.open_paths``). Double-clicking a series (or dragging it
into a viewport) loads it on the background pool; a one-slice preview is drawn as soon as it is decoded,
the whole volume replaces it when loaded, and an error is shown in the viewport and in the browser.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow, QSpinBox, QWidget

from viewer.ui.browser import StudyBrowser
from viewer.ui.cine import Cine
from viewer.ui.layouts import LAYOUTS, ViewportGrid, nearest_slice, slice_position
from viewer.ui.measure_panel import MeasurePanel
from viewer.ui.settings import Settings
from viewer.ui.workers import Background, Filling, IoServices, Preview, load_job

APP_TITLE = "DICOM Viewer"


class MainWindow(QMainWindow):
    """The application window. Signals report load milestones (used by tests and benchmarks)."""

    first_image_shown = Signal(int)  # slot index: the preview or the volume is on screen
    series_loaded = Signal(int)  # slot index: the whole volume is loaded
    series_failed = Signal(int, str)  # slot index, reason
    export_finished = Signal(str)  # the export's summary, or "failed: <reason>"

    def __init__(self, io: IoServices, background: Background | None = None, settings: Settings | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.io = io
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.background = background or Background(parent=self)
        self.settings = settings or Settings()
        self.grid = ViewportGrid(self)
        self.setCentralWidget(self.grid)
        self.browser = StudyBrowser(self.background, io, self)
        self.measure_panel = MeasurePanel(self)
        self.cine = Cine(self)
        self.cine.set_fps(self.settings.cine_fps())
        self.auto_open = True
        self._load_started: dict[int, float] = {}
        self.last_first_image_ms: float | None = None

        left = QDockWidget("Studies", self)
        left.setObjectName("studiesDock")
        left.setWidget(self.browser)
        left.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, left)
        right = QDockWidget("Measurements", self)
        right.setObjectName("measurementsDock")
        right.setWidget(self.measure_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, right)
        self.studies_dock, self.measurements_dock = left, right
        self.resizeDocks([left, right], [360, 220], Qt.Orientation.Horizontal)

        self._build_actions()
        self.browser.series_activated.connect(lambda key: self.load_stack(key))
        self.browser.scan_finished.connect(self._on_scan_finished)
        self.grid.stack_dropped.connect(lambda idx, key: self.load_stack(key, idx))
        self.grid.active_changed.connect(self._on_active_changed)
        self.grid.layout_changed.connect(self._on_layout_changed)
        self.statusBar().showMessage("Ready")
        self._on_active_changed(self.grid.active)

    # -- actions ----------------------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.act_open_folder = QAction("Open &Folder…", self, shortcut=QKeySequence.StandardKey.Open,
                                       triggered=self._ask_folder)
        self.act_open_files = QAction("Open F&iles…", self, triggered=self._ask_files)
        self.act_open_dicomdir = QAction("Open &DICOMDIR…", self, triggered=self._ask_dicomdir)
        file_menu.addActions([self.act_open_folder, self.act_open_files, self.act_open_dicomdir])
        self.act_export = QAction("&Export Series…", self, triggered=self._ask_export)
        file_menu.addAction(self.act_export)
        self.recent_menu = file_menu.addMenu("&Recent Folders")
        self._fill_recent_menu()
        file_menu.addSeparator()
        file_menu.addAction(QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit, triggered=self.close))

        view_menu = self.menuBar().addMenu("&View")
        self.layout_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for name, label, key in (("1x1", "1×1", "Ctrl+1"), ("1x2", "1×2", "Ctrl+2"), ("2x2", "2×2", "Ctrl+4"),
                                 ("mpr", "MPR", "Ctrl+M")):
            act = QAction(label, self, checkable=True, shortcut=QKeySequence(key))
            act.setToolTip(f"Layout {label} ({key})")
            act.triggered.connect(lambda _=False, n=name: self.set_layout(n))
            group.addAction(act)
            view_menu.addAction(act)
            self.layout_actions[name] = act
        view_menu.addSeparator()
        self.act_link = QAction("&Link Scrolling", self, checkable=True, checked=True,
                                toolTip="Scroll series of the same frame of reference together, by position")
        self.act_link.toggled.connect(lambda on: setattr(self.grid, "linked", on))
        view_menu.addAction(self.act_link)
        view_menu.addSeparator()
        view_menu.addAction(self.studies_dock.toggleViewAction())
        view_menu.addAction(self.measurements_dock.toggleViewAction())

        tools_menu = self.menuBar().addMenu("&Tools")
        self.act_cine = QAction("&Cine", self, checkable=True, shortcut=QKeySequence("C"),
                                toolTip="Play the slices of the active viewport (C)")
        self.act_cine.triggered.connect(self._toggle_cine)
        self.cine.running_changed.connect(self.act_cine.setChecked)
        tools_menu.addAction(self.act_cine)

        tb = self.addToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.addAction(self.act_open_folder)
        tb.addSeparator()
        for act in self.layout_actions.values():
            tb.addAction(act)
        tb.addAction(self.act_link)
        tb.addSeparator()
        tb.addAction(self.act_cine)
        self.fps_box = QSpinBox(self)
        self.fps_box.setRange(1, 60)
        self.fps_box.setSuffix(" fps")
        self.fps_box.setValue(self.cine.fps)
        self.fps_box.setToolTip("Cine frame rate")
        self.fps_box.valueChanged.connect(self._set_fps)
        tb.addWidget(self.fps_box)
        self.layout_actions[self.grid.layout_name].setChecked(True)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_folders()
        for path in recent:
            self.recent_menu.addAction(path, lambda p=path: self.open_paths([p]))
        if not recent:
            act = self.recent_menu.addAction("(none)")
            act.setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear", self._clear_recent)

    def _clear_recent(self) -> None:
        self.settings.clear_recent()
        self._fill_recent_menu()

    def _ask_export(self) -> None:
        slot = self.grid.slots[self.grid.active]
        stack = self.browser.stacks.get(slot.stack_key or "") if getattr(slot, "stack_key", None) else None
        if stack is None or self.io.export_series is None:
            self.statusBar().showMessage("Export: load a series into the active viewport first")
            return
        from viewer.ui.export_dialog import ExportDialog

        desc = getattr(stack, "description", "") or "(no description)"
        dialog = ExportDialog(self, f"{getattr(stack, 'modality', '')}  {desc}  — {len(stack.files)} file(s)")
        if dialog.exec():
            self.export_stack(slot.stack_key, *dialog.choice())

    def export_stack(self, key: str, out_dir: str, codec: str, deidentify: bool = False) -> int | None:
        """Write a verified lossless copy of the browser's series ``key`` in the background; the status
        bar shows progress and then the ratio and speed (or why it failed)."""
        stack = self.browser.stacks.get(key)
        export = self.io.export_series
        if stack is None or export is None:
            return None
        files = list(stack.files)

        def job(ctx: Any) -> object:
            return export(files, out_dir, codec, deidentify=deidentify, progress=ctx.progress,
                          cancel=ctx.cancelled)

        def done(report: Any) -> None:
            self.statusBar().showMessage("Export: " + report.summary())
            self.export_finished.emit(report.summary())

        def failed(message: str) -> None:
            self.statusBar().showMessage("Export failed: " + message.splitlines()[0])
            self.export_finished.emit("failed: " + message.splitlines()[0])

        self.statusBar().showMessage(f"Exporting {len(files)} file(s) as {codec}…")
        return self.background.submit(
            "export", job, on_result=done, on_error=failed,
            on_progress=lambda d, t: self.statusBar().showMessage(f"Exporting as {codec}: {d}/{t}"))

    def _ask_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder")
        if path:
            self.open_paths([path])

    def _ask_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open DICOM files")
        if paths:
            self.open_paths(paths)

    def _ask_dicomdir(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open DICOMDIR", "", "DICOMDIR (DICOMDIR dicomdir);;All (*)")
        if path:
            self.open_paths([path])

    # -- opening and loading ----------------------------------------------------------------------------------
    def open_paths(self, paths: list[str]) -> None:
        """Index ``paths`` (folders, files, a DICOMDIR); series appear in the browser."""
        paths = [str(p) for p in paths]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            self.statusBar().showMessage("Not found: " + ", ".join(missing))
            paths = [p for p in paths if p not in missing]
            if not paths:
                return
        if len(paths) == 1:
            folder = paths[0] if os.path.isdir(paths[0]) else str(Path(paths[0]).parent)
            self.settings.add_recent_folder(os.path.abspath(folder))
            self._fill_recent_menu()
        self.setWindowTitle(f"{APP_TITLE} — {', '.join(Path(p).name for p in paths)}")
        self.browser.open_paths(paths)

    def _on_scan_finished(self, n_series: int, n_bad: int) -> None:
        self.statusBar().showMessage(f"{n_series} series found" + (f", {n_bad} files not loadable" if n_bad else ""))
        if self.auto_open and n_series and all(s.volume is None and not s.loading for s in self.grid.slots):
            # Like Weasis opening a study from the command line: show the largest series straight away.
            key = max(self.browser.stacks, key=lambda k: len(getattr(self.browser.stacks[k], "files", [])))
            self.load_stack(key, 0)

    def load_stack(self, key: str, slot_index: int | None = None) -> int | None:
        """Load the browser's series ``key`` into viewport ``slot_index`` (default: a free or the active one)."""
        stack = self.browser.stacks.get(key)
        if stack is None:
            return None
        if self.grid.layout_name == "mpr":
            self.set_layout("1x1")
        idx = self.grid.next_free_slot() if slot_index is None else slot_index
        slot = self.grid.slots[idx]
        self.grid.set_active(idx)
        slot.stack_key = key
        slot.loading = True
        slot.preview = None
        slot.filling = None
        desc = getattr(stack, "description", "") or "(no description)"
        slot.set_title(f"{getattr(stack, 'modality', '')}  {desc}  — loading…")
        self.browser.select(key)
        self._load_started[idx] = time.perf_counter()
        files = list(getattr(stack, "files", []))
        return self.background.submit(
            f"load:{idx}", load_job(self.io, files, series_uid=getattr(stack, "series_uid", "") or "",
                                    warnings=list(getattr(stack, "warnings", []) or []),
                                    records=getattr(stack, "records", None) or None),
            on_partial=lambda p, i=idx: self._on_preview(i, p),
            on_result=lambda v, i=idx, k=key: self._on_loaded(i, k, v),
            on_error=lambda m, i=idx, k=key: self._on_load_failed(i, k, m),
            on_progress=lambda d, t, i=idx: self._on_load_progress(i, d, t))

    def _mark_first_image(self, idx: int) -> None:
        started = self._load_started.pop(idx, None)
        if started is not None:
            self.last_first_image_ms = (time.perf_counter() - started) * 1000.0
            self.first_image_shown.emit(idx)

    def _on_preview(self, idx: int, preview: Preview | Filling) -> None:
        slot = self.grid.slots[idx]
        if isinstance(preview, Filling):
            self._on_filling(idx, preview)
            return
        slot.preview = preview.volume
        slot.view.set_volume(preview.volume, 0)
        if preview.total > 1:
            slot.view.show_message(f"Loading {preview.total} images…")
        self._mark_first_image(idx)

    def _on_filling(self, idx: int, filling: Filling) -> None:
        """Scroll while decoding: the slot shows the volume being filled (from the slice on screen);
        a slice not decoded yet is black with a "decoding" note until it arrives."""
        slot = self.grid.slots[idx]
        view = slot.view
        if getattr(slot, "filling", None) is None or slot.filling.volume is not filling.volume:
            preview = slot.preview
            k = nearest_slice(filling.volume, slice_position(preview, 0)) if preview is not None else None
            window = (view.center, view.width_hu) if preview is not None else None
            slot.preview = None
            view.set_volume(filling.volume, filling.volume.shape[0] // 2 if k is None else k)
            if window is not None:
                view.set_window(*window)
            if not getattr(slot, "filling_hooked", False):
                view.slice_changed.connect(lambda _k, i=idx: self._show_filling_state(i))
                slot.filling_hooked = True
        newly = filling.ready if getattr(slot, "filling", None) is None else filling.ready & ~slot.filling.ready
        slot.filling = filling
        if view.state.plane != "acquired" or newly[min(view.slice_index, len(newly) - 1)]:
            view.state.notify("slice")  # the slice on screen (or an MPR plane through it) changed
        self._show_filling_state(idx)

    def _show_filling_state(self, idx: int) -> None:
        slot = self.grid.slots[idx]
        filling = getattr(slot, "filling", None)
        if filling is None:
            return
        ready = filling.ready
        k = slot.view.slice_index
        if slot.view.state.plane == "acquired" and 0 <= k < len(ready) and not ready[k]:
            slot.view.show_message(f"Slice {k + 1} is being decoded… ({int(ready.sum())}/{len(ready)} ready)")
        else:
            slot.view.clear_message()

    def _on_load_progress(self, idx: int, done: int, total: int) -> None:
        slot = self.grid.slots[idx]
        base = slot.title.text().split("  — ")[0]
        slot.set_title(f"{base}  — loading {done}/{total}")

    def _on_loaded(self, idx: int, key: str, volume: Any) -> None:
        slot = self.grid.slots[idx]
        slot.loading = False
        start = None
        window = None
        preview = getattr(slot, "preview", None)
        if preview is not None:
            # Keep the slice the user already sees: the preview's position in the full volume.
            start = nearest_slice(volume, slice_position(preview, 0))
        if getattr(slot, "filling", None) is not None:
            # Scrolled while decoding: keep that slice and window.
            start, window = slot.view.slice_index, (slot.view.center, slot.view.width_hu)
            slot.filling = None
        slot.preview = None
        slot.show_volume(volume, start)  # also clears the "Loading" message
        if window is not None:
            slot.view.set_window(*window)
        stack = self.browser.stacks.get(key)
        desc = getattr(stack, "description", "") or "(no description)"
        z, y, x = volume.shape
        slot.set_title(f"{volume.modality}  {desc}  — {z}×{y}×{x}")
        tips = list(getattr(volume, "warnings", []) or [])
        slot.title.setToolTip("\n".join(tips))
        self._mark_first_image(idx)
        if idx == self.grid.active:
            self._on_active_changed(idx)
        self.series_loaded.emit(idx)

    def _on_load_failed(self, idx: int, key: str, message: str) -> None:
        slot = self.grid.slots[idx]
        slot.preview = None
        slot.filling = None
        slot.show_error(message)
        slot.set_title("Cannot load this series")
        slot.title.setToolTip(message)
        self.browser.mark_error(key, message.splitlines()[0])
        self.statusBar().showMessage("Cannot load series: " + message.splitlines()[0])
        self._load_started.pop(idx, None)
        self.series_failed.emit(idx, message)

    # -- layout, cine ---------------------------------------------------------------------------------------
    def set_layout(self, name: str) -> None:
        self.grid.set_layout(name)

    def _on_layout_changed(self, name: str) -> None:
        act = self.layout_actions.get(name) if hasattr(self, "layout_actions") else None
        if act is not None:
            act.setChecked(True)
        if name in LAYOUTS:
            self.settings.set_layout(name)

    def _on_active_changed(self, idx: int) -> None:
        view = self.grid.slots[idx].view
        self.cine.set_target(view)
        self.measure_panel.set_view(view)

    def _toggle_cine(self) -> None:
        self.cine.set_target(self.grid.slots[self.grid.active].view)
        self.cine.toggle()
        if not self.cine.running:
            self.act_cine.setChecked(False)

    def _set_fps(self, fps: int) -> None:
        self.cine.set_fps(fps)
        self.settings.set_cine_fps(fps)

    # -- drag and drop of files/folders -------------------------------------------------------------------------
    def dragEnterEvent(self, ev: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)
            ev.acceptProposedAction()

    def closeEvent(self, ev: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.cine.stop()
        self.background.cancel_all()
        self.background.wait_idle(3000)
        super().closeEvent(ev)

