"""The load plan of a stack: which slices, in which order, on which grid, in which value type.

Pure: made from header facts only (:class:`Layout` of the first file, one :class:`PlannedSlice` per slice,
read by :mod:`viewer.io.stack_headers`), with no file access and no pixel data, so it is tested on
hand-made slices. :class:`~viewer.io.pixel_reader.PixelReader` executes a :class:`VolumePlan`.

What the plan decides:

- which slices are usable: a position that is not finite or lies beyond 1 km counts as absent, a slice
  whose rescale is not finite is left out, frames of another orientation are left out (each warned);
- the 4D split (slices sharing a position, ordered by temporal position / echo / acquisition:
  :func:`viewer.io.volumes.group_volumes`), the sort along the slice normal, the affine
  (:func:`viewer.io.geometry.stack_geometry`) and the display order (lowest InstanceNumber first where
  it runs with position: :func:`viewer.io.geometry.display_reversed`), with the affine exact for it;
- the volume's value type: int16 while every slice's rescaled values fit, else float32; uint8 colour.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.io.errors import LoadError
from viewer.io.geometry import display_reversed, planar_affine, slice_normal, stack_geometry
from viewer.io.limits import plausible_position, plausible_rescale
from viewer.io.pixels import ModalityLUT, rescale_fits_int16, stored_range

#: Transfer syntaxes whose pixels are stored natively (the rest are decoded by a codec).
NATIVE_LE = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})
OTHER_NATIVE = frozenset({"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"})  # big endian, deflate


@dataclass
class Layout:
    """The image layout every slice of the stack shares, from the first file."""

    rows: int
    cols: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    transfer_syntax: str
    orientation: list[float] | None
    pixel_spacing: list[float] | None
    spacing_source: str
    explicit: bool = True
    warnings: list[str] = field(default_factory=list)

    @property
    def compressed(self) -> bool:
        return self.transfer_syntax not in NATIVE_LE | OTHER_NATIVE


@dataclass
class PlannedSlice:
    """One slice: a file, or one frame / mosaic tile of a file, with what its header says."""

    path: str
    frame: int | None = None           # frame index of a multi-frame file, or tile index of a mosaic
    position: np.ndarray | None = None
    slope: float = 1.0
    intercept: float = 0.0
    sop_uid: str = ""
    instance: int = 0
    fast: bool = False                  # native 16-bit pixels readable straight from the file
    lut: ModalityLUT | None = None      # the Modality LUT Sequence's table, checked, when present
    offset: int = -1                    # PixelData value offset from the header record (-1: unknown)
    stamp: tuple[int, int] | None = None  # (size, mtime_ns) the header record was made from
    # Orders the slices that share a position into volumes (viewer.io.volumes): temporal position,
    # echo number, acquisition number.
    vkey: tuple[float, ...] = ()
    # The frame's own ImageOrientationPatient when the functional groups give one (None: the layout's).
    orientation: tuple[float, ...] | None = None
    # The VOI window text (center, width, explanation) of the slice's header record when it has one;
    # None: only the file's data set can say (the loader then parses it when it needs the window).
    voi: tuple[str, str, str] | None = None

    @property
    def name(self) -> str:
        base = os.path.basename(self.path)
        return base if self.frame is None else f"{base}#{self.frame + 1}"


@dataclass(frozen=True)
class VolumePlan:
    """What to read for one volume: its slices in display order and the array they go into."""

    slices: list[PlannedSlice]
    affine: np.ndarray
    layout: Layout
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    #: Every slice's rescaled range fits int16 (no per-slice check needed while reading).
    all_fit: bool
    #: The files hold one frame each (a frame index then means a mosaic tile).
    single_frame_files: bool
    mosaic: Any = None  # viewer.io.mosaic.MosaicInfo of a Siemens/UIH mosaic, else None

    @property
    def first_index(self) -> int:
        """The slice read first (the middle one in display order): what a viewer shows at once."""
        return len(self.slices) // 2


@dataclass
class SeriesPlan:
    """Every volume of a stack (one for a 3D stack), each in display order with its exact affine."""

    layout: Layout
    volumes: list[list[PlannedSlice]]
    affines: list[np.ndarray]
    warnings: list[str]
    float_data: bool = False           # FloatPixelData / DoubleFloatPixelData
    single_frame_files: bool = True
    mosaic: Any = None

    def volume(self, index: int) -> VolumePlan:
        """The plan of volume ``index`` (0-based), its value type decided."""
        if not 0 <= index < len(self.volumes):
            raise LoadError(f"volume {index} out of range: the series has {len(self.volumes)} volume(s)")
        slices = self.volumes[index]
        shape, dtype, all_fit = value_type(self.layout, slices, self.float_data)
        return VolumePlan(slices, self.affines[index], self.layout, shape, dtype, all_fit,
                          self.single_frame_files, self.mosaic)


def make_plan(layout: Layout, slices: list[PlannedSlice], *, single_step: float | None = None,
              float_data: bool = False, single_frame_files: bool = True, mosaic: Any = None) -> SeriesPlan:
    """The plan of a stack from its slices' header facts.

    ``single_step``: SpacingBetweenSlices (or SliceThickness) for a one-slice stack's third axis.
    Raises :class:`LoadError` when no slice has usable rescale values.
    """
    warnings: list[str] = []
    slices = _sane(slices, warnings)
    if layout.orientation:
        # Frames of another orientation (multi-frame files of one series joined into one stack, or a
        # survey's three planes in one file) cannot share this stack's grid.
        ref = np.asarray(layout.orientation)
        other = [it for it in slices if it.orientation is not None
                 and float(np.max(np.abs(np.asarray(it.orientation) - ref))) > 1e-4]
        if other:
            names = sorted({os.path.basename(it.path) for it in other})
            warnings.append(f"{len(other)} frame(s) have another orientation than the first and are left "
                            f"out: {', '.join(names[:5])}")
            gone = {id(it) for it in other}
            slices = [it for it in slices if id(it) not in gone]
    positioned = [it for it in slices if it.position is not None]
    volumes: list[list[PlannedSlice]] = []
    affines: list[np.ndarray] = []
    if layout.orientation and positioned:
        if len(positioned) < len(slices):
            left = [it.name for it in slices if it.position is None]
            warnings.append(f"{len(left)} slice(s) without ImagePositionPatient left out: "
                            f"{', '.join(left[:5])}")
        from viewer.io.volumes import group_volumes

        normal = slice_normal(layout.orientation)
        groups, warning = group_volumes(positioned, lambda it: float(it.position @ normal),
                                        lambda it: (it.vkey, it.instance, it.path, it.frame or 0))
        if warning:
            warnings.append(warning)
        reverse: bool | None = None
        for group in groups:
            geo = stack_geometry(np.array([it.position for it in group], dtype=np.float64), layout.orientation,
                                 layout.pixel_spacing or [1, 1], names=[it.name for it in group],
                                 single_slice_step=single_step)
            ordered = [group[i] for i in geo.order]
            affine = geo.affine
            if reverse is None:
                # One display order for every volume, decided on the first (see display_reversed).
                reverse = display_reversed([float(it.position @ normal) for it in ordered],
                                           [it.instance for it in ordered], normal)
                warnings += geo.warnings
            if reverse and len(ordered) > 1:
                ordered.reverse()
                affine = _reversed_affine(affine, ordered)
            volumes.append(ordered)
            affines.append(affine)
    else:
        # Radiographs, secondary captures: no 3D position. Keep file order (frames in order).
        if len(slices) > 1:
            warnings.append("no ImagePositionPatient/ImageOrientationPatient: slices kept in file "
                            "and frame order, slice step 1 mm")
        volumes = [slices]
        affines = [planar_affine(layout.pixel_spacing, layout.orientation,
                                 slices[0].position if slices and slices[0].position is not None else None)]
    return SeriesPlan(layout, volumes, affines, warnings, float_data, single_frame_files, mosaic)


def _sane(slices: list[PlannedSlice], warnings: list[str]) -> list[PlannedSlice]:
    """Slices whose numbers can make a finite volume: a position that is not finite or lies beyond
    1 km becomes "no position" (warned); a slice whose RescaleSlope/Intercept is not finite is left
    out (warned); when none is left, the stack is refused."""
    odd = [it for it in slices if it.position is not None and not plausible_position(it.position)]
    for it in odd:
        it.position = None
    if odd:
        warnings.append(f"{len(odd)} slice(s) with an ImagePositionPatient that is not finite or "
                        f"absurdly far ({', '.join(it.name for it in odd[:5])}): treated as absent")
    kept = [it for it in slices if plausible_rescale(it.slope, it.intercept)]
    if not kept:
        raise LoadError(f"{slices[0].name if slices else 'the stack'}: RescaleSlope/RescaleIntercept "
                        "are not finite numbers of a sane size (|v| <= 1e10); values cannot be computed")
    if len(kept) < len(slices):
        left = [it.name for it in slices if it not in kept]
        warnings.append(f"{len(left)} slice(s) with a RescaleSlope/Intercept that is not a finite "
                        f"number of a sane size left out: {', '.join(left[:5])}")
    return kept


def _reversed_affine(affine: np.ndarray, ordered: Sequence[PlannedSlice]) -> np.ndarray:
    """``affine`` of slices shown last-to-first: origin at the (new) first slice's own position, the
    slice column from the first to the last position (exact, not a flipped mean)."""
    out = affine.copy()
    first, last = ordered[0].position, ordered[-1].position
    assert first is not None and last is not None
    out[:3, 3] = first
    out[:3, 2] = (last - first) / (len(ordered) - 1)
    return out


def value_type(layout: Layout, slices: Sequence[PlannedSlice],
               float_data: bool) -> tuple[tuple[int, ...], np.dtype[Any], bool]:
    """(shape, dtype, all_fit) of a volume of ``slices``: uint8 (z, y, x, 3) for colour; float32 for
    float pixel data, a Modality LUT or a non-integer rescale; else int16, with ``all_fit`` True when
    every stored value of every slice rescales into int16 (otherwise each slice is checked as read)."""
    n = len(slices)
    if layout.samples == 3 or layout.photometric == "PALETTE COLOR":
        return (n, layout.rows, layout.cols, 3), np.dtype(np.uint8), False
    shape = (n, layout.rows, layout.cols)
    if layout.bits_allocated == 1:
        return shape, np.dtype(np.int16), False
    if float_data or any(it.lut is not None for it in slices):
        return shape, np.dtype(np.float32), False
    if layout.bits_allocated > 16:
        return shape, np.dtype(np.int16), False  # 32-bit integers: int16 while every slice fits (checked)
    lo, hi = stored_range(layout.bits_stored, layout.signed)
    pairs = {(it.slope, it.intercept) for it in slices}  # usually one
    integer = all(float(a).is_integer() and float(b).is_integer() for a, b in pairs)
    # int16 is kept as long as every slice fits; a slice that does not turns the volume float32.
    all_fit = integer and all(rescale_fits_int16(a, b, lo, hi) for a, b in pairs)
    return shape, np.dtype(np.int16 if integer else np.float32), all_fit
