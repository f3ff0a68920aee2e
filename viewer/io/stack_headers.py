"""The header pass of a load: the first file parsed by pydicom, one :class:`~viewer.io.plan.PlannedSlice`
per slice of every file.

The first file gives the stack's :class:`~viewer.io.plan.Layout` (size, bits, transfer syntax,
orientation, pixel spacing), its windows and patient/study text: pydicom parses it in full. Every other
file of a single-frame series comes from its :class:`~viewer.core.records.HeaderRecord`: the scanner's
(``Stack.records``, trusted while the file's size and mtime are unchanged) or, without one, a fresh
:func:`~viewer.io.headers.read_header`, the project's one byte-level header reader, which also gives the
PixelData offset. Multi-frame files, mosaics, files with a Modality LUT and anything a record cannot
describe are parsed by pydicom, the authority on odd and broken files.

No pixel data is read here; :mod:`viewer.io.plan` turns the slices into a plan.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.core.jobs import CancelCheck, Progress
from viewer.core.records import HeaderRecord
from viewer.core.series_info import Window, windows_from
from viewer.io.errors import LoadCancelled, LoadError
from viewer.io.headers import read_header
from viewer.io.limits import checked_orientation, decoded_size_problem, plausible_spacing
from viewer.io.pixels import ModalityLUT
from viewer.io.plan import NATIVE_LE, OTHER_NATIVE, Layout, PlannedSlice
from viewer.io.rawread import read_header_dataset


def number(v: Any, default: float) -> float:
    """``v`` (a DS/IS value, text or number) as a float; ``default`` when absent or not a number."""
    try:
        return float(v) if v not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _floats(v: Any) -> list[float] | None:
    if v is None or v == "":
        return None
    try:
        return [float(x) for x in (v if isinstance(v, (list, tuple)) or hasattr(v, "__iter__")
                                   and not isinstance(v, str) else [v])]
    except (TypeError, ValueError):
        return None


def _vkey(temporal: Any, echo: Any, acquisition: Any) -> tuple[float, ...]:
    return (number(temporal, 0.0), number(echo, 0.0), number(acquisition, 0.0))


def _record_vkey(rec: HeaderRecord) -> tuple[float, ...]:
    # EchoNumbers may hold several values (joined with a backslash in the record): the first counts, as
    # when the key is read from a pydicom data set.
    return _vkey(rec.temporal_position, rec.echo_number.split("\\")[0], rec.acquisition_number)


def _item_from_record(rec: HeaderRecord, path: str, lay: Layout, nbytes: int | None) -> PlannedSlice | None:
    """An item from the scanner's :class:`~viewer.core.records.HeaderRecord`, or None when the record
    cannot be trusted for this stack: the file changed since (size or mtime_ns), or the record's image
    layout differs from the first file's (then the file is read the ordinary way)."""
    if (rec.status, rec.frames, rec.rows, rec.columns, rec.transfer_syntax, rec.samples_per_pixel or 1,
            rec.bits_allocated, rec.bits_stored or rec.bits_allocated, rec.pixel_representation == 1) != (
            "image", 1, lay.rows, lay.cols, lay.transfer_syntax, lay.samples, lay.bits_allocated,
            lay.bits_stored, lay.signed):
        return None
    try:
        st = os.stat(path)
        pos = [float(v) for v in rec.position.split("\\")]
        slope = float(rec.rescale_slope) if rec.rescale_slope else 1.0
        intercept = float(rec.rescale_intercept) if rec.rescale_intercept else 0.0
        instance = int(number(rec.instance_number, 0))
    except (OSError, ValueError):
        return None
    if len(pos) != 3 or st.st_size != rec.size or st.st_mtime_ns != rec.mtime_ns:
        return None
    item = PlannedSlice(path, None, np.array(pos), slope, intercept, rec.sop_uid, instance)
    item.stamp = (rec.size, rec.mtime_ns)
    item.vkey = _record_vkey(rec)
    if rec.window_center:
        item.voi = (rec.window_center, rec.window_width, rec.window_explanation)
    if nbytes is not None and rec.pixel_offset > 0 and rec.pixel_length == nbytes:
        item.fast, item.offset = True, rec.pixel_offset
    return item


def _record_slice(rec: HeaderRecord | None, path: str, lay: Layout, nbytes: int | None) -> PlannedSlice | None:
    """The slice of a single-frame file from the scanner's record while that is still valid, else from
    a fresh :func:`~viewer.io.headers.read_header` of the file; None when the file does not fit the
    stack's layout that way (the caller then asks pydicom)."""
    item = _item_from_record(rec, path, lay, nbytes) if rec is not None else None
    if item is None:
        item = _item_from_record(read_header(path), path, lay, nbytes)
    return item


def _item_from_dataset(ds: Any, path: str) -> PlannedSlice:
    item = PlannedSlice(path)
    item.position = (np.array(_floats(ds.get("ImagePositionPatient")))
                     if _floats(ds.get("ImagePositionPatient")) and len(ds.ImagePositionPatient) == 3
                     else None)
    item.slope = number(ds.get("RescaleSlope"), 1.0)
    item.intercept = number(ds.get("RescaleIntercept"), 0.0)
    item.sop_uid = str(ds.get("SOPInstanceUID", "") or "")
    item.instance = int(number(ds.get("InstanceNumber"), 0))
    echo = _floats(ds.get("EchoNumbers"))
    item.vkey = _vkey(ds.get("TemporalPositionIdentifier"), echo[0] if echo else None, ds.get("AcquisitionNumber"))
    seq = ds.get("ModalityLUTSequence")
    if seq:
        try:
            item.lut = ModalityLUT.from_item(seq[0], int(ds.get("PixelRepresentation", 0) or 0) == 1)
        except (ValueError, TypeError) as exc:
            raise LoadError(f"{path}: {exc}") from exc
    return item


def voi_windows(ds: Any, frame: int | None) -> tuple[Window, ...]:
    """The VOI windows of one file, or of frame ``frame`` of a multi-frame file (FrameVOILUTSequence)."""
    centers, widths = _floats(ds.get("WindowCenter")), _floats(ds.get("WindowWidth"))
    explain = ds.get("WindowCenterWidthExplanation")
    if not centers:
        voi = frame_group(ds, frame or 0, "FrameVOILUTSequence")
        if voi is not None:
            centers, widths = _floats(voi.get("WindowCenter")), _floats(voi.get("WindowWidth"))
            explain = voi.get("WindowCenterWidthExplanation")
    names = [] if not explain else [str(explain)] if isinstance(explain, str) else [str(x) for x in explain]
    return windows_from(centers, widths, names)


def record_windows(voi: tuple[str, str, str]) -> tuple[Window, ...]:
    """The VOI windows of a header record's window text (:attr:`~viewer.io.plan.PlannedSlice.voi`), as
    :func:`voi_windows` reads them from the file's data set."""
    center, width, explain = voi
    return windows_from(_text_floats(center), _text_floats(width), explain.split("\\") if explain else [])


def _text_floats(text: str) -> list[float] | None:
    try:
        return [float(v) for v in text.split("\\")] if text else None
    except ValueError:
        return None


def frame_group(ds: Any, k: int, name: str) -> Any:
    """The functional-group item ``name`` for frame k: per-frame first, then shared (PS3.3 C.7.6.16)."""
    for seq_name, idx in (("PerFrameFunctionalGroupsSequence", k), ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(seq_name)
        if seq and len(seq) > idx:
            inner = seq[idx].get(name)
            if inner:
                return inner[0]
    return None


def _layout_from(ds: Any, path: str) -> Layout:
    for kw in ("Rows", "Columns"):
        if not ds.get(kw):
            raise LoadError(f"{path}: {kw} is missing or zero")
    ts = str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    lay = Layout(rows=int(ds.Rows), cols=int(ds.Columns), samples=int(ds.get("SamplesPerPixel", 1) or 1),
                  bits_allocated=int(ds.get("BitsAllocated", 16) or 16),
                  bits_stored=int(ds.get("BitsStored", 0) or ds.get("BitsAllocated", 16) or 16),
                  signed=int(ds.get("PixelRepresentation", 0) or 0) == 1,
                  photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip(),
                  transfer_syntax=ts, orientation=None, pixel_spacing=None, spacing_source="",
                  explicit=ts != "1.2.840.10008.1.2")
    iop = _floats(ds.get("ImageOrientationPatient"))
    measures = frame_group(ds, 0, "PixelMeasuresSequence")
    orient_group = frame_group(ds, 0, "PlaneOrientationSequence")
    if iop is None and orient_group is not None:
        iop = _floats(orient_group.get("ImageOrientationPatient"))
    lay.orientation, why = checked_orientation(iop)
    if why:
        lay.warnings.append(why)
    def usable(v: Any) -> list[float] | None:
        # Zero or negative spacing (written by some CR/DX exporters) would make the affine singular.
        vals = _floats(v)
        return vals if vals and len(vals) == 2 and plausible_spacing(vals) else None

    spacing = usable(ds.get("PixelSpacing"))
    if spacing:
        lay.pixel_spacing, lay.spacing_source = spacing, "PixelSpacing"
    elif measures is not None and usable(measures.get("PixelSpacing")):
        lay.pixel_spacing, lay.spacing_source = usable(measures.get("PixelSpacing")), "PixelMeasuresSequence"
    elif usable(ds.get("ImagerPixelSpacing")):
        lay.pixel_spacing, lay.spacing_source = usable(ds.get("ImagerPixelSpacing")), "ImagerPixelSpacing"
        lay.warnings.append("no PixelSpacing: using ImagerPixelSpacing (at the detector, not at the "
                            "patient; distances may be magnified)")
    else:
        lay.pixel_spacing, lay.spacing_source = [1.0, 1.0], "default"
        lay.warnings.append("no pixel spacing in the file: assuming 1 mm; distances are not real")
    return lay


def _mosaic_key(ds: Any) -> tuple[Any, ...]:
    """What makes two mosaic files tile alike: the same stored size, position and orientation (the time
    points of one acquisition); their tiles then lie at the same places."""
    return (ds.get("Rows"), ds.get("Columns"), str(ds.get("ImagePositionPatient")),
            str(ds.get("ImageOrientationPatient")), str(ds.get("Manufacturer")))


def _expand(ds: Any, path: str, lay: Layout,
            mosaics: dict[tuple[Any, ...], np.ndarray | None] | None = None) -> list[PlannedSlice]:
    """Slices held by one file: itself, its frames (enhanced multi-frame) or its mosaic tiles.

    ``mosaics`` remembers the tile positions (None: not a mosaic) of files already expanded, by
    :func:`_mosaic_key`, so that the CSA header of every time point is not parsed again (~15 ms each).
    """
    from viewer.io.mosaic import is_mosaic, mosaic_info, tile_positions

    frames = int(number(ds.get("NumberOfFrames"), 1))
    # Before one item per declared frame is made: 2^31-1 frames would loop for hours.
    problem = decoded_size_problem(lay.rows, lay.cols, frames, lay.samples, lay.bits_allocated)
    if problem is not None:
        raise LoadError(f"{path}: {problem}")
    base = _item_from_dataset(ds, path)
    if frames <= 1:
        positions: np.ndarray | None = None
        if lay.orientation and is_mosaic(ds):
            key = _mosaic_key(ds) if ds.get((0x0065, 0x1050)) is None else None  # UIH: positions per file
            if mosaics is not None and key is not None and key in mosaics:
                positions = mosaics[key]
            else:
                info = mosaic_info(ds)
                positions = tile_positions(ds, info) if info is not None else None
                if mosaics is not None and key is not None:
                    mosaics[key] = positions
        if positions is None:
            if base.position is None:
                # A one-frame enhanced object: its position is in the functional groups (PS3.3 C.7.6.16).
                _frame_fields(ds, 0, base)
            return [base]
        items = []
        for t, p in enumerate(positions):
            it = PlannedSlice(path, t, p, base.slope, base.intercept, base.sop_uid, base.instance, lut=base.lut)
            it.vkey = base.vkey
            items.append(it)
        return items
    items = []
    for k in range(frames):
        it = PlannedSlice(path, k, None, base.slope, base.intercept, base.sop_uid, base.instance, lut=base.lut)
        it.vkey = base.vkey
        _frame_fields(ds, k, it)
        items.append(it)
    if all(it.position is None for it in items) and frames > 1:
        # Classic multi-frame (NM, US cine, XA): frames stacked along the normal with SpacingBetweenSlices.
        step = number(ds.get("SpacingBetweenSlices"), 0.0) or number(ds.get("SliceThickness"), 0.0)
        if base.position is not None and lay.orientation and step:
            from viewer.io.geometry import slice_normal

            n = slice_normal(lay.orientation)
            for k, it in enumerate(items):
                it.position = base.position + k * step * n
    return items


def _frame_fields(ds: Any, k: int, it: PlannedSlice) -> None:
    """Position, rescale and volume key of frame k from the functional groups, where present."""
    pos = frame_group(ds, k, "PlanePositionSequence")
    if pos is not None and _floats(pos.get("ImagePositionPatient")):
        it.position = np.array(_floats(pos.get("ImagePositionPatient")))
    # Enhanced objects carry rescale per frame (PS3.3 C.7.6.16.2.9); classic MF has it at top level.
    trans = frame_group(ds, k, "PixelValueTransformationSequence")
    if trans is not None:
        it.slope = number(trans.get("RescaleSlope"), it.slope)
        it.intercept = number(trans.get("RescaleIntercept"), it.intercept)
    orient = frame_group(ds, k, "PlaneOrientationSequence")
    iop = _floats(orient.get("ImageOrientationPatient")) if orient is not None else None
    if iop and len(iop) == 6:
        it.orientation = tuple(iop)
    content = frame_group(ds, k, "FrameContentSequence")
    if content is not None and content.get("TemporalPositionIndex") not in (None, ""):
        it.vkey = (number(content.get("TemporalPositionIndex"), 0.0),) + it.vkey[1:]


def _mosaic_items_from_record(rec: HeaderRecord | None, path: str, first: Any,
                              tiles0: list[PlannedSlice]) -> list[PlannedSlice] | None:
    """The tiles of a further time point of a mosaic series from the scanner's record, without parsing
    the file: same stored size, transfer syntax, orientation and position as the first mosaic (so its
    tiles lie where the first one's do), and the file unchanged since the scan. None otherwise."""
    if rec is None or rec.status != "image" or rec.frames != 1 or "MOSAIC" not in rec.image_type.upper():
        return None
    try:
        same = ((rec.rows, rec.columns) == (int(first.Rows), int(first.Columns))
                and rec.transfer_syntax == str(first.file_meta.get("TransferSyntaxUID", ""))
                and np.allclose(rec.floats("position") or (), [float(v) for v in first.ImagePositionPatient], atol=1e-4)
                and np.allclose(rec.floats("orientation") or (), [float(v) for v in first.ImageOrientationPatient],
                                atol=1e-6))
        st = os.stat(path)
        slope = float(rec.rescale_slope) if rec.rescale_slope else 1.0
        intercept = float(rec.rescale_intercept) if rec.rescale_intercept else 0.0
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    if not same or (st.st_size, st.st_mtime_ns) != (rec.size, rec.mtime_ns) or tiles0[0].lut is not None:
        return None
    vkey = _record_vkey(rec)
    out = []
    for t in tiles0:
        it = PlannedSlice(path, t.frame, t.position, slope, intercept, rec.sop_uid, int(number(rec.instance_number, 0)))
        it.vkey = vkey
        out.append(it)
    return out


def _mosaic_free(ds: Any) -> bool:
    return "MOSAIC" not in [str(v).upper() for v in (ds.get("ImageType") or [])]


@dataclass
class StackHeaders:
    """What the header pass read: the first file's data set and layout, every slice's facts."""

    first: Any                  # pydicom Dataset of the first file, without pixels
    first_path: str
    layout: Layout
    mosaic: Any                 # viewer.io.mosaic.MosaicInfo when the files are mosaics, else None
    slices: list[PlannedSlice] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def single_frame_files(self) -> bool:
        return int(number(self.first.get("NumberOfFrames"), 1)) <= 1

    @property
    def float_data(self) -> bool:
        return "FloatPixelData" in self.first or "DoubleFloatPixelData" in self.first

    @property
    def single_step(self) -> float | None:
        """The slice step a one-slice stack's third axis gets (SpacingBetweenSlices, else SliceThickness)."""
        ds = self.first
        return number(ds.get("SpacingBetweenSlices"), 0.0) or number(ds.get("SliceThickness"), 0.0) or None


def read_first(path: str) -> StackHeaders:
    """The first file of a stack, parsed by pydicom: its layout, mosaic information and warnings."""
    from viewer.io.mosaic import mosaic_info, unsplit_reason

    ds = read_header_dataset(path)
    lay = _layout_from(ds, path)
    mosaic = mosaic_info(ds) if lay.orientation else None
    if mosaic is not None:
        lay.rows, lay.cols = mosaic.rows, mosaic.cols
    out = StackHeaders(ds, path, lay, mosaic)
    unsplit = unsplit_reason(ds) if mosaic is None else None
    if unsplit is not None:
        out.warnings.append(unsplit)
    out.warnings += lay.warnings
    return out


def read_slices(head: StackHeaders, files: Sequence[str], records: Mapping[str, HeaderRecord], *,
                progress: Progress | None = None, cancel: CancelCheck | None = None) -> None:
    """Fill ``head.slices`` with the slices of ``files`` (``files[0]`` is ``head.first_path``).

    ``records``: the scanner's records by path (see the module text). A file whose stored size differs
    from the first file's is left out with a warning. ``progress(done, total)`` counts files;
    ``cancel()`` returning True raises :class:`~viewer.io.errors.LoadCancelled`.
    """
    first, lay = head.first, head.layout
    file_size = (int(first.Rows), int(first.Columns))  # of the stored image (a mosaic's tiles are smaller)
    # Records for single-frame series whose data set is little endian (native or encapsulated);
    # pixels read at the recorded offset only for native 16-bit grey.
    encapsulated = lay.transfer_syntax not in NATIVE_LE | OTHER_NATIVE
    by_record = (head.single_frame_files and "ModalityLUTSequence" not in first and _mosaic_free(first)
                 and "ImagePositionPatient" in first and lay.orientation is not None
                 and (lay.transfer_syntax in NATIVE_LE or encapsulated))
    fast = by_record and lay.transfer_syntax in NATIVE_LE and lay.bits_allocated == 16 and lay.samples == 1
    nbytes = lay.rows * lay.cols * 2 if fast else None
    mosaics: dict[tuple[Any, ...], np.ndarray | None] = {}
    tiles0: list[PlannedSlice] | None = None
    items = head.slices
    total = len(files)
    for n, path in enumerate(files):
        if cancel is not None and cancel():
            raise LoadCancelled("loading cancelled while reading headers")
        if n == 0:
            its = _expand(first, path, lay, mosaics)
            if by_record:
                # The record must say what pydicom says of the first file, else no record is used.
                check = _record_slice(records.get(path), path, lay, nbytes)
                pos0 = its[0].position
                by_record = (check is not None and check.position is not None and pos0 is not None
                             and bool(np.allclose(check.position, pos0))
                             and (check.slope, check.intercept, check.sop_uid) ==
                             (its[0].slope, its[0].intercept, its[0].sop_uid))
                if by_record and check is not None and check.fast:
                    its[0].fast, its[0].offset, its[0].stamp = True, check.offset, check.stamp
            items += its
            tiles0 = its if head.mosaic is not None else None
        else:
            it = _record_slice(records.get(path), path, lay, nbytes) if by_record else None
            tiles = (_mosaic_items_from_record(records.get(path), path, first, tiles0)
                     if tiles0 is not None else None)
            if it is not None:
                items.append(it)
            elif tiles is not None:
                items += tiles
            else:
                ds = read_header_dataset(path)
                if (int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)) != file_size:
                    head.warnings.append(f"{os.path.basename(path)}: size {ds.get('Rows')}x"
                                         f"{ds.get('Columns')} differs from {file_size[0]}x{file_size[1]}; "
                                         "file left out")
                    continue
                items += _expand(ds, path, lay, mosaics)
        if progress is not None:
            progress(n + 1, total)
