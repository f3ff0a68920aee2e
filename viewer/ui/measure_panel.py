"""The measurement panel: lists the measurements of the active viewport with the image they are on;
a click goes to that image, Delete removes one.

Measurements are the ui-view engineer's plain dataclasses in ``viewer.state``; the panel reads them from
the active slice view through ``measurements()`` (list) and removes them with ``remove_measurement(m)``
when the view offers those, and shows "no measurement tools" otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget


def where(m: Any) -> str:
    """The image a measurement is on, numbered from 1 as the overlay shows it ("Im 31", "cor Im 12")."""
    plane = "" if m.plane == "acquired" else f"{m.plane[:3]} "
    return f"{plane}Im {m.slice_index + 1}"


def describe(m: Any) -> str:
    """One line for a measurement: its kind and its numbers with units."""
    if hasattr(m, "describe"):
        return str(m.describe())
    kind = type(m).__name__
    parts = []
    for name, unit in (("length_mm", "mm"), ("angle_deg", "°"), ("area_mm2", "mm²"), ("mean", "HU"),
                       ("std", "SD"), ("min", "min"), ("max", "max")):
        v = getattr(m, name, None)
        if isinstance(v, (int, float)):
            parts.append(f"{v:.1f} {unit}")
    return f"{kind}: " + ", ".join(parts) if parts else kind


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
        self.view: Any = None
        self._items: list[Any] = []
        self.refresh()

    def set_view(self, view: Any) -> None:
        """Follow ``view`` (the active slice view); re-list when its measurements change."""
        old = self.view
        if old is not None and hasattr(old, "measurements_changed"):
            try:
                old.measurements_changed.disconnect(self.refresh)
            except (RuntimeError, TypeError):
                pass
        self.view = view
        if view is not None and hasattr(view, "measurements_changed"):
            view.measurements_changed.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        self.list.clear()
        view = self.view
        if view is None or not hasattr(view, "measurements"):
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
        if self.view is None or not (0 <= row < len(self._items)) or not hasattr(self.view, "remove_measurement"):
            return
        self.view.remove_measurement(self._items[row])
        self.refresh()

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if ev.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_selected()
            ev.accept()
            return
        super().keyPressEvent(ev)
