"""What a classifier said: the result records of :mod:`viewer.ai.runner`.

Plain numpy records, importing no onnxruntime (checked by the import contracts), so ``state`` keeps
them per series and ``ui`` draws them with their types. Images are (rows, columns); slice indices are
0-based z of the volume (the screen shows the file's InstanceNumber).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from viewer.core.decision import decide, describe


@dataclass
class Predictions:
    """What a classifier said about N images.

    Attributes
    ----------
    probabilities
        float32 (N, K), after the manifest's activation.
    scores
        float32 (N, K), the raw network outputs.
    labels
        The K class names, in output order.
    indices
        Slice indices (z) the rows belong to, when they come from a volume; else None.
    model_id, model_version, model_name
        Which model made them (overlays show ``model_name model_version``).
    provider
        The execution provider that ran the network (``CPUExecutionProvider``, ``CUDAExecutionProvider``).
    threshold, bias
        The manifest's operating point (``[output] threshold`` / ``bias``); None: arg-max.
    """

    probabilities: np.ndarray
    scores: np.ndarray
    labels: tuple[str, ...]
    indices: np.ndarray | None = None
    model_id: str = ""
    model_version: str = ""
    model_name: str = ""
    provider: str = ""
    threshold: float | None = None
    bias: tuple[float, ...] | None = None

    def __len__(self) -> int:
        return int(self.probabilities.shape[0])

    @property
    def predicted_index(self) -> np.ndarray:
        """(N,) the class the model's operating point decides (:func:`viewer.core.decision.decide`)."""
        return decide(self.probabilities, self.threshold, self.bias)

    @property
    def predicted_label(self) -> list[str]:
        return [self.labels[i] for i in self.predicted_index]

    @property
    def decision(self) -> str:
        """The decision rule in words (``"pneumonia if P(pneumonia) >= 0.62"``)."""
        return describe(self.labels, self.threshold, self.bias)

    @property
    def top_index(self) -> np.ndarray:
        """(N,) index of the most probable class."""
        return np.asarray(np.argmax(self.probabilities, axis=1))

    @property
    def top_label(self) -> list[str]:
        return [self.labels[i] for i in self.top_index]

    @property
    def top_probability(self) -> np.ndarray:
        return np.asarray(self.probabilities[np.arange(len(self)), self.top_index])

    def top(self, k: int = 3) -> list[list[tuple[str, float]]]:
        """Per image, the ``k`` most probable (label, probability), best first."""
        order = np.argsort(-self.probabilities, axis=1, kind="stable")[:, :k]
        return [[(self.labels[j], float(self.probabilities[i, j])) for j in row] for i, row in enumerate(order)]


@dataclass
class ClassMap:
    """A sliding-window classification of one slice.

    Attributes
    ----------
    rows, cols
        Start row / column (pixels) of each window position; window (i, j) covers
        ``rows[i]:rows[i] + window[0], cols[j]:cols[j] + window[1]``.
    window, stride
        Window and stride (rows, columns) in pixels.
    probabilities
        float32 (len(rows), len(cols), K).
    labels, model_id, model_version, model_name, provider
        As in :class:`Predictions`.
    """

    rows: np.ndarray
    cols: np.ndarray
    window: tuple[int, int]
    stride: tuple[int, int]
    probabilities: np.ndarray
    labels: tuple[str, ...]
    model_id: str = ""
    model_version: str = ""
    model_name: str = ""
    provider: str = ""

    @property
    def class_map(self) -> np.ndarray:
        """(len(rows), len(cols)) index of the most probable class per window."""
        return np.asarray(np.argmax(self.probabilities, axis=2))

    def label_image(self, shape: tuple[int, int]) -> np.ndarray:
        """int16 (rows, columns) image of ``shape``: each pixel gets the class of the window whose centre is
        nearest along each axis (a tiling of the slice), for drawing as a coloured label overlay."""
        def nearest(starts: np.ndarray, win: int, n: int) -> np.ndarray:
            centres = starts + (win - 1) / 2.0
            mids = (centres[1:] + centres[:-1]) / 2.0
            return np.searchsorted(mids, np.arange(n), side="left")
        iy = nearest(self.rows, self.window[0], shape[0])
        ix = nearest(self.cols, self.window[1], shape[1])
        return np.asarray(self.class_map[np.ix_(iy, ix)], dtype=np.int16)


@dataclass
class OcclusionMap:
    """Occlusion sensitivity of one image.

    Attributes
    ----------
    heatmap
        float32 (rows, columns): for each pixel, the mean drop of the target class's probability over the
        occluding patches that covered it (positive = the pixel supported the prediction).
    target, label
        The class explained (index and name).
    base_probability
        Its probability on the unoccluded image.
    patch, stride
        Patch and stride (rows, columns) in pixels; ``fill`` the value (modality units) patches were set to.
    """

    heatmap: np.ndarray
    target: int
    label: str
    base_probability: float
    patch: tuple[int, int]
    stride: tuple[int, int]
    fill: float
    model_id: str = ""
    model_version: str = ""
    model_name: str = ""
    provider: str = ""


R = TypeVar("R", covariant=True)


@dataclass(frozen=True)
class ModelRun(Generic[R]):
    """What one inference returned, with the runtime that computed it (the AI dock shows both).

    ``provider``: the execution provider (``CPUExecutionProvider``, ``CUDAExecutionProvider``); ``note``:
    why CUDA was asked for and the CPU ran it, for the user to read, else None.
    """

    result: R
    provider: str
    note: str | None = None
