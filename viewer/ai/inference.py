"""The inference service: what the AI dock, the evaluation dock and the Filter menu run models with (it
is :class:`viewer.state.services.Inference`; the composition root creates it and hands it to them).

Listing reads the manifests (and checks each ONNX file's SHA-256) without ONNX Runtime: the desktop app
lists the models when the window opens, and importing the runtime then would cost its memory in every
session, model used or not. The runtime is imported by the first run (on a worker thread), which also opens
the graph and checks it against the manifest (a disagreement is that run's error message).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from viewer.ai.manifest import Manifest
from viewer.ai.catalog import ModelCatalog, ModelEntry, applicability
from viewer.ai.results import ClassMap, ModelRun, OcclusionMap, Predictions
from viewer.core.jobs import CancelCheck, Cancelled, Progress
from viewer.core.volume import Volume

if TYPE_CHECKING:
    from viewer.ai.session import ModelSession


class ModelInference:
    """The application's :class:`~viewer.state.services.Inference`: one listing of ``dirs`` (default:
    the shipped and the user's models), sessions on ``device`` (``"auto"``, ``"cuda"``, ``"cpu"``) created
    once per model and shared (``viewer.ai.ModelSession.get``)."""

    def __init__(self, device: str = "auto", dirs: Sequence[str | Path] | None = None) -> None:
        self.device = device
        self._catalog = ModelCatalog(dirs)
        self._lock = threading.Lock()  # listed from the window's thread and from workers

    def models(self) -> list[ModelEntry]:
        with self._lock:
            return self._catalog.models()

    def refresh(self) -> list[ModelEntry]:
        """List the model folders again (a model added while the app runs)."""
        with self._lock:
            return self._catalog.refresh()

    def applicability(self, manifest: Manifest, volume: Volume) -> tuple[bool, str]:
        return applicability(manifest, volume)

    def _session(self, manifest: Manifest, cancel: CancelCheck | None) -> ModelSession:
        from viewer.ai.session import ModelSession  # onnxruntime: at the first run, not at start-up

        session = ModelSession.get(manifest, self.device)
        if cancel is not None and cancel():
            raise Cancelled()
        return session

    def classify_slices(self, manifest: Manifest, volume: Volume, slices: Sequence[int] | None = None, *,
                        progress: Progress | None = None,
                        cancel: CancelCheck | None = None) -> ModelRun[Predictions]:
        from viewer.ai.runner import classify_slices

        s = self._session(manifest, cancel)
        return ModelRun(classify_slices(s, volume, slices, progress=progress, cancel=cancel), s.provider, s.message)

    def classify_box(self, manifest: Manifest, volume: Volume, k: int, box: tuple[int, int, int, int], *,
                     cancel: CancelCheck | None = None) -> ModelRun[Predictions]:
        from viewer.ai.runner import classify_box

        s = self._session(manifest, cancel)
        return ModelRun(classify_box(s, volume, k, box), s.provider, s.message)

    def class_map(self, manifest: Manifest, volume: Volume, k: int, *, progress: Progress | None = None,
                  cancel: CancelCheck | None = None) -> ModelRun[ClassMap]:
        from viewer.ai.runner import sliding_window_map

        s = self._session(manifest, cancel)
        return ModelRun(sliding_window_map(s, volume, k, progress=progress, cancel=cancel), s.provider, s.message)

    def occlusion(self, manifest: Manifest, volume: Volume, k: int, *, progress: Progress | None = None,
                  cancel: CancelCheck | None = None) -> ModelRun[OcclusionMap]:
        from viewer.ai.runner import context_of, occlusion_map

        s = self._session(manifest, cancel)
        occ = occlusion_map(s, volume.array[k], context=context_of(volume), progress=progress, cancel=cancel)
        return ModelRun(occ, s.provider, s.message)

    def image_to_image(self, manifest: Manifest, images: np.ndarray, *, progress: Progress | None = None,
                       cancel: CancelCheck | None = None) -> np.ndarray:
        from viewer.ai.image_to_image import run_tiled

        return run_tiled(self._session(manifest, cancel), np.asarray(images, dtype=np.float32),
                         progress=progress, cancel=cancel)


__all__ = ["ModelInference"]
