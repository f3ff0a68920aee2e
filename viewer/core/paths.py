"""Where the application's files live: shipped resources and the platform's per-user folders.

Environment overrides (``$VIEWER_CONFIG_DIR``, ``$VIEWER_DATA_DIR``, ``$VIEWER_MODELS_DIR``,
``$VIEWER_CACHE_DIR``) are applied by the modules that own each kind of file; these are the defaults.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "dicom-viewer"
RESOURCES = Path(__file__).resolve().parents[2] / "resources"


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
