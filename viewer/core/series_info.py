"""The typed description of a loaded series: what the viewer shows or needs beyond pixels.

``io`` fills a :class:`SeriesInfo` when it loads a series (``Volume.info``); every layer above reads its
fields. It replaces the old ``Volume.metadata`` dict whose keys readers had to guess. No pydicom here:
``state``, ``ai`` and ``ui`` may import this module.

Conventions: windows are (center, width) in modality units (HU for CT), DICOM's linear VOI function;
positions are patient LPS mm; slice indices are 0-based in display order (the order of the volume's z
axis); ``SliceInfo.instance_number`` is the file's own InstanceNumber, which is what the screen shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Window:
    """A VOI window: ``center`` and ``width`` in modality units, ``explanation`` as the file names it."""

    center: float
    width: float
    explanation: str = ""

    @property
    def pair(self) -> tuple[float, float]:
        return self.center, self.width

    @property
    def usable(self) -> bool:
        """Finite, with a positive width (DICOM requires width >= 1; 0 or negative is a broken file)."""
        return math.isfinite(self.center) and math.isfinite(self.width) and self.width > 0


@dataclass(frozen=True)
class SliceInfo:
    """One slice (z index) of a volume: which file or frame it came from and where it lies.

    Attributes
    ----------
    file
        Path of the file holding the slice.
    frame
        0-based frame of a multi-frame file or tile of a mosaic; None for a single-frame file.
    sop_instance_uid
        SOPInstanceUID of the file ("" when absent).
    instance_number
        The file's InstanceNumber (None when absent): the image number the overlay shows.
    position
        ImagePositionPatient (LPS mm of the first voxel centre), or None (radiographs, secondary captures).
    rescale
        (slope, intercept) that turned stored values into modality units.
    window
        The slice's own VOI window when the loader read it (the first pair), else None.
    """

    file: str = ""
    frame: int | None = None
    sop_instance_uid: str = ""
    instance_number: int | None = None
    position: tuple[float, float, float] | None = None
    rescale: tuple[float, float] = (1.0, 0.0)
    window: Window | None = None


@dataclass(frozen=True)
class VolumeInfo:
    """One volume of a 4D series: what sets it apart from the others (None / "" when not in the files).

    Attributes
    ----------
    index
        0-based position along the fourth axis (the order volumes are shown and loaded in).
    b_value
        Diffusion b-value, s/mm^2.
    b_vector
        Diffusion gradient direction (unit vector, patient LPS as the file gives it).
    echo_time
        EchoTime, ms; ``echo_number`` EchoNumbers.
    trigger_time
        TriggerTime / NominalCardiacTriggerDelayTime, ms (cardiac phase).
    temporal_position
        TemporalPositionIdentifier / TemporalPositionIndex (1-based in the files).
    acquisition_time
        AcquisitionTime (or AcquisitionDateTime / ContentTime) text as in the file.
    acquisition_number
        AcquisitionNumber.
    image_type
        ImageType values joined by backslash (magnitude / phase / field map volumes).
    """

    index: int
    b_value: float | None = None
    b_vector: tuple[float, float, float] | None = None
    echo_time: float | None = None
    echo_number: int | None = None
    trigger_time: float | None = None
    temporal_position: int | None = None
    acquisition_time: str = ""
    acquisition_number: int | None = None
    image_type: str = ""


@dataclass(frozen=True)
class VolumeAxis:
    """The fourth dimension of a series.

    Attributes
    ----------
    kind
        What the volume index means: "time", "diffusion", "echo", "phase" (cardiac), "image type" or
        "stack" (repeated volumes with nothing in the files saying why).
    items
        One :class:`VolumeInfo` per volume, in volume order.
    index
        The volume the :class:`Volume`'s ``array`` holds.
    """

    kind: str
    items: tuple[VolumeInfo, ...]
    index: int = 0

    @property
    def count(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class SeriesInfo:
    """What a loaded series says about itself.

    Attributes
    ----------
    modality
        DICOM Modality (CT, MR, CR, ...), "" if absent.
    photometric
        PhotometricInterpretation (MONOCHROME1 is NOT inverted in the pixels; the view inverts).
    windows
        The file's VOI windows of the slice shown first (the middle one), in file order.
    varying_window
        When the slices carry different windows (MR scanners window each slice), the window spanning
        them (:func:`span_windows`): no one slice's window stands for the series then. None otherwise.
    slices
        One :class:`SliceInfo` per z index, in display order.
    study_uid, series_uid, frame_of_reference_uid, sop_class_uid
        The UIDs ("" when absent; some anonymisers empty them).
    patient_name, patient_id, study_date, study_description, series_description, body_part, view_position
        Text as in the file (dates DICOM DA, YYYYMMDD).
    series_number
        SeriesNumber, None when absent.
    slice_thickness
        SliceThickness in mm (nominal, as acquired), None when absent. The distance between slice
        centres comes from the geometry (``Volume.spacing[2]``), not from this.
    padding_value
        PixelPaddingValue in modality units, None when absent.
    pixel_spacing_source
        Which attribute gave the in-plane spacing ("PixelSpacing", "ImagerPixelSpacing", "default", ...).
    orientation_known
        False when the files carry no ImageOrientationPatient (CR/DX/US/SC): orientation letters would lie;
        None when not made by the loader.
    transfer_syntax, bits_stored
        As in the first file.
    volumes_in_stack
        How many volumes (time points, echoes) the files held at the same positions.
    volumes
        The fourth dimension of a 4D series (:class:`VolumeAxis`: meaning, per-volume fields, which
        volume this is); None for a 3D series.
    """

    modality: str = ""
    photometric: str = "MONOCHROME2"
    windows: tuple[Window, ...] = ()
    varying_window: Window | None = None
    slices: tuple[SliceInfo, ...] = ()
    study_uid: str = ""
    series_uid: str = ""
    frame_of_reference_uid: str = ""
    sop_class_uid: str = ""
    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    study_description: str = ""
    series_description: str = ""
    body_part: str = ""
    view_position: str = ""
    series_number: int | None = None
    slice_thickness: float | None = None
    padding_value: float | None = None
    pixel_spacing_source: str = ""
    orientation_known: bool | None = None
    transfer_syntax: str = ""
    bits_stored: int = 0
    volumes_in_stack: int = 1
    volumes: VolumeAxis | None = None

    # -- derived ---------------------------------------------------------------------------------
    @property
    def monochrome1(self) -> bool:
        """True when low values are drawn white (MONOCHROME1)."""
        return self.photometric.strip().upper() == "MONOCHROME1"

    @property
    def instance_uids(self) -> list[str]:
        return [s.sop_instance_uid for s in self.slices]

    @property
    def files(self) -> list[str]:
        return [s.file for s in self.slices]

    @property
    def frames(self) -> list[int | None]:
        return [s.frame for s in self.slices]

    def file_window(self) -> Window | None:
        """The file's first usable VOI window of the slice shown first, or None."""
        return next((w for w in self.windows if w.usable), None)

    @property
    def windows_vary(self) -> bool:
        return self.varying_window is not None

    def series_window(self) -> Window | None:
        """The window a series opens with from its files, or None when they carry none.

        One window shared by the slices: the file's (that of the slice shown first). Windows that vary
        per slice: the window spanning them, so never one edge slice's window (an MR whose last slice
        says W 9 / L 4 would open as a white-out).
        """
        return self.varying_window or self.file_window()

    def instance_number(self, k: int) -> int | None:
        """InstanceNumber of slice ``k`` (0-based display index), None when unknown or out of range."""
        return self.slices[k].instance_number if 0 <= k < len(self.slices) else None

    def as_metadata(self) -> dict[str, Any]:
        """The old ``Volume.metadata`` dict (deprecated: read the fields instead)."""
        first = self.file_window()
        return {
            "window_center": first.center if first else None,
            "window_width": first.width if first else None,
            "windows": [[w.center, w.width] for w in self.windows],
            "window_explanations": [w.explanation for w in self.windows if w.explanation],
            "photometric": self.photometric,
            "padding_value": self.padding_value,
            "patient_name": self.patient_name,
            "patient_id": self.patient_id,
            "study_date": self.study_date,
            "study_description": self.study_description,
            "series_description": self.series_description,
            "body_part": self.body_part,
            "view_position": self.view_position,
            "series_number": self.series_number,
            "study_uid": self.study_uid,
            "frame_of_reference_uid": self.frame_of_reference_uid,
            "instance_uids": self.instance_uids,
            "instance_numbers": [s.instance_number for s in self.slices],
            "frames": self.frames,
            "files": self.files,
            "pixel_spacing_source": self.pixel_spacing_source,
            "orientation_known": self.orientation_known,
            "transfer_syntax": self.transfer_syntax,
            "bits_stored": self.bits_stored,
            "volumes_in_stack": self.volumes_in_stack,
            "slice_thickness": self.slice_thickness,
        }


def span_windows(per_slice: Sequence[Window | None]) -> Window | None:
    """The window spanning differing per-slice windows, or None when they agree (or there are none).

    It runs from the lowest ``center - width/2`` to the highest ``center + width/2`` of the usable ones:
    every slice's own range stays visible, none is clipped to white or black.
    """
    usable = [w for w in per_slice if w is not None and w.usable]
    if len({w.pair for w in usable}) < 2:
        return None
    lo = min(w.center - w.width / 2 for w in usable)
    hi = max(w.center + w.width / 2 for w in usable)
    return Window((lo + hi) / 2, hi - lo, "spanning the per-slice windows")


def windows_from(centers: Sequence[float] | None, widths: Sequence[float] | None,
                 explanations: Sequence[str] = ()) -> tuple[Window, ...]:
    """Pair DICOM's multi-valued WindowCenter / WindowWidth (and explanations) into windows."""
    if not centers or not widths:
        return ()
    names = list(explanations) + [""] * len(centers)
    return tuple(Window(float(c), float(w), str(names[i])) for i, (c, w) in enumerate(zip(centers, widths)))
