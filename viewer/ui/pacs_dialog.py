"""The PACS dock: query a node, see studies and series as the answers arrive, retrieve, open while arriving.

ui may not import ``viewer.io`` (pydicom): ``viewer.app.pacs_services`` hands in the network functions as a
:class:`PacsServices`. Queries and retrieves run on the dock's own network pool; matches and stored
instances come back through ``ctx.partial`` (queued signals), so the tables fill in while the PACS is still
answering and the window never waits on the network. "Open" retrieves a series into the active viewport:
the first instance is on screen as soon as it is stored, the rest fills in as it arrives (the dock records
what is stored in ``workspace.arrivals``; the window shows it), and the whole load refines it at the end.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDockWidget,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.jobs import CancelCheck, Progress
from viewer.core.pacs_records import Match, RetrieveResult, SeriesProgress
from viewer.ui.workers import Background

if TYPE_CHECKING:
    from viewer.state.services import Predictions
    from viewer.ui.main_window import MainWindow
    from viewer.ui.pacs_send import SendReport

UID_ROLE = Qt.ItemDataRole.UserRole + 1
#: A retrieve's counts ("57/134  31.2 MB/s") are written at most this often (ms): each instance is reported,
#: and relaying out the status line and the table 134 times competed with the retrieve for the GIL.
PROGRESS_TEXT_MS = 100
#: Threads of the dock's network pool (queries and retrieves; each retrieve runs its own transfer threads).
NETWORK_THREADS = 4
CLOSE_WAIT_MS = 30000


class FindMatches(Protocol):
    """``find(node_text, ae, fields, cancel)``: the matches as the PACS answers (``fields``: the
    :class:`viewer.io.pacs.query.Query` keywords: level, patient_name, patient_id, study_date, modality,
    accession, description, study_uid)."""

    def __call__(self, node_text: str, ae: str, fields: dict[str, str], cancel: CancelCheck) -> Iterable[Match]: ...


class RetrieveSeries(Protocol):
    """``retrieve(...)``: a study, or some of its series, into the local store (``viewer.io.pacs.retrieve``);
    ``progress`` after each stored instance, ``on_stored`` with the file just stored."""

    def __call__(self, node_text: str, ae: str, port: int, study_uid: str, series_uids: list[str] | None, *,
                 modalities: dict[str, str] | None = ...,
                 progress: Callable[[SeriesProgress], None] | None = ...,
                 on_stored: Callable[[Path, SeriesProgress], None] | None = ...,
                 cancel: CancelCheck | None = ...) -> RetrieveResult: ...


class SendFiles(Protocol):
    """``send(node_text, ae, paths, progress, cancel)``: C-STORE or STOW-RS the files."""

    def __call__(self, node_text: str, ae: str, paths: list[str], *, progress: Progress | None = ...,
                 cancel: CancelCheck | None = ...) -> SendReport: ...


class WriteAiSr(Protocol):
    """``write_ai_sr(out, slices, predictions)``: a classifier's per-slice results as DICOM SR at ``out``;
    ``slices[k]`` is slice k's (file, SOP Instance UID, 1-based frame)."""

    def __call__(self, out: str, slices: list[tuple[str, str, int]], predictions: Predictions) -> None: ...


@dataclass(frozen=True)
class PacsServices:
    """The network functions the dock calls (``viewer.app.pacs_services``), all synchronous.

    ``nodes() -> [(label, node_text)]``: the saved nodes; the others as their Protocols say.
    """

    nodes: Callable[[], list[tuple[str, str]]]
    find: FindMatches
    retrieve: RetrieveSeries
    send: SendFiles | None = None
    write_ai_sr: WriteAiSr | None = None


STUDY_COLUMNS = ("Patient", "Patient ID", "Date", "Modalities", "Description", "Accession", "Series", "Images")
SERIES_COLUMNS = ("#", "Modality", "Description", "Images", "Retrieved")


def _item(text: str, uid: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if uid:
        item.setData(UID_ROLE, uid)
    return item


def _count(n: int, uid: str = "") -> QTableWidgetItem:
    """A number cell that sorts as a number ("?" when the PACS did not say)."""
    item = _item("?" if n < 0 else "", uid)
    if n >= 0:
        item.setData(Qt.ItemDataRole.DisplayRole, n)
    return item


def _cell(table: QTableWidget, row: int, column: int) -> QTableWidgetItem:
    """The item at (row, column); every cell of our tables has one."""
    item = table.item(row, column)
    assert item is not None
    return item


def _date(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


class PacsPanel(QWidget):
    """Query form, studies table, series table, retrieve/open buttons and a status line."""

    query_finished = Signal(int)  # matches shown
    series_retrieved = Signal(str, bool)  # series UID, complete
    failed = Signal(str)

    def __init__(self, services: PacsServices, window: MainWindow, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.main = window  # the MainWindow (QWidget.window() is taken)
        # Network jobs mostly wait on sockets: a pool of their own, so that a retrieve never holds up the
        # decoding of what it stores (the window's pool) and vice versa.
        self.background = Background(max_threads=NETWORK_THREADS, parent=self)
        window.installEventFilter(self)
        self._series_study: dict[str, str] = {}
        self._retrieving: set[str] = set()  # channels of the retrieves started here
        self._seeded: set[str] = set()  # opened series whose earlier stored files were handed over
        # The latest counts of each series being retrieved, written out by a timer (PROGRESS_TEXT_MS).
        self._progress: dict[str, Any] = {}
        self._progress_unshown: set[str] = set()
        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.setInterval(PROGRESS_TEXT_MS)
        self._progress_timer.timeout.connect(self._show_progress)

        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        # Never squeezed below its wrapped text (a C-MOVE's explanation takes two or three lines): the
        # tables give up the height.
        policy = self.status.sizePolicy()
        policy.setVerticalPolicy(QSizePolicy.Policy.Minimum)
        policy.setHeightForWidth(True)
        self.status.setSizePolicy(policy)
        self.node = QComboBox(self)
        self.node.setEditable(True)
        self.node.setToolTip("A saved node, dimse://CALLED_AE@host:port or a DICOMweb base URL")
        edit = self.node.lineEdit()
        if edit is not None:
            edit.setPlaceholderText("dimse://PACS@host:104 or https://host/dicom-web")
        self.reload_nodes()
        self.ae = QLineEdit("DICOMVIEWER", self)
        self.ae.setMaxLength(16)
        self.port = QSpinBox(self)
        self.port.setRange(1, 65535)
        self.port.setValue(11112)
        self.port.setToolTip("Our storage SCP port, the C-MOVE destination the PACS must know")
        self.patient_name = QLineEdit(self)
        self.patient_name.setPlaceholderText("DOE^J*")
        self.patient_id = QLineEdit(self)
        self.study_date = QLineEdit(self)
        self.study_date.setPlaceholderText("20240101-20241231")
        self.modality = QLineEdit(self)
        self.modality.setPlaceholderText("CT")
        self.accession = QLineEdit(self)
        self.description = QLineEdit(self)
        for edit in (self.patient_name, self.patient_id, self.study_date, self.modality, self.accession,
                     self.description):
            edit.returnPressed.connect(self.search)

        # Two rows of fields above two tables side by side: the dock lives under the viewports, wide.
        form = QGridLayout()
        cells = [("Node", self.node), ("Our AE", self.ae), ("Port", self.port), ("Patient name", self.patient_name),
                 ("Patient ID", self.patient_id), ("Study date", self.study_date), ("Modality", self.modality),
                 ("Accession", self.accession), ("Description", self.description)]
        for i, (label, widget) in enumerate(cells):
            row, col = (0, 2 * i) if i < 3 else (1 + (i - 3) // 3, 2 * ((i - 3) % 3))
            form.addWidget(QLabel(label, self), row, col)
            form.addWidget(widget, row, col + 1)
        form.setColumnStretch(1, 3)
        form.setColumnStretch(3, 1)
        form.setColumnStretch(5, 1)

        self.search_button = QPushButton("Search", self)
        self.search_button.clicked.connect(self.search)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel)

        self.studies = self._table(STUDY_COLUMNS)
        self.studies.itemSelectionChanged.connect(self._study_selected)
        self.studies.itemDoubleClicked.connect(lambda _item: self.retrieve_selected(open_it=True))
        self.series = self._table(SERIES_COLUMNS)
        self.series.itemDoubleClicked.connect(lambda _item: self.retrieve_selected(open_it=True))
        self.retrieve_button = QPushButton("Retrieve", self)
        self.retrieve_button.setToolTip("Retrieve the selected series (or the whole study) into the local store")
        self.retrieve_button.clicked.connect(lambda: self.retrieve_selected(open_it=False))
        self.open_button = QPushButton("Open", self)
        self.open_button.setToolTip("Retrieve and show in the active viewport as the images arrive")
        self.open_button.clicked.connect(lambda: self.retrieve_selected(open_it=True))
        self.browse_button = QPushButton("Show in Studies", self)
        self.browse_button.setToolTip("List the local store, with what was retrieved, in the Studies browser")
        self.browse_button.setEnabled(False)
        self.browse_button.clicked.connect(self.show_store)
        self._store = ""
        self.send_button = QPushButton("Send", self)
        self.send_button.setToolTip("Send the series shown, or its labels as DICOM SEG / SR, to a node")
        self.send_button.setEnabled(False)  # until attach_pacs_send gives it its menu
        actions = QHBoxLayout()
        actions.addWidget(self.retrieve_button)
        actions.addWidget(self.open_button)
        actions.addWidget(self.browse_button)
        actions.addWidget(self.send_button)

        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addLayout(form, 1)
        side = QVBoxLayout()
        side.addWidget(self.search_button)
        side.addWidget(self.cancel_button)
        side.addStretch(1)
        top.addLayout(side)
        lay.addLayout(top)
        tables = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(QLabel("Studies", self))
        left.addWidget(self.studies, 1)
        right = QVBoxLayout()
        right.addWidget(QLabel("Series of the selected study", self))
        right.addWidget(self.series, 1)
        right.addLayout(actions)
        tables.addLayout(left, 3)
        tables.addLayout(right, 2)
        lay.addLayout(tables, 1)
        lay.addWidget(self.status)

    def _table(self, columns: tuple[str, ...]) -> QTableWidget:
        t = QTableWidget(0, len(columns), self)
        t.setHorizontalHeaderLabels(list(columns))
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.setSortingEnabled(True)
        t.verticalHeader().setVisible(False)
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        t.horizontalHeader().setStretchLastSection(True)
        t.setWordWrap(False)
        return t

    # -- nodes --------------------------------------------------------------------------------------------
    def reload_nodes(self) -> None:
        current = self.node.currentText()
        self.node.clear()
        try:
            for label, text in self.services.nodes():
                self.node.addItem(label, text)
        except Exception as exc:  # noqa: BLE001 - a broken settings file must not stop the dock
            self.status_message(f"Saved nodes unreadable: {exc}")
        if current:
            self.node.setEditText(current)

    def node_text(self) -> str:
        i = self.node.currentIndex()
        if i >= 0 and self.node.itemText(i) == self.node.currentText():
            return str(self.node.itemData(i))
        return self.node.currentText().strip()

    def status_message(self, text: str) -> None:
        self.status.setText(text)

    # -- query --------------------------------------------------------------------------------------------
    def _fields(self, level: str, study_uid: str = "") -> dict[str, str]:
        return {"level": level, "patient_name": self.patient_name.text().strip(),
                "patient_id": self.patient_id.text().strip(), "study_date": self.study_date.text().strip(),
                "modality": self.modality.text().strip(), "accession": self.accession.text().strip(),
                "description": self.description.text().strip(), "study_uid": study_uid}

    def search(self) -> None:
        """Study query; rows appear as the PACS answers (sorting is applied as they come)."""
        node, ae, fields = self.node_text(), self.ae.text().strip(), self._fields("study")
        if not node:
            self.status_message("Choose or type a node first.")
            return
        self.studies.setRowCount(0)
        self.series.setRowCount(0)
        self.status_message(f"Searching {node}…")
        count = [0]

        def on_match(match: Match) -> None:
            count[0] += 1
            self._add_study(match)
            self.status_message(f"{count[0]} studies so far…")

        def on_done(n: Any) -> None:
            self.status_message(f"{n} stud{'y' if n == 1 else 'ies'} found on {node}")
            self.query_finished.emit(int(n))

        self.background.submit("pacs:find", self._find_job(node, ae, fields), on_partial=on_match, on_result=on_done,
                               on_error=self._failed)

    def _find_job(self, node: str, ae: str, fields: dict[str, str]) -> Callable[[Any], int]:
        """A background job that hands each match to the main thread as it arrives; returns the count."""
        def job(ctx: Any) -> int:
            n = 0
            for match in self.services.find(node, ae, fields, ctx.cancelled):
                ctx.partial(match)
                n += 1
            return n
        return job

    def _add_study(self, m: Match) -> None:
        t = self.studies
        t.setSortingEnabled(False)
        r = t.rowCount()
        t.insertRow(r)
        values = (m.patient_name.replace("^", " ").strip(), m.patient_id, _date(m.study_date), m.modalities,
                  m.study_description, m.accession)
        for c, v in enumerate(values):
            t.setItem(r, c, _item(v, m.study_uid if c == 0 else ""))
        t.setItem(r, 6, _count(m.study_series))
        t.setItem(r, 7, _count(m.study_instances))
        t.setSortingEnabled(True)

    def _study_selected(self) -> None:
        uid = self.selected_study()
        if not uid:
            return
        node, ae = self.node_text(), self.ae.text().strip()
        fields = {**self._fields("series", uid), "patient_name": "", "patient_id": "", "study_date": "",
                  "accession": "", "modality": "", "description": ""}
        self.series.setRowCount(0)
        self.background.submit("pacs:series", self._find_job(node, ae, fields), on_partial=self._add_series,
                               on_result=lambda n: self.status_message(f"{n} series in this study"),
                               on_error=self._failed)

    def _add_series(self, m: Match) -> None:
        t = self.series
        t.setSortingEnabled(False)
        r = t.rowCount()
        t.insertRow(r)
        self._series_study[m.series_uid] = m.study_uid
        number = int(m.series_number) if m.series_number.strip().lstrip("-").isdigit() else -1
        t.setItem(r, 0, _count(number, m.series_uid))
        t.setItem(r, 1, _item(m.modality))
        t.setItem(r, 2, _item(m.series_description))
        t.setItem(r, 3, _count(m.series_instances))
        t.setItem(r, 4, _item(""))
        t.setSortingEnabled(True)

    def selected_study(self) -> str:
        rows = self.studies.selectionModel().selectedRows()
        return str(_cell(self.studies, rows[0].row(), 0).data(UID_ROLE)) if rows else ""

    def selected_series(self) -> list[str]:
        return [str(_cell(self.series, i.row(), 0).data(UID_ROLE)) for i in self.series.selectionModel().selectedRows()]

    def note_channel(self, channel: str) -> None:
        """A transfer started on ``channel`` of the network pool: Cancel stops it too."""
        self._retrieving.add(channel)

    def cancel(self) -> None:
        for channel in ("pacs:find", "pacs:series"):
            self.background.cancel(channel)
        for channel in self._retrieving:
            self.background.cancel(channel)
        self._retrieving.clear()
        self._progress_ended(list(self._progress))
        for arrival in self.main.workspace.arrivals.by_uid.values():
            if not arrival.done:  # a viewport opened on it keeps (and completes the load of) what arrived
                arrival.finish([], complete=False, error="retrieve cancelled")
        self.status_message("Cancelled; what was complete stays stored (or sent), a new retrieve fetches the rest.")

    # -- retrieve -----------------------------------------------------------------------------------------
    def retrieve_selected(self, *, open_it: bool) -> None:
        study = self.selected_study()
        series = self.selected_series()
        if not study and series:
            study = self._series_study.get(series[0], "")
        if not study:
            self.status_message("Select a study (and optionally series) first.")
            return
        if open_it and not series and self.series.rowCount():
            series = [str(_cell(self.series, 0, 0).data(UID_ROLE))]  # open the study's first series
        for uid in series or [""]:
            self.retrieve(study, uid, open_it=open_it)

    def retrieve(self, study_uid: str, series_uid: str = "", *, open_it: bool = False) -> int:
        """Retrieve one series (or the whole study with ``series_uid=""``) on the network pool.

        With ``open_it`` the series opens in the active viewport at once and fills in as its instances are
        stored: the dock records them in the workspace (``workspace.arrivals``), the window shows them.
        """
        node, ae, port = self.node_text(), self.ae.text().strip(), self.port.value()
        if open_it and series_uid:
            r = self._row_of(series_uid)
            images = _cell(self.series, r, 3).data(Qt.ItemDataRole.DisplayRole) if r >= 0 else None
            expected = images if isinstance(images, int) else -1
            arrival = self.main.workspace.arrivals.start(series_uid, self._title(series_uid), expected)
            self._seeded.discard(series_uid)
            self.main.open_arrival(arrival, int(self.main.grid.active))
        self.status_message(f"Retrieving from {node}…")

        r = self._row_of(series_uid) if series_uid else -1
        modalities = {series_uid: _cell(self.series, r, 1).text()} if r >= 0 else None

        def job(ctx: Any) -> Any:
            totals: dict[str, int] = {}

            def progress(p: Any) -> None:
                # Each stored instance is reported twice, to progress and then to on_stored with the same
                # counts: only a new total (the instance list is in, or a resume's count) is posted here.
                if totals.get(p.series_uid) != p.total:
                    totals[p.series_uid] = p.total
                    ctx.partial(("progress", p))

            return self.services.retrieve(
                node, ae, port, study_uid, [series_uid] if series_uid else None, modalities=modalities,
                progress=progress, on_stored=lambda path, p: ctx.partial(("stored", str(path), p)),
                cancel=ctx.cancelled)

        channel = f"pacs:get:{series_uid or study_uid}"
        self.note_channel(channel)
        return int(self.background.submit(channel, job, on_partial=self._on_arrival, on_result=self._on_retrieved,
                                          on_error=functools.partial(self._retrieve_failed, series_uid)))

    def _row_of(self, series_uid: str) -> int:
        for r in range(self.series.rowCount()):
            if _cell(self.series, r, 0).data(UID_ROLE) == series_uid:
                return r
        return -1

    def _title(self, series_uid: str) -> str:
        r = self._row_of(series_uid)
        if r < 0:
            return f"PACS series …{series_uid[-8:]}"
        return f"{_cell(self.series, r, 1).text()}  {_cell(self.series, r, 2).text() or '(no description)'}"

    def _on_arrival(self, payload: Any) -> None:
        kind, *rest = payload
        p = rest[-1]
        shown = self._progress.get(p.series_uid)
        if shown is None or (p.done, p.total) >= (shown.done, shown.total):  # writer threads race a little
            self._progress[p.series_uid] = p
        self._progress_unshown.add(p.series_uid)
        if not self._progress_timer.isActive():
            self._show_progress()  # the first counts at once, then at most every PROGRESS_TEXT_MS
            self._progress_timer.start()
        arrival = self.main.workspace.arrivals.get(p.series_uid)
        if arrival is None or arrival.done:
            return
        stored = [rest[0]] if kind == "stored" else []
        if p.series_uid not in self._seeded:
            # A resumed retrieve: what an earlier one stored is shown too (it does not arrive again).
            self._seeded.add(p.series_uid)
            stored = sorted(str(f) for f in Path(p.folder).glob("*.dcm")) + stored
        arrival.stored(stored, p.total)

    def _show_progress(self) -> None:
        """Write the latest counts of the series that reported since the last time."""
        for uid in sorted(self._progress_unshown):
            p = self._progress[uid]
            r = self._row_of(uid)
            total = str(p.total) if p.total >= 0 else (_cell(self.series, r, 3).text() if r >= 0 else "?")
            if r >= 0:
                _cell(self.series, r, 4).setText(f"{p.done}/{total}  {p.mb_per_s:.1f} MB/s")
            self.status_message(f"{self._title(uid)}: {p.done}/{total} images, {p.mb_per_s:.1f} MB/s")
        self._progress_unshown.clear()

    def _progress_ended(self, series_uids: list[str]) -> None:
        """These retrieves ended: their final words replace the counts (none written after them)."""
        for uid in series_uids:
            self._progress.pop(uid, None)
            self._progress_unshown.discard(uid)

    def show_store(self) -> None:
        """Open the local store in the Studies browser (it replaces what the browser lists)."""
        if self._store:
            self.main.open_paths([self._store])

    def _on_retrieved(self, result: Any) -> None:
        self._progress_ended([s.series_uid for s in result.series])
        self._store = str(result.into)
        self.browse_button.setEnabled(True)
        lines = []
        for s in result.series:
            files = sorted(str(f) for f in s.folder.glob("*.dcm"))
            state = "complete" if s.complete else f"incomplete: {s.error}"
            lines.append(f"{s.stored} new + {s.skipped} present of {s.total} by {s.method} ({state})")
            r = self._row_of(s.series_uid)
            if r >= 0:
                _cell(self.series, r, 4).setText(f"{s.stored + s.skipped}/{s.total} by {s.method}")
            arrival = self.main.workspace.arrivals.get(s.series_uid)
            if arrival is not None and not arrival.done:
                arrival.finish(files, complete=bool(s.complete), error=s.error)
            self.series_retrieved.emit(s.series_uid, bool(s.complete))
        self.status_message("; ".join(lines) + f"  → {result.into}")

    def _retrieve_failed(self, series_uid: str, message: str) -> None:
        self._progress_ended([series_uid] if series_uid else list(self._progress))
        arrival = self.main.workspace.arrivals.get(series_uid) if series_uid else None
        if arrival is not None and not arrival.done:
            # What arrived before the failure stays on screen (and stored): a new retrieve fetches the rest.
            arrival.finish([], complete=False, error=message)
        self._failed(message)

    def _failed(self, message: str) -> None:
        text = message.strip().splitlines()[-1] if message.strip() else "failed"
        # Our errors read "PacsError: <what>": show the what.
        self.status_message(text.split(": ", 1)[1] if text.startswith(("PacsError", "viewer.")) else text)
        self.failed.emit(text)

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802 - Qt override
        if obj is self.main and ev.type() == QEvent.Type.Close:
            # Network jobs end with the window: their callbacks must not outlive it.
            self.background.cancel_all()
            self.background.wait_idle(CLOSE_WAIT_MS)
        return False


def attach_pacs_dock(window: MainWindow, services: PacsServices) -> QDockWidget:
    """Add the PACS dock (hidden until asked for) and File > PACS… (Ctrl+Shift+P) to the main window."""
    from viewer.ui.pacs_send import attach_pacs_send

    panel = PacsPanel(services, window)
    dock = QDockWidget("PACS", window)
    dock.setObjectName("pacsDock")
    dock.setWidget(panel)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
    window.resizeDocks([dock], [300], Qt.Orientation.Vertical)
    dock.hide()
    action = QAction("&PACS…", window, shortcut=QKeySequence("Ctrl+Shift+P"))

    def show_dock() -> None:
        dock.show()
        dock.raise_()
        panel.reload_nodes()

    action.triggered.connect(show_dock)
    window.file_menu.insertAction(window.act_open_derived, action)  # after the three Open… entries
    window.pacs_panel, window.pacs_dock, window.act_pacs = panel, dock, action
    window.pacs_send = attach_pacs_send(window, panel)
    return dock
