"""Where a user's label sets (config) and labels (data) live.

Environment overrides come first so tests, portable installs and CI never touch the real home folder:
``$VIEWER_CONFIG_DIR`` and ``$VIEWER_DATA_DIR``. Otherwise the platform convention: XDG on Linux
(``~/.config``, ``~/.local/share``), ``%APPDATA%``/``%LOCALAPPDATA%`` on Windows, ``~/Library/Application
Support`` on macOS.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "dicom-viewer"
RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def config_dir() -> Path:
    """The user's configuration folder (not created here)."""
    env = os.environ.get("VIEWER_CONFIG_DIR")
    if env:
        return Path(env)
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_NAME
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / APP_NAME


def data_dir() -> Path:
    """The user's data folder, where the label store lives (not created here)."""
    env = os.environ.get("VIEWER_DATA_DIR")
    if env:
        return Path(env)
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_NAME
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / APP_NAME


def default_store_path() -> Path:
    """``<data dir>/labels.sqlite``: the one store a user's labels, ROIs and masks are saved to."""
    return data_dir() / "labels.sqlite"
