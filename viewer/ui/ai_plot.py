"""Each class's probability along the series (x: slice index k, y: probability 0..1); a click jumps there."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal

from viewer.ui.ai_overlay import class_colours, model_tag

LEGEND_MIN = 0.25


class AiProbabilityPlot(pg.PlotWidget):
    """One curve per class of a whole-series :class:`~viewer.ai.runner.Predictions`.

    Signals: ``slice_clicked(int)``: the slice index nearest to a click in the plot.
    """

    slice_clicked = Signal(int)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent, background=(20, 20, 20))
        self.setMinimumHeight(150)
        pi = self.getPlotItem()
        pi.setLabel("bottom", "slice k")
        pi.setLabel("left", "probability")
        # Head room above 1.0 for the legend row(s), so it never covers a curve.
        pi.setYRange(0.0, 1.3, padding=0.0)
        pi.getAxis("left").setTicks([[(v, f"{v:.1f}") for v in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]])
        pi.setMouseEnabled(x=True, y=False)
        pi.showGrid(x=True, y=True, alpha=0.2)
        self.legend = pi.addLegend(offset=(5, 2), labelTextSize="8pt", brush=pg.mkBrush(0, 0, 0, 160), colCount=3)
        self.cursor_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((255, 255, 255, 140), width=1))
        self.cursor_line.setVisible(False)
        pi.addItem(self.cursor_line, ignoreBounds=True)
        self.curves: list[pg.PlotDataItem] = []
        self.indices = np.zeros(0, dtype=np.int64)
        self.predictions: Any = None
        self.scene().sigMouseClicked.connect(self._clicked)
        self.clear_predictions()

    def clear_predictions(self) -> None:
        for c in self.curves:
            self.getPlotItem().removeItem(c)
        self.legend.clear()
        self.curves = []
        self.indices = np.zeros(0, dtype=np.int64)
        self.predictions = None
        self.legend.setVisible(False)
        self.getPlotItem().setTitle("<span style='font-size:8pt; color:#999'>Classify series to plot each class "
                                    "along the slices</span>")

    def set_predictions(self, predictions: Any) -> None:
        """Plot ``predictions`` (N slices, K classes; ``indices`` the slices' k)."""
        self.clear_predictions()
        self.predictions = predictions
        n = len(predictions)
        self.indices = (np.asarray(predictions.indices, dtype=np.int64) if predictions.indices is not None
                        else np.arange(n))
        colours = class_colours(len(predictions.labels))
        peak = predictions.probabilities.max(axis=0) if n else np.zeros(len(predictions.labels))
        for j, label in enumerate(predictions.labels):
            pen = pg.mkPen(tuple(int(v) for v in colours[j]), width=1.5)
            # Only classes that reach LEGEND_MIN somewhere get a legend row: eleven rows would cover the curves.
            curve = self.plot(self.indices, predictions.probabilities[:, j], pen=pen,
                              name=label if peak[j] >= LEGEND_MIN else None,
                              symbol="o", symbolSize=3, symbolPen=None, symbolBrush=pen.color())
            self.curves.append(curve)
        self.legend.setVisible(bool(self.legend.items))
        self.getPlotItem().setTitle(f"<span style='font-size:8pt'>{model_tag(predictions)}</span>")
        if n:
            self.getPlotItem().setXRange(float(self.indices.min()), float(self.indices.max()), padding=0.02)

    def set_current(self, k: int | None) -> None:
        self.cursor_line.setVisible(k is not None)
        if k is not None:
            self.cursor_line.setValue(k)

    def slice_at(self, x: float) -> int | None:
        """The plotted slice index nearest to data x, or None when nothing is plotted."""
        if self.indices.size == 0:
            return None
        return int(self.indices[int(np.argmin(np.abs(self.indices - x)))])

    def _clicked(self, ev: Any) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        vb = self.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        k = self.slice_at(vb.mapSceneToView(ev.scenePos()).x())
        if k is not None:
            self.set_current(k)
            self.slice_clicked.emit(k)


__all__ = ["AiProbabilityPlot"]
