"""User settings kept with QSettings: recent folders, last layout, cine frame rate."""

from __future__ import annotations

from PySide6.QtCore import QSettings

ORGANIZATION = "dicom-viewer"
APPLICATION = "dicom-viewer"
MAX_RECENT = 10


class Settings:
    """Thin typed wrapper over QSettings (an INI file in the user's config folder)."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings or QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                                        ORGANIZATION, APPLICATION)

    def recent_folders(self) -> list[str]:
        value = self.q.value("recent/folders", [])
        if isinstance(value, str):  # QSettings returns a lone string for a one-item list
            value = [value]
        return [str(v) for v in (value if isinstance(value, (list, tuple)) else []) if v]

    def add_recent_folder(self, path: str) -> list[str]:
        recent = [p for p in self.recent_folders() if p != path]
        recent.insert(0, path)
        recent = recent[:MAX_RECENT]
        self.q.setValue("recent/folders", recent)
        self.q.sync()
        return recent

    def clear_recent(self) -> None:
        self.q.remove("recent/folders")

    def layout(self) -> str:
        return str(self.q.value("view/layout", "1x1"))

    def set_layout(self, name: str) -> None:
        self.q.setValue("view/layout", name)

    def cine_fps(self) -> int:
        try:
            return int(str(self.q.value("cine/fps", 10)))
        except (TypeError, ValueError):
            return 10

    def set_cine_fps(self, fps: int) -> None:
        self.q.setValue("cine/fps", int(fps))

    def smooth(self) -> bool:
        """Bilinear smoothing of magnified images (default on, as in OHIF/Weasis)."""
        value = self.q.value("view/smooth", True)
        return value if isinstance(value, bool) else str(value).lower() not in ("false", "0", "no")

    def set_smooth(self, on: bool) -> None:
        self.q.setValue("view/smooth", bool(on))
