"""Where models come from, which ones are usable, and whether one applies to a series.

Folders searched, in order (the first folder providing an ``id`` wins):

1. ``models/`` of this repository (the shipped models);
2. the user models folder: ``$VIEWER_MODELS_DIR`` if set, else ``$XDG_CONFIG_HOME/dicom-viewer/models``
   (``~/.config/dicom-viewer/models``) on Linux, ``~/Library/Application Support/dicom-viewer/models`` on
   macOS, ``%APPDATA%\\dicom-viewer\\models`` on Windows.

Every sub-folder holding a ``manifest.toml`` is a model. A broken one (bad manifest, altered weights) is
listed with its error instead of breaking the listing.

Reading manifests needs no network runtime, so this module imports no onnxruntime (the import contracts
check it: ``state`` lists models through it); :class:`viewer.ai.registry.ModelRegistry` adds the check of
each ONNX graph against its manifest, with ONNX Runtime.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from viewer.ai.errors import ModelError
from viewer.ai.manifest import MANIFEST_NAME, Manifest, load_manifest
from viewer.core.paths import MODELS, platform_config_dir
from viewer.core.volume import Volume

REPO_MODELS = MODELS  # the shipped models: the checkout's models/ or the installed package's copy


def user_models_dir() -> Path:
    """The user's own models folder (``$VIEWER_MODELS_DIR`` or the platform config location)."""
    env = os.environ.get("VIEWER_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    return platform_config_dir() / "models"


def default_model_dirs() -> list[Path]:
    return [REPO_MODELS, user_models_dir()]


@dataclass(frozen=True)
class ModelEntry:
    """One model folder: its manifest when usable, else the error (a message for the user)."""

    folder: Path
    manifest: Manifest | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.manifest is not None

    @property
    def id(self) -> str:
        return self.manifest.id if self.manifest is not None else self.folder.name


class ModelCatalog:
    """The models found in ``dirs`` (default :func:`default_model_dirs`).

    ``models()`` scans once and caches (``refresh()`` rescans); ``get(id)`` returns a usable Manifest or
    raises ModelError saying why not. ``check(manifest)``, when given, is a further test of each model
    (raising ModelError lists the model as unusable with that message).
    """

    def __init__(self, dirs: Sequence[str | Path] | None = None, *,
                 check: Callable[[Manifest], None] | None = None) -> None:
        self.dirs = [Path(d) for d in (dirs if dirs is not None else default_model_dirs())]
        self.check = check
        self._entries: list[ModelEntry] | None = None

    def _folders(self) -> Iterable[Path]:
        for d in self.dirs:
            if not d.is_dir():
                continue
            for sub in sorted(d.iterdir()):
                if sub.is_dir() and (sub / MANIFEST_NAME).is_file():
                    yield sub

    def _load(self, folder: Path) -> ModelEntry:
        try:
            m = load_manifest(folder)
            if self.check is not None:
                self.check(m)
        except ModelError as exc:
            return ModelEntry(folder, None, str(exc))
        except Exception as exc:  # a listing must survive anything a folder holds
            return ModelEntry(folder, None, f"{folder}: {type(exc).__name__}: {exc}")
        return ModelEntry(folder, m)

    def refresh(self) -> list[ModelEntry]:
        entries: list[ModelEntry] = []
        seen: dict[str, Path] = {}
        for folder in self._folders():
            e = self._load(folder)
            if e.manifest is not None:
                mid = e.manifest.id
                if mid in seen:
                    e = ModelEntry(folder, None, f"{folder}: id {mid!r} is already provided by {seen[mid]}")
                else:
                    seen[mid] = folder
            entries.append(e)
        self._entries = entries
        return entries

    def models(self) -> list[ModelEntry]:
        """Every model folder found, usable or not (check ``entry.ok`` / ``entry.error``)."""
        return self._entries if self._entries is not None else self.refresh()

    def get(self, model_id: str) -> Manifest:
        """The usable model ``model_id``; ModelError names the problem or the ids that exist."""
        entries = self.models()
        for e in entries:
            if e.manifest is not None and e.manifest.id == model_id:
                return e.manifest
        for e in entries:
            if e.manifest is None and e.folder.name == model_id:
                raise ModelError(f"model {model_id!r} cannot be used: {e.error}")
        known = ", ".join(sorted(e.id for e in entries if e.ok)) or "none"
        where = ", ".join(str(d) for d in self.dirs)
        raise ModelError(f"no model {model_id!r} in {where} (usable models: {known})")


def applicability(manifest: Manifest, volume: Volume) -> tuple[bool, str]:
    """Whether ``manifest``'s model is meant for ``volume``, and a sentence for the UI: why not (``ok``
    False), or the warning to show with its results (``ok`` True, e.g. a radiograph whose header states no
    body part), else "". The checks (modality, grey/RGB, body part, view position, photometric
    interpretation, size) are :func:`viewer.ai.applies.check`. ``scope`` does not make a model
    inapplicable: ``roi`` models run on a box or a sliding window, ``image`` models on whole slices.
    """
    from viewer.ai.applies import check

    verdict = check(manifest, volume)
    return (True, verdict.warning) if verdict.ok else (False, verdict.reason)
