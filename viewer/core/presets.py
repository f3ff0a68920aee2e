"""Window presets read from ``resources/window_presets.toml``."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from viewer.core.paths import RESOURCES

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class WindowPreset:
    name: str
    center: float
    width: float


@lru_cache(maxsize=None)
def window_presets(modality: str, path: Path | None = None) -> tuple[WindowPreset, ...]:
    """Presets for ``modality`` in key order (key 1 is the first); empty when the modality has none.

    A missing or broken presets file leaves every modality without presets (the keys do nothing, and
    the log says why) rather than crashing the key press that asked.
    """
    file = path or RESOURCES / "window_presets.toml"
    try:
        with open(file, "rb") as fh:
            table = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        log.warning("no window presets: cannot read %s: %s", file, exc)
        return ()
    return tuple(
        WindowPreset(str(e["name"]), float(e["center"]), float(e["width"])) for e in table.get(modality.upper(), [])
    )


def find_preset(name: str, modality: str = "CT") -> WindowPreset:
    """The preset called ``name`` (case- and space-insensitive, e.g. "soft-tissue", "Lung")."""
    want = name.lower().replace("-", " ").replace("_", " ")
    for preset in window_presets(modality):
        if preset.name.lower() == want:
            return preset
    names = ", ".join(p.name for p in window_presets(modality))
    raise KeyError(f"no {modality} window preset named {name!r}; known: {names}")
