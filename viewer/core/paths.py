"""Where the application's files live: shipped resources and the platform's per-user folders.

Environment overrides (``$VIEWER_CONFIG_DIR``, ``$VIEWER_DATA_DIR``, ``$VIEWER_MODELS_DIR``,
``$VIEWER_CACHE_DIR``) are applied by the modules that own each kind of file; these are the defaults.
The shipped files are listed in ``pyproject.toml`` (``[tool.dicom-viewer] shipped``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "dicom-viewer"


def _shipped_root() -> Path:
    """The folder holding the shipped ``resources/`` and ``models/``.

    A wheel (and the frozen build) carries them inside the package as ``viewer/shipped/`` (setup.py's
    build step copies them there from the repository's top level); a checkout or an editable install
    keeps them at the repository's top level, next to ``viewer/``. Nothing is duplicated in git.
    """
    package = Path(__file__).resolve().parents[1]
    inside = package / "shipped"
    return inside if (inside / "resources").is_dir() else package.parent


SHIPPED = _shipped_root()
RESOURCES = SHIPPED / "resources"
MODELS = SHIPPED / "models"


def platform_config_dir() -> Path:
    """XDG config on Linux (``~/.config``), ``%APPDATA%`` on Windows, Application Support on macOS."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_NAME
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / APP_NAME


def platform_data_dir() -> Path:
    """XDG data on Linux (``~/.local/share``), ``%LOCALAPPDATA%`` on Windows, Application Support on macOS."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_NAME
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / APP_NAME
