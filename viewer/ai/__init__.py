"""Embedded AI: ONNX classifiers described by a ``manifest.toml``, run with onnxruntime.

Public interface (names are importable from ``viewer.ai``; onnxruntime is imported only when a session
is created or a graph checked):

- :func:`load_manifest` ``(folder_or_toml) -> Manifest``; :class:`ManifestError` (``.field``, ``.path``).
- :class:`ModelRegistry` ``(dirs=None).models() -> [ModelEntry]``, ``.get(id) -> Manifest``;
  :func:`user_models_dir`; :func:`applicability` ``(manifest, volume) -> (ok, reason)``. The registry
  opens each graph to check it; ``viewer.ai.catalog.ModelCatalog`` lists from the manifests alone.
- ``viewer.ai.inference.ModelInference``: the desktop app's inference service (the Protocol
  ``viewer.state.services.Inference``): listing without ONNX Runtime, runs on slices, a box, a class map,
  occlusion and image-to-image, each returning a ``ModelRun`` (result, provider, note).
- :func:`preprocess` ``(manifest, images, *, info=None, modality="") -> float32 NCHW``.
- :class:`ModelSession` ``.get(manifest, device="auto"|"cuda"|"cpu", batch_size=None)``: cached session;
  ``.provider``, ``.device``, ``.message`` (why CUDA fell back), ``.batch_size``, ``.run(x)``.
- :func:`classify` ``(session, images, context=, progress=, cancel=) -> Predictions``,
  :func:`classify_slices` ``(session, volume, slices=None, ...)``, :func:`classify_box`
  ``(session, volume, k, box)``, :func:`sliding_window_map` ``(session, volume, k, window=|window_mm=,
  stride=|stride_mm=) -> ClassMap``, :func:`occlusion_map` ``(session, image, ...) -> OcclusionMap``.
- :class:`LatestOnly`: request ids so stale results are dropped; :class:`Cancelled`.

Conventions: images in modality units (HU for CT), arrays (z, y, x) / (rows, columns); boxes
``(row0, col0, row1, col1)`` pixels, half-open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from viewer.ai.errors import Cancelled, ManifestError, ModelError
from viewer.ai.manifest import Manifest, load_manifest
from viewer.ai.preprocess import Context, run_ops
from viewer.ai.registry import ModelEntry, ModelRegistry, applicability, user_models_dir
from viewer.core.series_info import SeriesInfo

if TYPE_CHECKING:
    from viewer.ai.runner import (ClassMap, LatestOnly, OcclusionMap, Predictions, classify, classify_box,
                                  classify_slices, occlusion_map, sliding_window_map)
    from viewer.ai.image_to_image import run_tiled
    from viewer.ai.session import ModelSession

_LAZY = {
    "ModelSession": "viewer.ai.session",
    "ClassMap": "viewer.ai.runner", "LatestOnly": "viewer.ai.runner", "OcclusionMap": "viewer.ai.runner",
    "Predictions": "viewer.ai.runner", "classify": "viewer.ai.runner", "classify_box": "viewer.ai.runner",
    "classify_slices": "viewer.ai.runner", "occlusion_map": "viewer.ai.runner",
    "sliding_window_map": "viewer.ai.runner",
    "run_tiled": "viewer.ai.image_to_image",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'viewer.ai' has no attribute {name!r}")


def preprocess(manifest: Manifest, images: np.ndarray, *, info: SeriesInfo | None = None,
               modality: str = "") -> np.ndarray:
    """Apply ``manifest``'s ``[[preprocess]]`` steps to ``images`` ((N, H, W) or (N, H, W, 3), modality
    units) and return the float32 (N, C, H, W) batch the network takes. ``info`` is the series'
    ``Volume.info`` (window, photometric interpretation)."""
    return run_ops(manifest.preprocess, images, Context.of(info, modality))


__all__ = ["Cancelled", "ClassMap", "Context", "LatestOnly", "Manifest", "ManifestError", "ModelEntry",
           "ModelError", "ModelRegistry", "ModelSession", "OcclusionMap", "Predictions", "applicability",
           "classify", "classify_box", "classify_slices", "load_manifest", "occlusion_map", "preprocess",
           "run_tiled", "sliding_window_map", "user_models_dir"]
