"""The main window: study browser (left), viewport grid (centre), measurements (right), menus, toolbar.

Opening: File menu (folder, files, DICOMDIR), recent folders, drag and drop of files/folders onto the
window, and the command-line paths (``MainWindow.open_paths``). Double-clicking a series (or dragging it
into a viewport) loads it on the background pool; a one-slice preview is drawn as soon as it is decoded,
the whole volume replaces it when loaded, and an error is shown in the viewport and in the browser.
"""

from __future__ import annotations

import functools
import os
import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (QAbstractSpinBox, QApplication, QComboBox, QDockWidget, QFileDialog, QLineEdit,
                               QMainWindow, QMenu, QPlainTextEdit, QSpinBox, QTextEdit, QToolBar, QToolButton,
                               QWidget)

from viewer.core.derived import DerivedOverlay
from viewer.core.jobs import JobContext
from viewer.core.volume import Volume
from viewer.ui.browser import StudyBrowser
from viewer.ui.cine import Cine
from viewer.state.arrivals import Arrival
from viewer.state.services import ArrivedLike, ExportSummary
from viewer.state.workspace import Workspace, nearest_slice, slice_position
from viewer.ui.layouts import LAYOUTS, ViewportGrid
from viewer.ui.measure_panel import MeasurePanel
from viewer.ui.settings import Settings
from viewer.ui.volume_bar import attach_volume_bar
from viewer.ui.workers import Background, Filling, IoServices, Preview, arrival_job, load_job, whole_load_job

if TYPE_CHECKING:
    from viewer.ui.ai_panel import AiPanel
    from viewer.ui.batch_results import BatchResults
    from viewer.ui.label_panel import LabelPanel
    from viewer.ui.pacs_dialog import PacsPanel
    from viewer.ui.pacs_send import PacsSend

APP_TITLE = "DICOM Viewer"
CLOSE_WAIT_MS = 30000
DERIVED_MODALITIES = ("SEG", "SR")
# Widgets that keep the keyboard when clicked in a dock: the user is typing or stepping a value.
KEEP_FOCUS_WIDGETS = (QLineEdit, QAbstractSpinBox, QComboBox, QTextEdit, QPlainTextEdit)


class MainWindow(QMainWindow):
    """The application window. Signals report load milestones (used by tests and benchmarks)."""

    first_image_shown = Signal(int)  # slot index: the preview or the volume is on screen
    series_loaded = Signal(int)  # slot index: the whole volume is loaded
    series_failed = Signal(int, str)  # slot index, reason
    export_finished = Signal(str)  # the export's summary, or "failed: <reason>"
    derived_opened = Signal(object)  # a DerivedOverlay (SEG/SR) now kept in the workspace

    def __init__(self, io: IoServices, background: Background | None = None, settings: Settings | None = None,
                 parent: QWidget | None = None, *, workspace: Workspace | None = None) -> None:
        super().__init__(parent)
        self.io = io
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.background = background or Background(parent=self)
        self.settings = settings or Settings()
        # The application model: series, viewports, AI results. Widgets below draw it.
        self.workspace = workspace if workspace is not None else Workspace()
        self.grid = ViewportGrid(self.workspace, self)
        self.setCentralWidget(self.grid)
        self.browser = StudyBrowser(self.background, io, self, workspace=self.workspace)
        self.measure_panel = MeasurePanel(self)
        self.cine = Cine(self)
        self.cine.set_fps(self.settings.cine_fps())
        self.auto_open = True
        self._load_started: dict[int, float] = {}
        self._load_reference: dict[int, int] = {}
        self._filling: dict[int, Filling] = {}  # slot -> the volume being decoded there (scroll while decoding)
        self._filling_hooked: set[int] = set()
        self._titles: dict[int, str] = {}  # viewport -> title of what load_files loads there
        self._tool_unsubscribe: Callable[[], None] | None = None
        # The optional panels (viewer.app adds them with attach_label_panel / attach_ai_panel /
        # attach_batch_results / attach_pacs_dock, which set these).
        self.label_panel: LabelPanel | None = None
        self.ai_panel: AiPanel | None = None
        self.ai_dock: QDockWidget | None = None
        self.batch_results: BatchResults | None = None
        self.pacs_panel: PacsPanel | None = None
        self.pacs_dock: QDockWidget | None = None
        self.act_pacs: QAction | None = None
        self.pacs_send: PacsSend | None = None
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
        self._set_smooth(self.act_smooth.isChecked())
        self.browser.series_activated.connect(lambda key: self.load_stack(key))
        self.browser.scan_finished.connect(self._on_scan_finished)
        self.grid.stack_dropped.connect(lambda idx, key: self.load_stack(key, idx))
        self.grid.active_changed.connect(self._on_active_changed)
        self.grid.layout_changed.connect(self._on_layout_changed)
        self.statusBar().showMessage("Ready")
        self._on_active_changed(self.grid.active)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._focus_changed)

    # -- actions ----------------------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        file_menu = self.file_menu = self.menuBar().addMenu("&File")
        self.act_open_folder = self._action("Open &Folder…", self._ask_folder, QKeySequence.StandardKey.Open)
        self.act_open_files = self._action("Open F&iles…", self._ask_files)
        self.act_open_dicomdir = self._action("Open &DICOMDIR…", self._ask_dicomdir)
        self.act_open_derived = self._action("Open Segmentation or &Report (SEG/SR)…", self._ask_derived)
        self.act_open_derived.setToolTip("Draw a DICOM SEG or SR over the series it references")
        file_menu.addActions([self.act_open_folder, self.act_open_files, self.act_open_dicomdir,
                              self.act_open_derived])
        self.act_export = self._action("&Export Series…", self._ask_export)
        file_menu.addAction(self.act_export)
        self.recent_menu = file_menu.addMenu("&Recent Folders")
        self._fill_recent_menu()
        file_menu.addSeparator()
        # Panels add their File actions (labels export) above this separator.
        self.file_menu_end = file_menu.addSeparator()
        file_menu.addAction(self._action("&Quit", self.close, QKeySequence.StandardKey.Quit))

        view_menu = self.view_menu = self.menuBar().addMenu("&View")
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
        self.act_link.toggled.connect(self.workspace.set_linked)
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
        tb.addSeparator()
        self._build_reading_tools(tb, view_menu)
        from viewer.ui.display_filter import FilterControls

        self.filter_controls = FilterControls(self, self._all_viewports)
        self.filter_button = self.filter_controls.button
        tb.addWidget(self.filter_button)
        tb.addSeparator()
        self.fps_box = QSpinBox(self)
        self.fps_box.setRange(1, 60)
        self.fps_box.setSuffix(" fps")
        self.fps_box.setValue(self.cine.fps)
        self.fps_box.setToolTip("Cine frame rate")
        self.fps_box.valueChanged.connect(self._set_fps)
        tb.addWidget(self.fps_box)
        self.layout_actions[self.grid.layout_name].setChecked(True)

    def _action(self, text: str, slot: Callable[[], object],
                shortcut: QKeySequence.StandardKey | None = None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(lambda _checked=False: slot())
        return act

    def _build_reading_tools(self, tb: QToolBar, view_menu: QMenu) -> None:
        """W/L presets and the mouse tools on the toolbar (the keys do the same), and image smoothing."""
        self.presets_menu = QMenu("Window presets", self)
        self.presets_menu.aboutToShow.connect(self._fill_presets_menu)
        self.presets_button = QToolButton(self)
        self.presets_button.setText("Presets")
        self.presets_button.setToolTip("Window presets of the active series' modality (keys 1-9; 0: the file's)")
        self.presets_button.setMenu(self.presets_menu)
        self.presets_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        tb.addWidget(self.presets_button)
        self.tool_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for tool, label, key in (("window", "W/L", "W"), ("pan", "Pan", ""), ("zoom", "Zoom", ""),
                                 ("distance", "Distance", "D"), ("angle", "Angle", "A"),
                                 ("rect", "Rectangle ROI", "Q"), ("ellipse", "Ellipse ROI", "O")):
            act = QAction(label, self, checkable=True)
            act.setToolTip(f"{label} tool ({key})" if key else f"{label} tool")
            act.triggered.connect(lambda _=False, t=tool: self._use_tool(t))
            group.addAction(act)
            tb.addAction(act)
            self.tool_actions[tool] = act
        self.tool_actions["window"].setChecked(True)
        view_menu.addSeparator()
        self.act_smooth = QAction("&Smooth When Zoomed", self, checkable=True, checked=self.settings.smooth(),
                                  toolTip="Bilinear interpolation of the image when magnified")
        self.act_smooth.toggled.connect(self._set_smooth)
        view_menu.addAction(self.act_smooth)

    def _fill_presets_menu(self) -> None:
        from viewer.core.presets import window_presets

        self.presets_menu.clear()
        view = self.grid.active_slot.view
        vol = view.volume
        file_action = self.presets_menu.addAction("0  File / default", lambda: self._preset(0))
        file_action.setEnabled(vol is not None)
        for i, p in enumerate(window_presets(vol.modality if vol is not None else ""), start=1):
            self.presets_menu.addAction(f"{i}  {p.name}  (W {p.width:.0f} L {p.center:.0f})",
                                        functools.partial(self._preset, i))

    def _preset(self, number: int) -> None:
        self.grid.active_slot.view.run_action(f"preset:{number}")
        self.grid.focus_active()

    def _use_tool(self, tool: str) -> None:
        self.grid.active_slot.view.run_action(f"tool:{tool}")
        self.grid.focus_active()

    def _tool_changed(self, changes: frozenset[str]) -> None:
        if "tool" in changes:
            act = self.tool_actions.get(self.grid.active_slot.view.state.tool)
            if act is not None:
                act.setChecked(True)

    def _all_viewports(self) -> list[Any]:
        """Every slice viewport shown (an MPR slot holds three)."""
        planes = list(self.grid.mpr.viewports.values()) if self.grid.mpr is not None else []
        return [slot.view for slot in self.grid.slots] + planes

    def _set_smooth(self, on: bool) -> None:
        self.settings.set_smooth(on)
        for slot in self.grid.slots:
            slot.view.set_smooth(on)

    def add_panel(self, title: str, object_name: str, widget: QWidget,
                  area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Dock ``widget`` as panel ``title`` with its show/hide toggle in the View menu."""
        dock = QDockWidget(title, self)
        dock.setObjectName(object_name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.view_menu.addAction(dock.toggleViewAction())
        return dock

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_folders()
        for path in recent:
            self.recent_menu.addAction(path, functools.partial(self.open_paths, [path]))
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
        key = self.grid.slots[self.grid.active].stack_key
        stack = self.browser.stacks.get(key) if key is not None else None
        if key is None or stack is None or self.io.export_series is None:
            self.statusBar().showMessage("Export: load a series into the active viewport first")
            return
        from viewer.ui.export_dialog import ExportDialog

        desc = stack.description or "(no description)"
        dialog = ExportDialog(self, f"{stack.modality}  {desc}  — {len(stack.files)} file(s)")
        if dialog.exec():
            self.export_stack(key, *dialog.choice())

    def export_stack(self, key: str, out_dir: str, codec: str, deidentify: bool = False) -> int | None:
        """Write a verified lossless copy of the browser's series ``key`` in the background; the status
        bar shows progress and then the ratio and speed (or why it failed)."""
        stack = self.browser.stacks.get(key)
        export = self.io.export_series
        if stack is None or export is None:
            return None
        files = list(stack.files)

        def job(ctx: JobContext) -> object:
            return export(files, out_dir, codec, deidentify=deidentify, progress=ctx.progress,
                          cancel=ctx.cancelled)

        def done(report: ExportSummary) -> None:
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

    def _ask_derived(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open DICOM SEG or SR", "", "DICOM (*.dcm *);;All (*)")
        if path:
            self.open_derived(path)

    def open_derived(self, path: str) -> int | None:
        """Read a DICOM SEG or SR in the background and draw it over the series it references (now, in
        every viewport showing that series, or when that series is opened later)."""
        read = self.io.read_derived
        if read is None:
            return None

        def done(overlay: object) -> None:
            assert isinstance(overlay, DerivedOverlay)
            self.workspace.add_derived(overlay)
            shown = [vp.index + 1 for vp in self.workspace.viewports if vp.shown is not None
                     and overlay.applies_to(vp.shown.info)]
            what = f"{overlay.kind} “{overlay.description}”"
            where = f"viewport{'s' if len(shown) > 1 else ''} {', '.join(map(str, shown))}"
            self.statusBar().showMessage(f"{what} shown over {where}" if shown else
                                         f"{what} kept: open the series it references to see it")
            self.derived_opened.emit(overlay)

        return self.background.submit(
            f"derived:{path}", lambda _ctx: read(path), on_result=done,
            on_error=lambda m: self.statusBar().showMessage("Cannot show " + Path(path).name + ": "
                                                            + m.splitlines()[0]))

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
        images = [k for k, s in self.browser.stacks.items() if s.modality not in DERIVED_MODALITIES]
        for key, stack in self.browser.stacks.items():
            if stack.modality in DERIVED_MODALITIES and stack.files:
                self.open_derived(stack.files[0])  # segmentations found with the study: drawn over it
        if self.auto_open and images and all(s.volume is None and not s.loading for s in self.grid.slots):
            # Like Weasis opening a study from the command line: show the largest series straight away.
            key = max(images, key=lambda k: len(self.browser.stacks[k].files))
            self.load_stack(key, 0)

    def load_stack(self, key: str, slot_index: int | None = None) -> int | None:
        """Load the browser's series ``key`` into viewport ``slot_index`` (default: a free or the active one)."""
        stack = self.browser.stacks.get(key)
        if stack is None:
            return None
        if stack.modality in DERIVED_MODALITIES and stack.files:
            # A segmentation is drawn over its source series, not shown as an image of its own.
            return self.open_derived(stack.files[0])
        if self.grid.layout_name == "mpr":
            self.set_layout("1x1")
        idx = self.grid.next_free_slot() if slot_index is None else slot_index
        slot = self.grid.slots[idx]
        # The viewport the reader was on: a series loading elsewhere joins its position (when linked),
        # never the reverse.
        self._load_reference[idx] = self.grid.active
        self.grid.set_active(idx)
        slot.model.start_loading(key)
        self._filling.pop(idx, None)
        desc = stack.description or "(no description)"
        slot.set_title(f"{stack.modality}  {desc}  — loading…")
        self.browser.select(key)
        self._load_started[idx] = time.perf_counter()
        cached = self.workspace.cache.get(self.workspace.cache_key(stack))
        if cached is not None:
            self.background.cancel(f"load:{idx}")  # a load still running here is superseded
            self._on_loaded(idx, key, cached)  # decoded before: shown at once
            return None
        return self._submit_load(idx, key, load_job(self.io, list(stack.files), series_uid=stack.series_uid,
                                                    warnings=list(stack.warnings), records=stack.records or None))

    def _submit_load(self, idx: int, key: str, job: Any) -> int:
        return self.background.submit(
            f"load:{idx}", job,
            on_partial=functools.partial(self._on_preview, idx),
            on_result=functools.partial(self._on_loaded, idx, key),
            on_error=functools.partial(self._on_load_failed, idx, key),
            on_progress=functools.partial(self._on_load_progress, idx))

    def load_files(self, files: list[str], slot_index: int, *, title: str, series_uid: str = "") -> int:
        """Load ``files`` of one series that is not in the browser (a PACS retrieve, possibly still
        arriving) into viewport ``slot_index``: preview first, then the volume, titled ``title``."""
        self._load_reference[slot_index] = self.grid.active
        self.grid.set_active(slot_index)
        slot = self.grid.slots[slot_index]
        slot.model.start_loading(series_uid)
        slot.set_title(f"{title}  — loading…")
        self._titles[slot_index] = title
        self._load_started[slot_index] = time.perf_counter()
        return self._submit_load(slot_index, "", load_job(self.io, list(files), series_uid=series_uid))

    def open_arrival(self, arrival: Arrival, slot_index: int) -> None:
        """Show the series of ``arrival`` (a PACS retrieve) in viewport ``slot_index`` while it arrives.

        Each stored instance is decoded once, off the UI thread, and the viewport grows with what is stored
        (:meth:`~viewer.state.workspace.ViewportModel.grow`: slices not stored yet are blank with a note,
        the reader's slice, window and zoom stay put); when the retrieve ends, the whole load of the stored
        files refines it in place (exact geometry, the same volume as opening the folder).
        """
        self._load_reference[slot_index] = self.grid.active
        self.grid.set_active(slot_index)
        slot = self.grid.slots[slot_index]
        self.background.cancel(f"load:{slot_index}")
        slot.model.start_loading(arrival.series_uid)
        slot.set_title(f"{arrival.title}  — retrieving…")
        self._titles[slot_index] = arrival.title
        self._load_started[slot_index] = time.perf_counter()
        self._filling.pop(slot_index, None)
        channel = f"arrive:{slot_index}:{id(arrival)}"
        feed: queue.Queue[str | None] = queue.Queue()
        sent = [0]
        job: list[int] = []
        consumed = [0]  # files in the whole volume when the job returned it before the retrieve ended

        def changed(changes: frozenset[str]) -> None:
            ours = slot.model.status in ("loading", "preview") or (consumed[0] and slot.model.status == "loaded")
            if slot.model.series_key != arrival.series_uid or not ours:
                unsubscribe()  # the reader put another series here meanwhile
                self.background.cancel(channel)
                return
            for path in arrival.files[sent[0]:]:
                feed.put(path)
            sent[0] = len(arrival.files)
            if not job and sent[0] and self.io.arriving_series is not None and not arrival.done:
                # It returns the whole volume once every instance expected is stored (or once fed None):
                # _on_loaded refines its last snapshot with it.
                job.append(self.background.submit(
                    channel, arrival_job(self.io, feed, lambda: arrival.total, series_uid=arrival.series_uid,
                                         consumed=consumed),
                    on_partial=functools.partial(self._on_arrived, slot_index, channel),
                    on_result=functools.partial(self._on_loaded, slot_index, ""),
                    on_error=functools.partial(self._on_load_failed, slot_index, ""),
                    on_progress=functools.partial(self._on_load_progress, slot_index)))
            if "done" in changes:
                unsubscribe()
                feed.put(None)
                if job and 0 < consumed[0] < len(arrival.files):
                    # More than the expected count arrived after the whole volume was shown (a stale
                    # count): all of it is loaded again and refines it in place.
                    self._titles[slot_index] = arrival.title
                    self._submit_load(slot_index, "", whole_load_job(self.io, list(arrival.files),
                                                                     series_uid=arrival.series_uid))
                if job:
                    return
                if not arrival.files:
                    self._on_load_failed(slot_index, "", arrival.error or "nothing of this series was stored")
                    return
                self._submit_load(slot_index, "", whole_load_job(self.io, list(arrival.files),
                                                                 series_uid=arrival.series_uid))

        unsubscribe = arrival.subscribe(changed)
        changed(frozenset({"files", "done"} if arrival.done else {"files"}))

    def _on_arrived(self, idx: int, channel: str, arrived: ArrivedLike) -> None:
        slot = self.grid.slots[idx]
        if slot.model.series_key != arrived.volume.series_uid or slot.model.status not in ("loading", "preview"):
            self.background.cancel(channel)  # another series is shown there now
            return
        slot.model.grow(arrived.volume, arrived.ready, arrived.total)
        total = arrived.total if arrived.total > 0 else "?"
        slot.set_title(f"{self._titles.get(idx, '')}  — {arrived.arrived}/{total} stored")
        self._mark_first_image(idx)

    def _mark_first_image(self, idx: int) -> None:
        started = self._load_started.pop(idx, None)
        if started is not None:
            self.last_first_image_ms = (time.perf_counter() - started) * 1000.0
            self.first_image_shown.emit(idx)

    def _on_preview(self, idx: int, preview: Preview | Filling) -> None:
        if isinstance(preview, Filling):
            self._on_filling(idx, preview)
            return
        self.grid.slots[idx].model.show_preview(preview.volume, preview.total)
        self._mark_first_image(idx)

    def _on_filling(self, idx: int, filling: Filling) -> None:
        """Scroll while decoding: the viewport shows the volume being filled in place of the preview
        (same slice, window and zoom); a slice not decoded yet is black with a note until it arrives."""
        model = self.grid.slots[idx].model
        view = self.grid.slots[idx].view
        previous = self._filling.get(idx)
        if previous is None or previous.volume is not filling.volume:
            shown = model.preview
            if shown is None:
                model.show_preview(filling.volume, filling.volume.shape[0])
                model.view.refine(filling.volume.shape[0] // 2)
                self._mark_first_image(idx)
            else:
                start = nearest_slice(filling.volume, slice_position(shown, 0))
                model.preview = filling.volume  # finish() refines it in place, as it does a preview
                model.image.set_volume(filling.volume, keep_display=True)
                model.view.refine(start if start is not None else filling.volume.shape[0] // 2)
            if idx not in self._filling_hooked:
                view.slice_changed.connect(lambda _k, i=idx: self._show_filling_state(i))
                self._filling_hooked.add(idx)
            previous = None
        newly = filling.ready if previous is None else filling.ready & ~previous.ready
        self._filling[idx] = filling
        if view.state.plane != "acquired" or newly[min(view.slice_index, len(newly) - 1)]:
            # The slice on screen (or a reformat through it) got its values: redraw. "reset": not the
            # reader's scroll, so linked viewports do not follow.
            view.state.notify("slice", "reset")
        self._show_filling_state(idx)

    def _show_filling_state(self, idx: int) -> None:
        filling = self._filling.get(idx)
        if filling is None:
            return
        view = self.grid.slots[idx].view
        ready, k = filling.ready, view.slice_index
        if view.state.plane == "acquired" and 0 <= k < len(ready) and not ready[k]:
            view.show_message(f"Slice {k + 1} is being decoded… ({int(ready.sum())}/{len(ready)} ready)")
        else:
            view.clear_message()

    def _on_load_progress(self, idx: int, done: int, total: int) -> None:
        slot = self.grid.slots[idx]
        base = slot.title.text().split("  — ")[0]
        slot.set_title(f"{base}  — loading {done}/{total}")

    def _on_loaded(self, idx: int, key: str, volume: Volume) -> None:
        slot = self.grid.slots[idx]
        stack = self.browser.stacks.get(key)
        if stack is not None:
            self.workspace.cache.put(self.workspace.cache_key(stack), volume)
        # Scrolled while it decoded: the reader stays on that slice.
        scrolled = slot.view.slice_index if self._filling.pop(idx, None) is not None else None
        # Refines the preview in place: same slice, window and zoom the reader sees.
        slot.model.finish(volume)
        if scrolled is not None:
            slot.model.view.refine(scrolled)
        reference = self._load_reference.pop(idx, None)
        if reference is not None and reference != idx:
            self.workspace.align_to(slot.model, self.workspace.viewports[reference])
        attach_volume_bar(slot, self.background, self.io, stack, volume)  # 4D: volume slider and cine
        desc = (stack.description if stack is not None else "") or "(no description)"
        z, y, x = volume.shape
        head = self._titles.pop(idx, None) if stack is None else None  # load_files' own title
        slot.set_title(f"{head or f'{volume.modality}  {desc}'}  — {z}×{y}×{x}")
        tips = list(volume.warnings)
        slot.title.setToolTip("\n".join(tips))
        self._mark_first_image(idx)
        if idx == self.grid.active:
            self._on_active_changed(idx)
        self.series_loaded.emit(idx)

    def _on_load_failed(self, idx: int, key: str, message: str) -> None:
        slot = self.grid.slots[idx]
        slot.model.fail(message)
        self._filling.pop(idx, None)
        self._load_reference.pop(idx, None)
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
        if self.grid.mpr is not None:
            self.grid.mpr.volume_filters.filter_volume = self.io.filter_volume
        if hasattr(self, "filter_controls"):
            self.filter_controls.apply()  # the planes of a new MPR view show the filter that is on

    def _on_active_changed(self, idx: int) -> None:
        view = self.grid.slots[idx].view
        key = self.workspace.viewports[idx].series_key
        if key is not None and key in self.browser.stacks:
            self.browser.select(key)  # the browser marks the series the reader is on
        if self._tool_unsubscribe is not None:
            self._tool_unsubscribe()
        self._tool_unsubscribe = view.state.subscribe(self._tool_changed)
        self._tool_changed(frozenset({"tool"}))
        if self.grid.layout_name != "mpr" and not view.hasFocus() and self.isActiveWindow():
            view.setFocus(Qt.FocusReason.OtherFocusReason)
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

    def _focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        """A click on a dock's button, list or tree hands the keyboard back to the active viewport, so
        number keys, Enter and Backspace act where the reader looks. Text fields, spin boxes and combo
        boxes keep it (the user is typing), and so does keyboard navigation into a dock (Tab)."""
        if not shiboken6.isValid(self) or new is None or QApplication.mouseButtons() == Qt.MouseButton.NoButton:
            return
        if isinstance(new, KEEP_FOCUS_WIDGETS) or new.window() is not self:
            return
        parent: QWidget | None = new
        while parent is not None and not isinstance(parent, QDockWidget):
            parent = parent.parentWidget()
        if parent is not None:
            # After the click is delivered: the widget clicked still gets its release and its signal.
            QTimer.singleShot(0, self.grid.focus_active)

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
        # Cancelled jobs stop at their next check; one inside a decode finishes it first. Wait for them:
        # a job still running after the pools were shut down would start a decoder process again.
        self.background.wait_idle(CLOSE_WAIT_MS)
        if self.io.shutdown is not None:
            self.io.shutdown()  # decoder processes end with the window, not at interpreter exit
        super().closeEvent(ev)

