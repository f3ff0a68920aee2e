"""The model registry the commands use: :class:`viewer.ai.catalog.ModelCatalog` plus, by default, a check
of each model's ONNX graph against its manifest (ONNX Runtime opens it once on the CPU).

Listing without that check (``check_onnx=False``, or the catalog itself) imports no onnxruntime; a graph
that disagrees with its manifest is then reported by the first session created for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from viewer.ai.catalog import REPO_MODELS as REPO_MODELS
from viewer.ai.catalog import ModelCatalog
from viewer.ai.catalog import ModelEntry as ModelEntry
from viewer.ai.catalog import applicability as applicability
from viewer.ai.catalog import default_model_dirs as default_model_dirs
from viewer.ai.catalog import user_models_dir as user_models_dir
from viewer.ai.manifest import Manifest


def _inspect(m: Manifest) -> None:
    from viewer.ai.session import inspect_model  # onnxruntime only when checking graphs

    inspect_model(m)


class ModelRegistry(ModelCatalog):
    """The models found in ``dirs`` (default: the shipped and the user's models folders).

    ``models()`` scans once and caches (``refresh()`` rescans); ``get(id)`` returns a usable Manifest or
    raises ModelError saying why not. With ``check_onnx`` (default) each model's graph is opened once on the
    CPU to compare its input/output names, shapes and dtype with the manifest.
    """

    def __init__(self, dirs: Sequence[str | Path] | None = None, *, check_onnx: bool = True) -> None:
        super().__init__(dirs, check=_inspect if check_onnx else None)
        self.check_onnx = check_onnx


__all__ = ["REPO_MODELS", "ModelEntry", "ModelRegistry", "applicability", "default_model_dirs", "user_models_dir"]
