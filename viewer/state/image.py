"""What every view of one series shares: the volume, its window, invert, crosshair and measurements."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from viewer.core.presets import window_presets
from viewer.core.reslice import repair_affine
from viewer.core.volume import Volume
from viewer.core.windowing import default_window
from viewer.state.measurements import Measurement, compute
from viewer.state.observable import Observable


def _meta(volume: Volume, *keys: str) -> Any:
    """The first of ``keys`` present (and not empty) in the volume's metadata, else None."""
    for key in keys:
        value = volume.metadata.get(key)
        if value not in (None, "", [], ()):
            return value
    return None


def file_window(volume: Volume) -> tuple[float, float] | None:
    """The (center, width) stored in the file (VOI LUT Window Center/Width, first pair), if any.

    Accepts ``metadata["window"]`` as (center, width) or a list of such pairs, or separate
    ``window_center``/``window_width`` values (numbers or lists, DICOM allows several).
    """
    win = _meta(volume, "window", "windows")
    if win is not None:
        first = win[0] if isinstance(win[0], (list, tuple)) else win
        try:
            c, w = float(first[0]), float(first[1])
        except (TypeError, ValueError, IndexError):
            return None
        return (c, w) if w > 0 else None
    c = _meta(volume, "window_center", "WindowCenter")
    w = _meta(volume, "window_width", "WindowWidth")
    if c is None or w is None:
        return None
    c = c[0] if isinstance(c, (list, tuple)) else c
    w = w[0] if isinstance(w, (list, tuple)) else w
    try:
        cf, wf = float(c), float(w)
    except (TypeError, ValueError):
        return None
    return (cf, wf) if wf > 0 else None


def is_monochrome1(volume: Volume) -> bool:
    """True when the photometric interpretation says low values are white (MONOCHROME1)."""
    pi = _meta(volume, "photometric_interpretation", "photometric", "PhotometricInterpretation")
    return str(pi or "").upper().strip() == "MONOCHROME1"


# Modalities whose images carry no Image Orientation (Patient) in practice: ultrasound, photographs,
# secondary captures. The loader then assumes axial axes, so letters would be invented.
_NO_ORIENTATION_MODALITIES = frozenset({"US", "XC", "SC", "OT", "ES", "GM", "SM", "DOC", "IVUS"})


def orientation_known(volume: Volume) -> bool:
    """Whether the affine's directions come from the file (so orientation letters mean something).

    ``metadata["orientation_known"]`` (bool) decides when the loader sets it; otherwise modalities
    that normally lack Image Orientation (Patient) (US, XC, SC, ...) count as unknown.
    """
    flag = volume.metadata.get("orientation_known", volume.metadata.get("has_orientation"))
    if isinstance(flag, bool):
        return flag
    return volume.modality.upper() not in _NO_ORIENTATION_MODALITIES


def opening_window(volume: Volume) -> tuple[float, float]:
    """The window a series opens with: the file's, else the modality default (viewer.core.windowing)."""
    win = file_window(volume)
    if win is not None:
        return win
    if volume.is_color:
        return 127.5, 256.0
    return default_window(volume.array, volume.modality)


class ImageState(Observable):
    """Shared by every view of one volume (the three MPR planes share one).

    Change notifications: "volume", "window", "invert", "crosshair", "measurements".

    Attributes
    ----------
    volume
        The Volume shown, or None.
    center, width
        The display window in modality units (HU for CT).
    invert
        Draw inverted; starts True for MONOCHROME1.
    crosshair
        The linked MPR point in LPS mm, or None.
    measurements
        Measurements drawn on any view of this volume, in drawing order.
    """

    def __init__(self, volume: Volume | None = None) -> None:
        super().__init__()
        self.volume: Volume | None = None
        self.center = 40.0
        self.width = 400.0
        self.invert = False
        self.crosshair: np.ndarray | None = None
        self.measurements: list[Measurement] = []
        if volume is not None:
            self.set_volume(volume)

    def set_volume(self, volume: Volume | None) -> None:
        """Show ``volume`` with its opening window, MONOCHROME1 inverted, crosshair at its centre.

        A volume whose affine is unusable (zero pixel spacing, no orientation) is shown through a
        repaired copy (``viewer.core.reslice.repair_affine``) whose ``warnings`` say so.
        """
        if volume is not None:
            fixed, warning = repair_affine(volume.affine)
            if warning is not None:
                volume = dataclasses.replace(volume, affine=fixed, warnings=[*volume.warnings, warning])
        with self.batch():
            self.volume = volume
            self.measurements = []
            if volume is not None:
                self.center, self.width = opening_window(volume)
                self.invert = is_monochrome1(volume)
                z, y, x = volume.shape
                self.crosshair = volume.voxel_to_patient(np.array([(x - 1) / 2, (y - 1) / 2, (z - 1) / 2]))
            else:
                self.crosshair = None
            self.notify("volume", "window", "invert", "crosshair", "measurements")

    def swap_volume(self, volume: Volume) -> None:
        """Show another volume of the same 4D series in place: window, invert, crosshair, measurements
        and (in the views) slice, zoom and pan stay as the reader set them; only the pixels change."""
        if self.volume is None:
            self.set_volume(volume)
            return
        fixed, warning = repair_affine(volume.affine)
        if warning is not None:
            volume = dataclasses.replace(volume, affine=fixed, warnings=[*volume.warnings, warning])
        self.volume = volume
        self.notify("pixels")

    # -- window -------------------------------------------------------------------------------------
    def set_window(self, center: float, width: float) -> None:
        """Set the window (modality units); width is kept >= 1 (DICOM linear function)."""
        center, width = float(center), max(1.0, float(width))
        if (center, width) != (self.center, self.width):
            self.center, self.width = center, width
            self.notify("window")

    def apply_preset(self, number: int) -> bool:
        """Key ``number``: 0 = the file's window (or the opening default), 1..9 = modality presets.

        Returns False when the modality has no preset with that number (nothing changes).
        """
        if self.volume is None:
            return False
        if number == 0:
            self.set_window(*opening_window(self.volume))
            return True
        presets = window_presets(self.volume.modality or "")
        if not 1 <= number <= len(presets):
            return False
        p = presets[number - 1]
        self.set_window(p.center, p.width)
        return True

    def set_invert(self, invert: bool) -> None:
        if bool(invert) != self.invert:
            self.invert = bool(invert)
            self.notify("invert")

    # -- crosshair ----------------------------------------------------------------------------------
    def set_crosshair(self, lps: np.ndarray) -> None:
        """Move the linked point (LPS mm), clamped into the volume's voxel box."""
        point = np.asarray(lps, dtype=np.float64)[:3]
        if self.volume is not None:
            ijk = self.volume.patient_to_voxel(point)
            z, y, x = self.volume.shape
            ijk = np.clip(ijk, 0, np.array([x - 1, y - 1, z - 1], dtype=np.float64))
            point = self.volume.voxel_to_patient(ijk)
        self.crosshair = point
        self.notify("crosshair")

    # -- measurements -------------------------------------------------------------------------------
    def add_measurement(self, m: Measurement) -> Measurement:
        """Compute and append ``m``; returns it."""
        if self.volume is not None:
            compute(m, self.volume)
        self.measurements.append(m)
        self.notify("measurements")
        return m

    def update_measurement(self, m: Measurement, points: list[tuple[float, float, float]]) -> None:
        """Move ``m``'s points (LPS mm) and recompute its value."""
        m.points = [tuple(float(v) for v in p) for p in points]  # type: ignore[misc]
        if self.volume is not None:
            compute(m, self.volume)
        self.notify("measurements")

    def remove_measurement(self, m: Measurement) -> None:
        if m in self.measurements:
            self.measurements.remove(m)
            self.notify("measurements")
