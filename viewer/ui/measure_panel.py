"""The measurement panel: lists the measurements of the active viewport with the image they are on;
a click goes to that image, Delete removes one.

Measurements are :class:`viewer.state.measurements.Measurement` records; the panel reads them from the
active slice view (``measurements()``), removes them with ``remove_measurement(m)`` and re-lists on its
``measurements_changed``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from viewer.state.measurements import Measurement

if TYPE_CHECKING:
    from viewer.ui.viewport import SliceViewport


def where(m: Measurement) -> str:
    """The image a measurement is on, numbered from 1 as the overlay shows it ("Im 31", "cor Im 12")."""
    plane = "" if m.plane == "acquired" else f"{m.plane[:3]} "
    return f"{plane}Im {m.slice_index + 1}"


def describe(m: Measurement) -> str:
    """One line for a measurement: its kind and its numbers with units."""
    return m.describe()


class MeasurePanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget(self)
        self.list.itemClicked.connect(self._jump)
        self.list.itemActivated.connect(self._jump)
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.clicked.connect(self.delete_selected)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.delete_button)
        self.view: SliceViewport | None = None
        self._items: list[Measurement] = []
        self.refresh()

    def set_view(self, view: SliceViewport | None) -> None:
        """Follow ``view`` (the active slice view); re-list when its measurements change."""
        old = self.view
        if old is not None:
            try:
                old.measurements_changed.disconnect(self.refresh)
            except (RuntimeError, TypeError):
                pass
        self.view = view
        if view is not None:
            view.measurements_changed.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        self.list.clear()
        view = self.view
        if view is None:
            self._items = []
            self.list.addItem(QListWidgetItem("No measurements"))
            self.delete_button.setEnabled(False)
            return
        self._items = list(view.measurements())
        for m in self._items:
            self.list.addItem(QListWidgetItem(f"{where(m)}  {describe(m)}"))
        if not self._items:
            hint = QListWidgetItem("No measurements on this series")
            hint.setFlags(Qt.ItemFlag.NoItemFlags)
            self.list.addItem(hint)
        self.delete_button.setEnabled(bool(self._items))

    def _jump(self, item: QListWidgetItem) -> None:
        """Show the image the clicked measurement was drawn on (by its position, in whatever plane the
        view shows now), and keep the list where it is."""
        row = self.list.row(item)
        if self.view is None or not (0 <= row < len(self._items)):
            return
        m = self._items[row]
        state = self.view.state
        if m.plane == state.plane:
            state.set_slice(m.slice_index)
        else:
            state.set_slice_at(np.mean(np.asarray(m.points, dtype=np.float64), axis=0))

    def delete_selected(self) -> None:
        row = self.list.currentRow()
        if self.view is None or not (0 <= row < len(self._items)):
            return
        self.view.remove_measurement(self._items[row])
        self.refresh()

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if ev.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_selected()
            ev.accept()
            return
        super().keyPressEvent(ev)
