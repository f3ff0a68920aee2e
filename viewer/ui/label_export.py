"""File ▸ Export Labels: the labels, ROIs and masks of the active series as CSV, JSON, DICOM SEG, DICOM SR
or NIfTI, optionally de-identified (DICOM PS3.15 Basic Profile).

The export is exactly ``python -m viewer labels export`` (one implementation: SEG and SR need pydicom and
highdicom, which ``ui`` may not import), run as a child process on the background pool so the window never
waits. The series is handed over as a folder of links to its files, so the command loads exactly the
series shown, whatever else lies in its folder.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu

from viewer.core.jobs import JobContext

if TYPE_CHECKING:
    from viewer.ui.label_panel import LabelPanel
    from viewer.ui.main_window import MainWindow

# format -> (menu text, file filter, suffix)
FORMATS: dict[str, tuple[str, str, str]] = {
    "csv": ("Labels as &CSV…", "CSV (*.csv)", ".csv"),
    "json": ("Labels as &JSON…", "JSON (*.json)", ".json"),
    "seg": ("Masks as DICOM &SEG…", "DICOM (*.dcm)", ".dcm"),
    "sr": ("ROIs and measurements as DICOM S&R…", "DICOM (*.dcm)", ".dcm"),
    "nifti": ("Masks as &NIfTI…", "NIfTI (*.nii.gz)", ".nii.gz"),
}


def viewer_command() -> list[str]:
    """How to run this viewer's command line: the frozen app itself, else ``python -m viewer``."""
    return [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "viewer"]


def export_command(fmt: str, out: str, *, store: str, label_set: str | None, series_uid: str,
                   series_dir: str | None, deidentify: bool) -> list[str]:
    cmd = [*viewer_command(), "labels", "export", "--format", fmt, "--out", out, "--store", store]
    if label_set and fmt != "sr":  # an SR carries every ROI and measurement of the series (those have no set)
        cmd += ["--label-set", label_set]
    if fmt in ("csv", "json"):
        cmd += ["--series-uid", series_uid]
    if series_dir is not None:
        cmd += ["--series", series_dir]
    if deidentify:
        cmd.append("--deidentify")
    return cmd


class LabelExport(QObject):
    """The Export Labels menu of the main window, for the label panel's series and label set."""

    exported = Signal(str, str)  # format, output path
    failed = Signal(str, str)  # format, message

    def __init__(self, window: MainWindow, panel: LabelPanel) -> None:
        super().__init__(window)
        self.window = window
        self.panel = panel
        self.menu = QMenu("Export &Labels", window)
        self.actions: dict[str, QAction] = {}
        for fmt, (text, _flt, _suffix) in FORMATS.items():
            act = self.menu.addAction(text, functools.partial(self.ask, fmt))
            self.actions[fmt] = act
        self.menu.addSeparator()
        self.act_deid = self.menu.addAction("&De-identify Exports")
        self.act_deid.setCheckable(True)
        self.act_deid.setToolTip("Remove names, IDs, dates and remap UIDs (DICOM PS3.15 Basic Profile)")
        self.menu.aboutToShow.connect(self._enable)
        window.file_menu.insertMenu(window.file_menu_end, self.menu)

    def _enable(self) -> None:
        shown = self.panel.view is not None and self.panel.view.volume is not None
        for act in self.actions.values():
            act.setEnabled(shown)

    def ask(self, fmt: str) -> None:
        _text, flt, suffix = FORMATS[fmt]
        path, _ = QFileDialog.getSaveFileName(self.window, "Export labels", f"labels{suffix}", flt)
        if path:
            self.export(fmt, path)

    def request(self, fmt: str, deidentify: bool | None = None) -> ExportRequest | None:
        """What exporting ``fmt`` of the shown series means now (None when nothing is shown); the request
        runs anywhere, e.g. on a worker (File ▸ Send to PACS sends what it writes)."""
        view = self.panel.view
        vol = view.volume if view is not None else None
        if vol is None:
            return None
        ls = self.panel.label_set
        return ExportRequest(fmt, [f for f in dict.fromkeys(vol.info.files) if f], str(self.panel.store.path),
                             ls.name if ls is not None else None, vol.series_uid,
                             self.act_deid.isChecked() if deidentify is None else deidentify)

    def export(self, fmt: str, out: str, deidentify: bool | None = None) -> int | None:
        """Export ``fmt`` of the shown series to ``out`` in the background; None when nothing is shown."""
        req = self.request(fmt, deidentify)
        if req is None:
            return None

        def job(ctx: JobContext) -> object:
            req.run(out)
            return out

        def ok(path: object) -> None:
            self.window.statusBar().showMessage(f"Exported {fmt.upper()} to {path}")
            self.exported.emit(fmt, str(path))

        def bad(message: str) -> None:
            self.window.statusBar().showMessage(f"Export failed: {message.splitlines()[0]}")
            self.failed.emit(fmt, message)

        return self.window.background.submit("labels:export", job, on_result=ok, on_error=bad)


@dataclass(frozen=True)
class ExportRequest:
    """One export of a series' labels: ``run(out)`` writes it (synchronously: call it on a worker)."""

    fmt: str
    files: list[str]
    store: str
    label_set: str | None
    series_uid: str
    deidentify: bool

    def run(self, out: str) -> None:
        """Write the export to ``out``; ValueError with the command's message when it fails."""
        with tempfile.TemporaryDirectory(prefix="viewer-export-") as tmp:
            series_dir = None
            if self.fmt in ("seg", "sr", "nifti"):
                series_dir = tmp
                for i, f in enumerate(self.files):
                    os.symlink(os.path.abspath(f), os.path.join(tmp, f"{i:05d}_{Path(f).name}"))
            cmd = export_command(self.fmt, out, store=self.store, label_set=self.label_set,
                                 series_uid=self.series_uid, series_dir=series_dir, deidentify=self.deidentify)
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip()
            raise ValueError(said.splitlines()[-1] if said else f"export failed ({done.returncode})")


__all__ = ["FORMATS", "ExportRequest", "LabelExport", "export_command", "viewer_command"]
