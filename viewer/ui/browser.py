"""The study browser: patient -> study -> series tree with thumbnails, warnings and bad files.

Indexing runs on the :class:`viewer.ui.workers.Background` pool (``find_stacks`` from ``viewer.io``),
with a progress bar and a cancel button; thumbnails (the middle slice, windowed with the file's window)
follow one by one on the same pool. Double-clicking a series emits :attr:`StudyBrowser.series_activated`
with its key; dragging it carries the key as :data:`viewer.ui.layouts.STACK_MIME`.
"""

from __future__ import annotations

import functools
from typing import Any

from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from viewer.state.services import ScanResultLike, SeriesSource
from viewer.state.workspace import Workspace
from viewer.ui.layouts import STACK_MIME
from viewer.ui.workers import Background, IoServices, scan_job, thumbnail_job

KEY_ROLE = Qt.ItemDataRole.UserRole
THUMB_SIZE = 64
COLUMNS = ["Series", "Mod.", "Imgs"]
IMAGES_COL = 2
WARN_MARK = " \u26a0"  # a text mark: an icon in a column would be drawn at the thumbnail size
WARN_COLOR = QColor(255, 176, 32)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _format_date(value: Any) -> str:
    """DICOM DA (YYYYMMDD) as YYYY-MM-DD; anything else unchanged."""
    s = _text(value)
    return f"{s[:4]}-{s[4:6]}-{s[6:8]}" if len(s) == 8 and s.isdigit() else s


def stack_info(stack: SeriesSource) -> dict[str, str]:
    """Patient/study/series text of a scanned stack, trimmed, dates as YYYY-MM-DD."""
    return {
        "patient_id": _text(stack.patient_id),
        "patient_name": _text(stack.patient_name),
        "study_uid": _text(stack.study_uid),
        "study_date": _format_date(stack.study_date),
        "study_description": _text(stack.study_description),
        "series_number": _text(stack.series_number),
        "series_date": _format_date(stack.series_date or stack.study_date),
    }


def array_to_qimage(img: np.ndarray) -> QImage:
    """A QImage that owns a copy of uint8 ``img`` (h, w) grey or (h, w, 3) RGB."""
    img = np.ascontiguousarray(img)
    h, w = img.shape[:2]
    if img.ndim == 2:
        q = QImage(img.data, w, h, img.strides[0], QImage.Format.Format_Grayscale8)
    else:
        q = QImage(img.data, w, h, img.strides[0], QImage.Format.Format_RGB888)
    return q.copy()


class SeriesTree(QTreeWidget):
    """The tree; series items can be dragged into a viewport."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(COLUMNS)
        self.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.setDragEnabled(True)
        self.setUniformRowHeights(False)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.setIndentation(12)
        self.setWordWrap(True)  # long series descriptions wrap inside the thumbnail-high rows
        for col in (1, 2):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.setRootIsDecorated(True)
        self.setAlternatingRowColors(True)

    def mimeTypes(self) -> list[str]:  # noqa: N802 - Qt override
        return [STACK_MIME]

    def mimeData(self, items: Any) -> QMimeData:  # noqa: N802 - Qt override
        data = QMimeData()
        keys = [it.data(0, KEY_ROLE) for it in items if it.data(0, KEY_ROLE)]
        if keys:
            data.setData(STACK_MIME, str(keys[0]).encode())
        return data


class StudyBrowser(QWidget):
    """Indexes folders in the background and lists what it found."""

    series_activated = Signal(str)  # stack key
    scan_finished = Signal(int, int)  # number of series, number of bad files
    thumbnails_finished = Signal()

    @property
    def stacks(self) -> dict[str, SeriesSource]:
        """The scanned series by key (the workspace's)."""
        return self.workspace.series

    def __init__(self, background: Background, io: IoServices, parent: QWidget | None = None, *,
                 workspace: Workspace | None = None) -> None:
        super().__init__(parent)
        self.background = background
        self.io = io
        self.tree = SeriesTree(self)
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel("Open a folder, DICOMDIR or files (File menu, or drop them here)", self)
        self.status.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.status)
        lay.addLayout(bar)
        lay.addWidget(self.tree, 1)
        self._set_busy(False)
        # The series live in the application model; the tree shows them.
        self.workspace = workspace if workspace is not None else Workspace()
        self.scan_order: list[str] = []
        self.bad_files: list[tuple[str, str]] = []
        self.items: dict[str, QTreeWidgetItem] = {}
        self._key_counter = 0  # stack keys stay unique when early-listed stacks are removed
        self._patients: dict[str, QTreeWidgetItem] = {}
        self._studies: dict[tuple[str, str], QTreeWidgetItem] = {}
        self._scan_id = 0
        self._pending_thumbs = 0
        self.paths: list[str] = []
        self.tree.itemDoubleClicked.connect(self._on_double_click)

    # -- scanning -----------------------------------------------------------------------------------------
    def open_paths(self, paths: list[str]) -> int:
        """Index ``paths`` (folders, files or a DICOMDIR) in the background; returns the request id."""
        self.background.cancel("thumb")
        self.tree.clear()
        self.workspace.clear_series()
        self.items.clear()
        self._patients.clear()
        self._studies.clear()
        self.bad_files = []
        self.paths = [str(p) for p in paths]
        self.status.setText("Indexing " + ", ".join(self.paths))
        self.progress.setRange(0, 0)
        self._set_busy(True)
        self._scan_id = self.background.submit(
            "scan", scan_job(self.io, self.paths), on_result=self._on_scan_result, on_error=self._on_scan_error,
            on_progress=self._on_progress, on_partial=self._on_stack_found)
        return self._scan_id

    def cancel(self) -> None:
        self.background.cancel("scan")
        self.background.cancel("thumb")
        self._pending_thumbs = 0
        self._set_busy(False)
        self.status.setText(f"Indexing cancelled: {len(self.stacks)} series listed")

    def is_busy(self) -> bool:
        return self.cancel_button.isEnabled()

    def _set_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done}/{total} files")

    def _on_stack_found(self, stack: SeriesSource) -> None:
        self._add_stack(stack)

    def _on_scan_error(self, message: str) -> None:
        self._set_busy(False)
        self.status.setText("Indexing failed: " + message.splitlines()[0])
        self.scan_finished.emit(len(self.stacks), len(self.bad_files))

    def _on_scan_result(self, result: ScanResultLike) -> None:
        final = {id(s) for s in result.stacks}
        for key, stack in list(self.stacks.items()):
            if id(stack) not in final:  # listed early, then regrouped (a series spread over folders)
                self._remove_stack(key)
        known = {id(s) for s in self.stacks.values()}
        for stack in result.stacks:
            if id(stack) not in known:
                self._add_stack(stack)
        by_id = {id(s): k for k, s in self.stacks.items()}
        # The scan's order: series N (1-based, as `screenshot --series N` and `info` list them) is
        # scan_order[N - 1].
        self.scan_order = [by_id[id(s)] for s in result.stacks if id(s) in by_id]
        self.bad_files = list(result.bad_files)
        if self.bad_files:
            self._add_file_list("Files not loaded", self.bad_files,
                                "Files that are not loadable DICOM images; hover a file for the reason")
        non_image = list(result.non_image)
        if non_image:
            self._add_file_list("DICOM without images", non_image,
                                "Valid DICOM objects with no pixel data (reports, RT, DICOMDIR, ...)")
        n, bad = len(self.stacks), len(self.bad_files)
        self.status.setText(f"{n} series" + (f", {bad} files not loadable" if bad else "")
                            + " in " + ", ".join(self.paths))
        self.progress.setRange(0, 0)
        # scan_finished first: the window queues the series it opens before the thumbnails, so that load
        # gets a pool thread even when there are more series (thumbnails) than threads.
        self.scan_finished.emit(n, bad)
        self._queue_thumbnails()
        if not self._pending_thumbs:
            self._set_busy(False)

    # -- tree -----------------------------------------------------------------------------------------------
    def _remove_stack(self, key: str) -> None:
        self.workspace.remove_series(key)
        item = self.items.pop(key)
        parent = item.parent()
        if parent is not None:
            parent.removeChild(item)
        levels: tuple[dict[Any, QTreeWidgetItem], ...] = (self._studies, self._patients)
        for level in levels:  # drop a study, then a patient, left empty
            if parent is None or parent.childCount():
                break
            for k in [k for k, v in level.items() if v is parent]:
                del level[k]
            grand = parent.parent()
            (grand.removeChild(parent) if grand is not None
             else self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(parent)))
            parent = grand

    def _add_stack(self, stack: SeriesSource) -> None:
        self._key_counter += 1
        key = str(self._key_counter)
        self.workspace.add_series(key, stack)
        info = stack_info(stack)
        pkey = info["patient_id"] + "\x00" + info["patient_name"]
        patient = self._patients.get(pkey)
        if patient is None:
            name = info["patient_name"].replace("^", " ").strip() or "(no patient name)"
            label = f"{name}  [{info['patient_id']}]" if info["patient_id"] else name
            patient = QTreeWidgetItem(self.tree, [label, "", ""])
            patient.setFirstColumnSpanned(True)
            self._patients[pkey] = patient
            patient.setExpanded(True)
        skey = (pkey, info["study_uid"])
        study = self._studies.get(skey)
        if study is None:
            text = " — ".join(t for t in (info["study_date"], info["study_description"] or "(study)") if t)
            study = QTreeWidgetItem(patient, [text, "", ""])
            study.setFirstColumnSpanned(True)
            self._studies[skey] = study
            study.setExpanded(True)
        files = list(stack.files)
        desc = _text(stack.description) or "(no description)"
        if info["series_number"]:
            desc = f"#{info['series_number']} {desc}"
        if stack.split_label:
            desc = f"{desc} [{stack.split_label}]"  # split stacks of one series must not look alike
        if info["series_date"] and info["series_date"] != info["study_date"]:
            desc = f"{desc}\n{info['series_date']}"
        item = QTreeWidgetItem(study, [desc, _text(stack.modality), str(len(files))])
        item.setData(0, KEY_ROLE, key)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsDragEnabled)
        item.setTextAlignment(IMAGES_COL, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        tips = [f"{len(files)} images", f"Series UID {stack.series_uid or '(none)'}"]
        problems = [str(w) for w in stack.warnings]
        reason = stack.split_reason
        if reason:
            problems.append(f"split: {reason}")
        if problems:
            self._mark(item)
            tips += ["Warnings:"] + [f"- {p}" for p in problems]
        item.setToolTip(0, "\n".join(tips))
        item.setToolTip(1, "\n".join(problems) if problems else "")
        item.setToolTip(IMAGES_COL, tips[0])
        self.items[key] = item

    def _add_file_list(self, title: str, bad: list[tuple[str, str]], tip: str) -> None:
        top = QTreeWidgetItem(self.tree, [f"{WARN_MARK.strip()} {title}", "", str(len(bad))])
        top.setForeground(0, WARN_COLOR)
        top.setToolTip(0, tip)
        top.setTextAlignment(IMAGES_COL, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        for path, reason in bad:
            child = QTreeWidgetItem(top, [f"{Path(path).name}: {reason}", "", ""])
            child.setToolTip(0, f"{path}\n{reason}")

    @staticmethod
    def _mark(item: QTreeWidgetItem) -> None:
        if not item.text(1).endswith(WARN_MARK):
            item.setText(1, item.text(1) + WARN_MARK)
        item.setForeground(1, WARN_COLOR)

    def mark_error(self, key: str, message: str) -> None:
        """Show that series ``key`` failed to load, with the reason in its tooltip."""
        item = self.items.get(key)
        if item is None:
            return
        self._mark(item)
        item.setToolTip(1, "Cannot load: " + message)
        item.setToolTip(0, item.toolTip(0) + "\nCannot load: " + message)
        item.setForeground(0, Qt.GlobalColor.red)

    def select(self, key: str) -> None:
        item = self.items.get(key)
        if item is not None:
            self.tree.setCurrentItem(item)

    def _on_double_click(self, item: QTreeWidgetItem, _column: int) -> None:
        key = item.data(0, KEY_ROLE)
        if key:
            self.series_activated.emit(str(key))

    # -- thumbnails -----------------------------------------------------------------------------------------
    def _queue_thumbnails(self) -> None:
        self._pending_thumbs = 0
        for key, stack in self.stacks.items():
            files = list(stack.files)
            if not files:
                continue
            self._pending_thumbs += 1
            self.background.submit(
                "thumb", thumbnail_job(self.io, files, THUMB_SIZE), replace=False,
                on_result=functools.partial(self._set_thumbnail, key),
                on_error=functools.partial(self._thumb_failed, key),
                on_done=self._thumb_done)

    def _set_thumbnail(self, key: str, img: np.ndarray) -> None:
        item = self.items.get(key)
        if item is not None:
            item.setIcon(0, QIcon(QPixmap.fromImage(array_to_qimage(img))))

    def _thumb_failed(self, key: str, message: str) -> None:
        self.mark_error(key, message.splitlines()[0])

    def _thumb_done(self) -> None:
        self._pending_thumbs -= 1
        if self._pending_thumbs <= 0:
            self._pending_thumbs = 0
            self._set_busy(False)
            self.thumbnails_finished.emit()
