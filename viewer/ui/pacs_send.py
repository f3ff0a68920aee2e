"""Send to a PACS from the window: a series, and what the reader and the models made of it (labels as
DICOM SEG, ROIs and measurements as DICOM SR, a classifier's per-slice results as the findings SR of the
batch), so they land in the PACS next to the images.

Where: File ▸ Send to PACS (the series in the active viewport, its SEG, its SR), the PACS dock's Send
button (the same menu) and the Studies browser's context menu (a listed series). The node is chosen in a
small dialog (saved nodes, or the dock's node, or one typed in); our AE title is the dock's.

The work is ``python -m viewer pacs send``'s (``PacsServices.send``: C-STORE for ``dimse://`` nodes,
STOW-RS for DICOMweb ones), run on the dock's network pool: the SEG or SR is first written by the label
export (a child process, as File ▸ Export Labels), the AI SR by ``PacsServices.write_ai_sr`` from the
workspace's AI results, into a temporary folder, then sent. Progress and the
outcome show in the dock's status line and the status bar; the dock's Cancel stops a send.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QInputDialog, QMenu

from viewer.core.jobs import JobContext

if TYPE_CHECKING:
    from viewer.ai.results import Predictions
    from viewer.ui.label_export import ExportRequest
    from viewer.ui.main_window import MainWindow
    from viewer.ui.pacs_dialog import PacsPanel

#: What can be sent: kind -> menu text.
KINDS: dict[str, str] = {
    "series": "&Series in the Active Viewport…",
    "seg": "Its &Labels as DICOM SEG…",
    "sr": "Its &ROIs and Measurements as DICOM SR…",
    "ai-sr": "Its &AI Results as DICOM SR…",
}
CHANNEL = "pacs:send"


@dataclass(frozen=True)
class SendReport:
    """The outcome of one send: ``sent`` of ``files`` stored at ``node``; the SOP Instance UIDs sent."""

    node: str
    files: int
    sent: int
    problems: list[str] = field(default_factory=list)
    sop_uids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.sent == self.files and not self.problems


class PacsSend(QObject):
    """The Send to PACS menu and its background sends."""

    sent = Signal(str, object)  # kind, SendReport
    failed = Signal(str, str)  # kind, message

    def __init__(self, window: MainWindow, panel: PacsPanel) -> None:
        super().__init__(window)
        self.window = window
        self.panel = panel
        self.menu = QMenu("Send to &PACS", window)
        self.actions: dict[str, QAction] = {}
        for kind, text in KINDS.items():
            self.actions[kind] = self.menu.addAction(text, functools.partial(self.ask, kind))
        self.menu.aboutToShow.connect(self._enable)
        window.file_menu.insertMenu(window.file_menu_end, self.menu)
        # The browser: right-click a series, Send to PACS.
        self.act_browser = QAction("Send to PACS…", window.browser.tree)
        self.act_browser.triggered.connect(self._ask_browser)
        window.browser.tree.addAction(self.act_browser)
        window.browser.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

    def _enable(self) -> None:
        shown = self._shown_files() is not None
        self.actions["series"].setEnabled(shown)
        panel = self.window.label_panel
        labels = panel is not None and panel.export is not None
        for kind in ("seg", "sr"):
            self.actions[kind].setEnabled(shown and labels)
        self.actions["ai-sr"].setEnabled(shown and self._predictions() is not None)

    def _predictions(self) -> Predictions | None:
        vol = self.window.grid.active_slot.model.volume
        return self.window.workspace.ai.of(vol.series_uid).predictions if vol is not None else None

    def _shown_files(self) -> list[str] | None:
        vol = self.window.grid.active_slot.model.volume
        files = [f for f in dict.fromkeys(vol.info.files) if f] if vol is not None else []
        return files or None

    # -- choosing ------------------------------------------------------------------------------------------
    def choose_node(self) -> str | None:
        """Ask which node to send to: the saved ones and the dock's, or one typed in (None: cancelled)."""
        choices: list[str] = []
        if self.panel.node_text():
            choices.append(self.panel.node_text())
        try:
            choices += [text for _label, text in self.panel.services.nodes() if text not in choices]
        except Exception:  # noqa: BLE001 - unreadable saved nodes: the dock says so; typing one still works
            pass
        text, ok = QInputDialog.getItem(self.window, "Send to PACS", "Node (dimse://AE@host:port or a DICOMweb URL):",
                                        choices, 0, True)
        return text.strip() if ok and text.strip() else None

    def ask(self, kind: str) -> None:
        node = self.choose_node()
        if node is not None:
            self.send(kind, node)

    def _ask_browser(self) -> None:
        item = self.window.browser.tree.currentItem()
        key = next((k for k, it in self.window.browser.items.items() if it is item), None)
        stack = self.window.browser.stacks.get(key) if key is not None else None
        if stack is None:
            self.window.statusBar().showMessage("Select a series in the Studies list to send it.")
            return
        node = self.choose_node()
        if node is not None:
            self.send_files(list(stack.files), node, what=f"series {stack.description or stack.series_uid}")

    # -- sending -------------------------------------------------------------------------------------------
    def send(self, kind: str, node: str) -> int | None:
        """Send ``kind`` (see :data:`KINDS`) of the active viewport's series to ``node``; None when there
        is nothing to send (the status line says why)."""
        if kind == "series":
            files = self._shown_files()
            if files is None:
                self._nothing("Open a series first: Send sends the series in the active viewport.")
                return None
            return self.send_files(files, node, what="series", kind=kind)
        if kind == "ai-sr":
            return self._send_ai_sr(node)
        panel = self.window.label_panel
        export = panel.export if panel is not None else None
        request: ExportRequest | None = export.request(kind) if export is not None else None
        if request is None:
            self._nothing("Open a series with labels first: Send sends the labels of the series shown.")
            return None
        return self._submit(kind, node, "labels as DICOM SEG" if kind == "seg" else "ROIs as DICOM SR",
                            functools.partial(_export_then_send, request))

    def _send_ai_sr(self, node: str) -> int | None:
        vol = self.window.grid.active_slot.model.volume
        predictions = self._predictions()
        writer = self.panel.services.write_ai_sr
        if vol is None or predictions is None or writer is None:
            self._nothing("Run a model on the series shown first: Send sends its per-slice AI results.")
            return None
        slices = [(s.file, s.sop_instance_uid, (s.frame or 0) + 1) for s in vol.info.slices]

        def body(send: Any, ctx: JobContext) -> object:
            with tempfile.TemporaryDirectory(prefix="viewer-send-") as tmp:
                out = os.path.join(tmp, "ai-sr.dcm")
                writer(out, slices, predictions)
                ctx.check()
                return send([out], ctx)

        return self._submit("ai-sr", node, f"AI results of {predictions.model_name or predictions.model_id} as DICOM SR",
                            body)

    def send_files(self, files: list[str], node: str, *, what: str, kind: str = "series") -> int | None:
        return self._submit(kind, node, what, lambda send, ctx: send(list(files), ctx))

    def _nothing(self, message: str) -> None:
        self.panel.status_message(message)
        self.window.statusBar().showMessage(message)
        return None

    def _submit(self, kind: str, node: str, what: str, body: Any) -> int | None:
        sender = self.panel.services.send
        if sender is None:
            self._nothing("This build cannot send to a PACS.")
            return None
        ae = self.panel.ae.text().strip()

        def send(paths: list[str], ctx: JobContext) -> object:
            return sender(node, ae, paths, progress=ctx.progress, cancel=ctx.cancelled)

        def job(ctx: JobContext) -> object:
            return body(send, ctx)

        def progress(done: int, total: int) -> None:
            self.panel.status_message(f"Sending {what} to {node}: {done}/{total}…")

        def ok(report: Any) -> None:
            text = f"Sent {what}: {report.sent} of {report.files} stored at {node}"
            if report.problems:
                text += f"; {len(report.problems)} problem(s): {report.problems[0]}"
            self.panel.status_message(text)
            self.window.statusBar().showMessage(text)
            self.sent.emit(kind, report)

        def bad(message: str) -> None:
            line = message.strip().splitlines()[-1] if message.strip() else "failed"
            line = line.split(": ", 1)[1] if line.startswith(("PacsError", "viewer.")) else line
            text = f"Cannot send {what} to {node}: {line}"
            self.panel.status_message(text)
            self.window.statusBar().showMessage(text)
            self.failed.emit(kind, text)

        self.panel.status_message(f"Sending {what} to {node}…")
        self.panel.note_channel(CHANNEL)
        return int(self.panel.background.submit(CHANNEL, job, on_result=ok, on_error=bad, on_progress=progress,
                                                replace=False))


def _export_then_send(request: ExportRequest, send: Any, ctx: JobContext) -> object:
    """Write the SEG or SR into a temporary folder, then send it (on the worker)."""
    with tempfile.TemporaryDirectory(prefix="viewer-send-") as tmp:
        out = os.path.join(tmp, f"{request.fmt}.dcm")
        request.run(out)
        ctx.check()
        return send([out], ctx)


def attach_pacs_send(window: MainWindow, panel: PacsPanel) -> PacsSend:
    """File ▸ Send to PACS, the dock's Send button and the browser's context menu."""
    sender = PacsSend(window, panel)
    panel.send_button.setMenu(sender.menu)
    panel.send_button.setEnabled(True)
    return sender
