"""Batch results in the viewer: the study browser marks each series with its stored label, and a series
opened shows its stored predictions (plot and overlay of the AI dock) without a re-run.

``dicom-viewer PATH --results RESULTS.parquet`` attaches it (:func:`attach_batch_results`). The results are
read on a worker thread (:func:`viewer.batch.stored.read_stored`, handed in by the composition root: the
desktop build leaves the batch stack out). The stored predictions go into ``workspace.ai``, state's AI
results per series, from which the AI dock plots a series when it is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import QTimer

from viewer.state.services import Predictions

if TYPE_CHECKING:
    from viewer.ui.ai_panel import AiPanel
    from viewer.ui.main_window import MainWindow

MARK_PREFIX = "AI: "


class StoredSeries(Protocol):
    """One series' stored result (``viewer.batch.stored.StoredSeries``; ui does not import the batch stack,
    which the desktop build leaves out)."""

    @property
    def predictions(self) -> Predictions: ...

    @property
    def label(self) -> str: ...

    @property
    def probability(self) -> float: ...


ReadStored = Callable[[str], Mapping[str, StoredSeries]]


class BatchResults:
    """Stored results attached to a main window (see module doc); ``stored`` maps series UID to
    :class:`viewer.batch.stored.StoredSeries`; ``ai_panel`` (when the window has the AI dock) shows
    where the plotted predictions come from."""

    def __init__(self, window: MainWindow, stored: Mapping[str, StoredSeries], source: str,
                 ai_panel: AiPanel | None = None) -> None:
        self.window = window
        self.stored = stored
        self.source = source
        self.ai_panel = ai_panel
        self._marked: set[str] = set()
        ws = window.workspace
        for uid, s in stored.items():
            ws.ai.set_predictions(uid, s.predictions)
        # Subscribers run in order; the AI dock resets its status on a new volume, so label ours after it.
        self._refresh = QTimer(window)
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(0)
        self._refresh.timeout.connect(self.update)
        self._unsub = [ws.subscribe(lambda _c: self._refresh.start())]
        for vp in ws.viewports:
            self._unsub.append(vp.image.subscribe(lambda _c: self._refresh.start()))
            self._unsub.append(vp.subscribe(lambda _c: self._refresh.start()))
        self.update()

    def update(self) -> None:
        self.mark_browser()
        self.show_in_ai_panel()

    def mark_browser(self) -> None:
        """Append the stored label to each listed series' description (once per series item)."""
        for key, item in list(self.window.browser.items.items()):
            stack = self.window.workspace.series.get(key)
            s = self.stored.get(stack.series_uid or "") if stack is not None else None
            if s is None or key in self._marked:
                continue
            self._marked.add(key)
            item.setText(0, f"{item.text(0)}\n{MARK_PREFIX}{s.label} {s.probability:.2f}")
            item.setToolTip(0, f"{item.toolTip(0)}\nStored prediction ({s.predictions.model_id} "
                               f"{s.predictions.model_version}, {self.source}): {s.label}, mean probability "
                               f"{s.probability:.3f} over {len(s.predictions)} slices")

    def show_in_ai_panel(self) -> None:
        """The AI dock plots a series' results from ``workspace.ai`` by itself; when those are the stored ones,
        say where they come from and draw the shown slice's labels on the image."""
        panel = self.ai_panel
        vp = panel.vp if panel is not None else None
        vol = vp.volume if vp is not None else None
        if panel is None or vp is None or vol is None:
            return
        s = self.stored.get(vol.series_uid or "")
        if s is None or panel.plot.predictions is not s.predictions:
            return  # not a stored series, or the user has run the model on it since
        if not panel.status.text():
            panel.status.setText(f"Stored predictions of {s.predictions.model_id} {s.predictions.model_version} "
                                 f"from {self.source} (not re-run)")
        panel._show_series_row(vp.slice_index)

    def close(self) -> None:
        for u in self._unsub:
            u()
        self._unsub = []


def attach_batch_results(window: MainWindow, path: str, read_stored: ReadStored, ai_panel: AiPanel | None = None,
                         on_error: Callable[[str], None] | None = None) -> None:
    """Read ``path`` on the window's background pool, then attach it (``window.batch_results``) to the
    window's browser and to its AI dock ``ai_panel``."""
    def done(stored: Mapping[str, StoredSeries]) -> None:
        window.batch_results = BatchResults(window, stored, path, ai_panel)
        window.statusBar().showMessage(f"{len(stored)} series with stored predictions from {path}", 8000)

    def failed(message: str) -> None:
        window.statusBar().showMessage(f"Cannot read batch results {path}: {message.splitlines()[0]}")
        if on_error is not None:
            on_error(message)

    window.background.submit("batch-results", lambda _ctx: read_stored(path), on_result=done, on_error=failed)
