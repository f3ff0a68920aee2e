"""The evaluation dock: score a model against the labels of the viewed series.

Shows accuracy and AUC, per-class precision/recall, the confusion matrix (rows = label, columns = model;
cells shaded by their share of the row) and the disagreements; activating a disagreement shows its slice.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from viewer.core.jobs import Executor, JobContext
from viewer.state.services import Inference, Manifest


class EvalPanel(QWidget):
    """Evaluate a model against the label panel's labels of its viewed series."""

    evaluated = Signal(dict)

    def __init__(self, panel: Any, parent: QWidget | None = None, inference: Inference | None = None,
                 background: Executor | None = None) -> None:
        super().__init__(parent)
        self.panel = panel
        # The window's Background: the model runs on a worker thread (hundreds of labelled slices take
        # seconds). Without one the evaluation runs in the caller (headless use).
        self.background = background
        # Lists and runs the models (viewer.ai.inference.ModelInference, injected by viewer.app).
        self.inference = inference
        self.report: dict[str, Any] | None = None
        self.model_box = QComboBox(self)
        self.run_button = QPushButton("Evaluate", self)
        self.summary = QLabel("Choose a model and press Evaluate", self)
        self.summary.setWordWrap(True)
        self.per_class = QTableWidget(0, 3, self)
        self.per_class.setHorizontalHeaderLabels(["support", "precision", "recall"])
        self.confusion = QTableWidget(0, 0, self)
        self.confusion.setToolTip("Rows: label; columns: model's top class")
        self.disagreements = QListWidget(self)
        top = QHBoxLayout()
        top.addWidget(self.model_box, 1)
        top.addWidget(self.run_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.summary)
        lay.addWidget(QLabel("Per class", self))
        lay.addWidget(self.per_class, 1)
        lay.addWidget(QLabel("Confusion matrix (rows = label, columns = model)", self))
        lay.addWidget(self.confusion, 1)
        lay.addWidget(QLabel("Disagreements (double-click to show)", self))
        lay.addWidget(self.disagreements, 1)
        self._manifests: dict[str, Manifest] = {}
        self.run_button.clicked.connect(lambda: self.evaluate())
        self.disagreements.itemActivated.connect(self._go_to)
        self.disagreements.itemDoubleClicked.connect(self._go_to)
        self.load_models()

    def load_models(self) -> None:
        """Fill the model list with the usable classifiers (labels score classifiers, not denoisers)."""
        if self.inference is None:
            return
        try:
            self._manifests = {e.manifest.id: e.manifest for e in self.inference.models()
                               if e.manifest is not None and e.manifest.task == "classification"}
        except Exception as exc:  # a broken models folder must not take the panel down
            self.summary.setText(f"Cannot list models: {exc}")
            return
        self.model_box.clear()
        self.model_box.addItems(sorted(self._manifests))

    def evaluate(self, model_id: str | None = None) -> dict[str, Any] | None:
        """Run the model on the labelled slices of the viewed series and show the results.

        With a ``background`` the model runs on a worker thread and this returns None at once; the report
        is shown, stored in ``report`` and sent with ``evaluated`` when it is ready. Without one it is
        computed here and returned.
        """
        from viewer.state.labels import evaluate_series

        model_id = model_id or self.model_box.currentText()
        manifest = self._manifests.get(model_id)
        view, session = self.panel.view, self.panel.session
        if self.inference is None:
            self.summary.setText("Models cannot run in this window (no AI runtime was given to it)")
            return None
        if manifest is None or view is None or view.volume is None or session is None:
            self.summary.setText("Open a series, choose a label set and a model first")
            return None
        # The label store is read here, on the main thread (its SQLite connection belongs to it).
        labels = {lab.key: lab for lab in self.panel.store.labels(session.label_set.name,
                                                                 series_uid=view.volume.series_uid)}
        volume, inference = view.volume, self.inference
        if self.background is None:
            try:
                report = evaluate_series(manifest, volume, labels, inference)
            except Exception as exc:  # model errors, no labelled slice: say so in the panel
                self._failed(str(exc))
                return None
            self.show_report(report)
            return report

        def job(ctx: JobContext) -> object:
            return evaluate_series(manifest, volume, labels, inference)

        self.run_button.setEnabled(False)
        self.summary.setText(f"Evaluating {model_id} on {len(labels)} labels…")
        self.background.submit("eval", job, on_result=self._finished, on_error=self._failed)
        return None

    def _finished(self, report: dict[str, Any]) -> None:
        self.run_button.setEnabled(True)
        self.show_report(report)

    def _failed(self, message: str) -> None:
        self.run_button.setEnabled(True)
        self.summary.setText(f"Cannot evaluate: {message.splitlines()[0] if message else 'unknown error'}")

    def show_report(self, r: dict[str, Any]) -> None:
        """Display a report of :func:`viewer.state.labels.evaluate_series`."""
        self.report = r
        names = list(r["class_names"])
        auc = r.get("auc")
        auc_text = "n/a" if auc is None or auc != auc else f"{auc:.3f}"
        self.summary.setText(f"{r['model']} {r['model_version']}: n = {r['n']}, accuracy {r['accuracy']:.3f}, "
                             f"AUC {auc_text}, {len(r['disagreements'])} disagreements"
                             + (f", {r['skipped_labels']} labels not among its classes"
                                if r.get("skipped_labels") else ""))
        # Classes that occur (as label or prediction): 11 organs of which 3 occur would be mostly zeros.
        shown = [n for n in names
                 if r["per_class"][n]["support"] or any(d["predicted"] == n for d in r["disagreements"])]
        self.per_class.setRowCount(len(shown))
        self.per_class.setVerticalHeaderLabels(shown)
        for i, n in enumerate(shown):
            pc = r["per_class"][n]
            for j, v in enumerate((pc["support"], pc["precision"], pc["recall"])):
                text = "n/a" if v is None else (str(v) if isinstance(v, int) else f"{v:.3f}")
                self.per_class.setItem(i, j, QTableWidgetItem(text))
        self.per_class.resizeColumnsToContents()
        cm = r["confusion_matrix"]
        idx = [names.index(n) for n in shown]
        self.confusion.setRowCount(len(idx))
        self.confusion.setColumnCount(len(idx))
        self.confusion.setVerticalHeaderLabels(shown)
        self.confusion.setHorizontalHeaderLabels(shown)
        for a, i in enumerate(idx):
            total = sum(cm[i]) or 1
            for b, j in enumerate(idx):
                item = QTableWidgetItem(str(cm[i][j]))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                share = cm[i][j] / total
                # Diagonal in green, errors in red, stronger with the share of the row.
                base = (40, 160, 60) if a == b else (200, 50, 50)
                if cm[i][j]:
                    item.setBackground(QColor(*base, int(60 + 195 * share)))
                self.confusion.setItem(a, b, item)
        self.confusion.resizeColumnsToContents()
        self.disagreements.clear()
        for d in r["disagreements"]:
            entry = QListWidgetItem(f"slice {d['z'] + 1}: label {d['label']}, model {d['predicted']} "
                                   f"({d['probability']:.0%})")
            entry.setData(Qt.ItemDataRole.UserRole, int(d["z"]))
            self.disagreements.addItem(entry)
        self.evaluated.emit(r)

    def _go_to(self, item: QListWidgetItem) -> None:
        z = item.data(Qt.ItemDataRole.UserRole)
        view = self.panel.view
        if view is not None and z is not None:
            if view.state.plane != "acquired":
                view.set_plane("acquired")
            view.set_slice(int(z))


__all__ = ["EvalPanel"]
