"""What every view of one series shares: the volume, its window, invert, crosshair and measurements."""

from __future__ import annotations

import dataclasses
import numpy as np

from viewer.core.presets import window_presets
from viewer.core.reslice import repair_affine
from viewer.core.volume import Volume
from viewer.core.windowing import default_window
from viewer.state.measurements import Measurement, compute
from viewer.state.observable import Observable


def file_window(volume: Volume) -> tuple[float, float] | None:
    """The (center, width) the files give the series (``SeriesInfo.series_window``), if any: the VOI
    window of the slice shown first, or the one spanning the per-slice windows when those vary."""
    win = volume.info.series_window()
    return win.pair if win is not None else None


def is_monochrome1(volume: Volume) -> bool:
    """True when the photometric interpretation says low values are white (MONOCHROME1)."""
    return volume.info.monochrome1


# Modalities whose images carry no Image Orientation (Patient) in practice: ultrasound, photographs,
# secondary captures. The loader then assumes axial axes, so letters would be invented.
_NO_ORIENTATION_MODALITIES = frozenset({"US", "XC", "SC", "OT", "ES", "GM", "SM", "DOC", "IVUS"})


def orientation_known(volume: Volume) -> bool:
    """Whether the affine's directions come from the file (so orientation letters mean something).

    ``info.orientation_known`` decides when the loader set it; otherwise (volumes made without a loader)
    modalities that normally lack Image Orientation (Patient) (US, XC, SC, ...) count as unknown.
    """
    if volume.info.orientation_known is not None:
        return volume.info.orientation_known
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

    def set_volume(self, volume: Volume | None, *, keep_display: bool = False) -> None:
        """Show ``volume`` with its opening window, MONOCHROME1 inverted, crosshair at its centre.

        ``keep_display``: the volume refines the one shown (a whole series replacing its one-slice
        preview): the window, inversion, crosshair and measurements stay as the reader set them.

        A volume whose affine is unusable (zero pixel spacing, no orientation) is shown through a
        repaired copy (``viewer.core.reslice.repair_affine``) whose ``warnings`` say so.
        """
        if volume is not None:
            fixed, warning = repair_affine(volume.affine)
            if warning is not None:
                volume = dataclasses.replace(volume, affine=fixed, warnings=[*volume.warnings, warning])
        if keep_display and volume is not None and self.volume is not None:
            with self.batch():
                self.volume = volume
                for m in self.measurements:
                    compute(m, volume)
                self.notify("volume", "refined", "measurements")
            return
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
        with self.batch():
            self.volume = volume
            for m in self.measurements:
                compute(m, volume)  # the same places, this volume's values
            self.notify("pixels", "measurements")

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
