"""Where a user's label sets (config) and labels (data) live.

Environment overrides come first so tests, portable installs and CI never touch the real home folder:
``$VIEWER_CONFIG_DIR`` and ``$VIEWER_DATA_DIR``. Otherwise the platform convention: XDG on Linux
(``~/.config``, ``~/.local/share``), ``%APPDATA%``/``%LOCALAPPDATA%`` on Windows, ``~/Library/Application
Support`` on macOS.
"""

from __future__ import annotations

import os
from pathlib import Path

from viewer.core.paths import APP_NAME, RESOURCES, platform_config_dir, platform_data_dir

__all__ = ["APP_NAME", "RESOURCES", "config_dir", "data_dir", "default_store_path"]


def config_dir() -> Path:
    """The user's configuration folder (not created here)."""
    env = os.environ.get("VIEWER_CONFIG_DIR")
    return Path(env) if env else platform_config_dir()


def data_dir() -> Path:
    """The user's data folder, where the label store lives (not created here)."""
    env = os.environ.get("VIEWER_DATA_DIR")
    return Path(env) if env else platform_data_dir()


def default_store_path() -> Path:
    """``<data dir>/labels.sqlite``: the one store a user's labels, ROIs and masks are saved to."""
    return data_dir() / "labels.sqlite"
