"""AI results per series: what the overlay, the probability plot and MPR views observe.

Results are kept by SeriesInstanceUID (the volume's ``series_uid``; "" for series without one) and by
0-based slice index of the loaded volume, so they survive a layout change, MPR and back, and a reload of
the same series. A result replaces the previous one of its kind for that slice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from viewer.ai.results import ClassMap, OcclusionMap, Predictions
from viewer.state.observable import Observable


@dataclass
class SeriesAi:
    """The results of one series.

    Attributes
    ----------
    predictions
        Per-slice classification of the series (``Predictions.indices`` are its slices), or None.
    boxes
        Per slice, the (box, predictions) of each classified box; boxes (row0, col0, row1, col1), half-open.
    class_maps, occlusions
        Per slice, the latest sliding-window class map / occlusion heatmap.
    """

    predictions: Predictions | None = None
    boxes: dict[int, list[tuple[tuple[int, int, int, int], Predictions]]] = field(default_factory=dict)
    class_maps: dict[int, ClassMap] = field(default_factory=dict)
    occlusions: dict[int, OcclusionMap] = field(default_factory=dict)

    def slice_predictions(self, k: int) -> Predictions | None:
        """The predictions of slice ``k`` alone (one row), when the series was classified there."""
        p = self.predictions
        if p is None or p.indices is None:
            return None
        rows = np.flatnonzero(np.asarray(p.indices) == k)
        if not rows.size:
            return None
        i = int(rows[-1])
        return dataclasses.replace(p, probabilities=p.probabilities[i:i + 1], scores=p.scores[i:i + 1],
                                   indices=np.array([k]))

    @property
    def empty(self) -> bool:
        return self.predictions is None and not (self.boxes or self.class_maps or self.occlusions)


class AiResults(Observable):
    """Results by series UID. Change notifications: "results" (any series), after each change."""

    def __init__(self) -> None:
        super().__init__()
        self._by_series: dict[str, SeriesAi] = {}

    def of(self, series_uid: str) -> SeriesAi:
        """The results of ``series_uid`` (an empty record when there are none; not stored)."""
        return self._by_series.get(series_uid) or SeriesAi()

    def _rec(self, series_uid: str) -> SeriesAi:
        return self._by_series.setdefault(series_uid, SeriesAi())

    def set_predictions(self, series_uid: str, predictions: Predictions) -> None:
        """Slice predictions of a series; merged with earlier ones of the same model (by slice)."""
        rec = self._rec(series_uid)
        old = rec.predictions
        if (old is not None and old.indices is not None and predictions.indices is not None
                and old.model_id == predictions.model_id and old.labels == predictions.labels):
            keep = ~np.isin(old.indices, predictions.indices)
            predictions = Predictions(
                np.concatenate([old.probabilities[keep], predictions.probabilities]),
                np.concatenate([old.scores[keep], predictions.scores]), predictions.labels,
                np.concatenate([old.indices[keep], predictions.indices]), predictions.model_id,
                predictions.model_version, predictions.model_name, predictions.provider)
        rec.predictions = predictions
        self.notify("results")

    def add_box(self, series_uid: str, k: int, box: tuple[int, int, int, int], predictions: Predictions) -> None:
        self._rec(series_uid).boxes.setdefault(int(k), []).append((box, predictions))
        self.notify("results")

    def set_class_map(self, series_uid: str, k: int, class_map: ClassMap) -> None:
        self._rec(series_uid).class_maps[int(k)] = class_map
        self.notify("results")

    def set_occlusion(self, series_uid: str, k: int, occlusion: OcclusionMap) -> None:
        self._rec(series_uid).occlusions[int(k)] = occlusion
        self.notify("results")

    def clear(self, series_uid: str | None = None) -> None:
        """Forget one series' results (or all)."""
        if series_uid is None:
            self._by_series.clear()
        else:
            self._by_series.pop(series_uid, None)
        self.notify("results")
