"""AI results drawn on a :class:`~viewer.ui.viewport.SliceViewport`.

Three layers, each for one slice k of the acquired plane (results are shown only while that slice is):

- top-k labels with probabilities in a box at the viewport's left edge, under the corner text;
- a sliding-window class map as a coloured label image (``ClassMap.label_image``) with a legend and an
  adjustable opacity;
- an occlusion-sensitivity heatmap (probability drop when a patch is hidden), red where hiding the
  patch lowers the explained class's probability.

Every layer names the model and version that made it. Arrays are (rows, columns) of the stored slice;
the viewport's flips and rotation are applied here as the viewport applies them to the image.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QLabel

from viewer.state.ai_results import AiResults
from viewer.state.services import ClassMap, OcclusionMap, Predictions

# Distinct, colour-blind-friendlier hues (Okabe-Ito first, then Tableau); index = class index.
PALETTE = np.array([
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
    (204, 121, 167), (255, 255, 255), (148, 103, 189), (227, 119, 194), (188, 189, 34), (23, 190, 207),
    (140, 86, 75), (127, 127, 127), (174, 199, 232), (255, 152, 150),
], dtype=np.uint8)

_BOX_STYLE = ("QLabel { background: rgba(0, 0, 0, 170); color: #ebebeb; border: 1px solid rgba(255,255,255,60);"
              " border-radius: 3px; padding: 3px 5px; }")


def class_colours(n: int) -> np.ndarray:
    """(n, 3) uint8 RGB colour of each class index (the palette repeats past 16 classes)."""
    return PALETTE[np.arange(n) % len(PALETTE)]


def label_rgba(labels: np.ndarray, n_classes: int, opacity: float, mask: np.ndarray | None = None) -> np.ndarray:
    """uint8 (rows, cols, 4) RGBA of a class-index image: class colour, alpha ``opacity`` (0..1) where
    ``mask`` (default everywhere), transparent elsewhere."""
    rgba = np.empty((*labels.shape, 4), dtype=np.uint8)
    rgba[..., :3] = class_colours(n_classes)[labels]
    rgba[..., 3] = int(round(255 * float(np.clip(opacity, 0.0, 1.0))))
    if mask is not None:
        rgba[..., 3][~mask] = 0
    return rgba


# Windows lying over air outside the patient are classified anyway (the organ model never saw an air-only
# crop and answers some organ with confidence); painting them would colour the whole field of view.
AIR_HU = -500.0


def class_map_mask(values: np.ndarray, modality: str) -> np.ndarray:
    """bool (rows, cols): where the class map is drawn; for CT, not over air (below :data:`AIR_HU` HU)."""
    if modality.upper() == "CT" and values.ndim == 2:
        return np.asarray(values >= AIR_HU)
    return np.ones(values.shape[:2], dtype=bool)


def heat_rgba(heat: np.ndarray, opacity: float) -> np.ndarray:
    """uint8 RGBA of an occlusion heatmap (probability drops): red->yellow, alpha grows with the drop.

    Negative drops (hiding the patch made the class *more* likely) stay transparent; the scale is the
    map's own maximum so a weak explanation is still visible, and the overlay text gives that maximum.
    """
    top = float(heat.max()) if heat.size else 0.0
    v = np.clip(heat / top, 0.0, 1.0) if top > 0 else np.zeros_like(heat, dtype=np.float32)
    rgba = np.empty((*heat.shape, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 1] = (v * 230).astype(np.uint8)
    rgba[..., 2] = 0
    rgba[..., 3] = (v * 255 * float(np.clip(opacity, 0.0, 1.0))).astype(np.uint8)
    return rgba


def model_tag(result: Predictions | ClassMap | OcclusionMap) -> str:
    """"name version" of the model that made ``result`` (Predictions, ClassMap or OcclusionMap)."""
    return f"{result.model_name or result.model_id} {result.model_version}".strip()


class AiOverlay(QObject):
    """The AI layers of one viewport. ``set_*`` store a result for slice ``k``; ``clear()`` drops all.

    Attributes (read by tests and the screenshot command): ``map_item`` / ``heat_item`` (pyqtgraph
    ImageItems in the viewport's view box), ``labels_box`` / ``legend_box`` (QLabels over the viewport).
    """

    def __init__(self, viewport: Any, results: AiResults | None = None) -> None:
        super().__init__(viewport)
        self.vp = viewport
        # The application's results per series: what this viewport shows when it has drawn nothing of its
        # own for the slice (another viewport's run, a reloaded series, an MPR plane through the slice).
        self.results = results
        self.opacity = 0.45
        self.topk: tuple[int, Predictions, str] | None = None  # (slice, Predictions of one image, what)
        self.class_map: tuple[int, ClassMap] | None = None
        self.occlusion: tuple[int, OcclusionMap] | None = None
        self.box: tuple[int, tuple[int, int, int, int]] | None = None
        self.k = 3
        self.map_item = pg.ImageItem(axisOrder="row-major")
        self.heat_item = pg.ImageItem(axisOrder="row-major")
        for z, item in ((5, self.map_item), (6, self.heat_item)):
            item.setZValue(z)
            item.setVisible(False)
            viewport.vb.addItem(item)
        self.box_item = pg.QtWidgets.QGraphicsRectItem()
        self.box_item.setPen(pg.mkPen((255, 220, 0), width=2, cosmetic=True))
        self.box_item.setZValue(7)
        self.box_item.setVisible(False)
        viewport.vb.addItem(self.box_item)
        self.labels_box = QLabel(viewport)
        self.legend_box = QLabel(viewport)
        for lab in (self.labels_box, self.legend_box):
            lab.setStyleSheet(_BOX_STYLE)
            lab.setTextFormat(Qt.TextFormat.RichText)
            lab.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            lab.hide()
        viewport.slice_changed.connect(lambda _k: self.sync())
        self._unsub = [viewport.state.subscribe(self._state_changed),
                       viewport.state.image.subscribe(self._image_changed)]
        viewport.vb.sigResized.connect(lambda *_: self._place_boxes())
        if results is not None:
            self._unsub.append(results.subscribe(lambda _c: self.sync()))

    # -- results ----------------------------------------------------------------------------------------
    def set_topk(self, k: int, predictions: Predictions, what: str = "slice") -> None:
        self.topk = (k, predictions, what)
        self.sync()

    def set_class_map(self, k: int, class_map: ClassMap) -> None:
        self.class_map = (k, class_map)
        self.sync()

    def set_occlusion(self, k: int, occlusion: OcclusionMap) -> None:
        self.occlusion = (k, occlusion)
        self.sync()

    def set_box(self, k: int, box: tuple[int, int, int, int] | None) -> None:
        self.box = None if box is None else (k, box)
        self.sync()

    def set_opacity(self, opacity: float) -> None:
        self.opacity = float(opacity)
        self.sync()

    def clear(self) -> None:
        self.topk = self.class_map = self.occlusion = self.box = None
        self.sync()

    # -- drawing ----------------------------------------------------------------------------------------
    def _shown(self, entry: tuple[Any, ...] | None) -> bool:
        st = self.vp.state
        return entry is not None and st.volume is not None and st.plane == "acquired" and st.slice_index == entry[0]

    def acquired_index(self) -> int | None:
        """The acquired slice k this view shows: its own index on the acquired plane; on a reformat parallel
        to the acquisition (MPR's axial plane of an axial series), the acquired slice through it; else None."""
        st = self.vp.state
        vol, g = st.volume, st.geometry
        if vol is None or g is None:
            return None
        if st.plane == "acquired":
            return int(st.slice_index)
        normal = np.asarray(g.normal, dtype=np.float64)
        k_axis = vol.affine[:3, 2] / max(float(np.linalg.norm(vol.affine[:3, 2])), 1e-9)
        if abs(float(normal @ k_axis)) < 0.999:
            return None
        rows, cols = g.shape
        k = float(vol.patient_to_voxel(st.point_to_lps((rows - 1) / 2, (cols - 1) / 2))[2])
        return int(round(k)) if -0.5 <= k <= vol.shape[0] - 0.5 else None

    def _from_results(self) -> tuple[int | None, Any]:
        """(acquired k, the series' SeriesAi) when results are observed and a series is shown."""
        vol = self.vp.state.volume
        if self.results is None or vol is None:
            return None, None
        return self.acquired_index(), self.results.of(vol.series_uid)

    def _state_changed(self, changes: frozenset[str]) -> None:
        if changes & {"view", "plane"}:
            self.sync()

    def _image_changed(self, changes: frozenset[str]) -> None:
        if "volume" in changes:
            self.clear()

    def _image_rect(self) -> Any:
        item = self.vp.image_item
        return item.mapRectToParent(item.boundingRect())

    def sync(self) -> None:
        """Redraw every layer for the slice now shown."""
        if not shiboken6.isValid(self.vp):
            return
        transform = self.vp.state.transform
        rect = self._image_rect()
        legend: list[str] = []
        k_acq, series = self._from_results()
        acquired = self.vp.state.plane == "acquired"
        class_map = self.class_map[1] if self._shown(self.class_map) else (  # type: ignore[index]
            series.class_maps.get(k_acq) if series is not None and acquired else None)
        occlusion = self.occlusion[1] if self._shown(self.occlusion) else (  # type: ignore[index]
            series.occlusions.get(k_acq) if series is not None and acquired else None)
        if class_map is not None:
            cm = class_map
            values = self.vp.state.slice_array()
            labels = cm.label_image(values.shape[:2])
            mask = class_map_mask(values, self.vp.volume.modality or "")
            rgba = label_rgba(labels, len(cm.labels), self.opacity, mask)
            self.map_item.setImage(np.ascontiguousarray(transform.apply(rgba)), autoLevels=False, levels=(0, 255))
            self.map_item.setRect(rect)
            self.map_item.setVisible(True)
            legend.append(f"<b>Class map</b> — {html.escape(model_tag(cm))}")
            legend.append(self._legend_table(labels[mask], cm.labels))
        else:
            self.map_item.setVisible(False)
        if occlusion is not None:
            occ = occlusion
            # a little more opaque than the class map: the heat fades to transparent by itself
            rgba = heat_rgba(occ.heatmap, min(1.0, self.opacity + 0.3))
            self.heat_item.setImage(np.ascontiguousarray(transform.apply(rgba)), autoLevels=False, levels=(0, 255))
            self.heat_item.setRect(rect)
            self.heat_item.setVisible(True)
            legend.append(f"<b>Occlusion</b> — {html.escape(model_tag(occ))}")
            legend.append(f"<span style='color:rgb(255,230,0)'>■</span> hiding lowers P({html.escape(occ.label)}) "
                          f"by up to {float(occ.heatmap.max()):.2f} (base {occ.base_probability:.2f})")
        else:
            self.heat_item.setVisible(False)
        # a table is a block of its own: no line break before it
        self.legend_box.setText("".join(("" if i == 0 or part.startswith("<table") else "<br>") + part
                                        for i, part in enumerate(legend)))
        self.legend_box.setVisible(bool(legend))
        if self._shown(self.box):
            r0, c0, r1, c1 = self.box[1]  # type: ignore[index]
            a = self.vp.slice_to_view(r0 - 0.5, c0 - 0.5)
            b = self.vp.slice_to_view(r1 - 0.5, c1 - 0.5)
            self.box_item.setRect(pg.QtCore.QRectF(a, b).normalized())
            self.box_item.setVisible(True)
        else:
            self.box_item.setVisible(False)
        topk = self.topk if self._shown(self.topk) else None
        if topk is None and series is not None and k_acq is not None:
            row = series.slice_predictions(k_acq)
            if row is not None:
                topk = (k_acq, row, "series")
        if topk is not None:
            _k, pred, what = topk
            lines = [f"<b>{html.escape(model_tag(pred))}</b> <span style='color:#aaa'>({html.escape(what)})</span>"]
            for label, p in pred.top(self.k)[0]:
                lines.append(f"{p * 100:5.1f}%&nbsp;&nbsp;{html.escape(label)}")
            if pred.threshold is not None:  # the manifest's operating point decides
                lines.append(f"<b>{html.escape(pred.predicted_label[0])}</b> <span style='color:#aaa'>"
                             f"({html.escape(pred.decision)})</span>")
            self.labels_box.setText("<br>".join(lines))
            self.labels_box.setVisible(True)
        else:
            self.labels_box.setVisible(False)
        self._place_boxes()

    @staticmethod
    def _legend_table(shown: np.ndarray, names: tuple[str, ...], columns: int = 3) -> str:
        """The classes drawn (largest area first) as a compact table of colour swatches."""
        counts = np.bincount(shown.ravel(), minlength=len(names)) if shown.size else np.zeros(len(names), int)
        order = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
        cols = class_colours(len(names))
        cells = []
        for i in order:
            r, g, b = (int(v) for v in cols[i])
            swatch = f"<span style='color:rgb({r},{g},{b})'>■</span>"
            cells.append(f"<td>{swatch} {html.escape(names[i])}&nbsp;&nbsp;</td>")
        rows = ["<tr>" + "".join(cells[j:j + columns]) + "</tr>" for j in range(0, len(cells), columns)]
        return "<table cellspacing='0' cellpadding='0'>" + "".join(rows) + "</table>"

    def _place_boxes(self) -> None:
        """Top-k under the top-left corner text; legend above the bottom-left corner text."""
        if not shiboken6.isValid(self.vp):
            return
        h = self.vp.viewport().height()
        px = max(11, min(15, int(h / 40)))  # the corner text's font size (overlay.paint_overlay)
        line = px * 1.25
        content = self.vp.overlay()
        for lab in (self.labels_box, self.legend_box):
            f = lab.font()
            f.setPixelSize(px)
            lab.setFont(f)
            lab.adjustSize()
        self.labels_box.move(6, int(10 + len(content.top_left) * line + 6))
        self.legend_box.move(6, int(h - 10 - len(content.bottom_left) * line - 6 - self.legend_box.height()))

    def text(self) -> str:
        """Plain text of the visible boxes (for tests and logs)."""
        from PySide6.QtGui import QTextDocument

        parts = []
        for lab in (self.labels_box, self.legend_box):
            if lab.isVisible():
                doc = QTextDocument()
                doc.setHtml(lab.text())
                parts.append(doc.toPlainText())
        return "\n".join(parts)

    def detach(self) -> None:
        for u in self._unsub:
            u()
        self._unsub = []
        if shiboken6.isValid(self.vp):
            for item in (self.map_item, self.heat_item, self.box_item):
                self.vp.vb.removeItem(item)
            self.labels_box.deleteLater()
            self.legend_box.deleteLater()


__all__ = ["AIR_HU", "AiOverlay", "PALETTE", "class_map_mask", "class_colours", "heat_rgba", "label_rgba", "model_tag"]
