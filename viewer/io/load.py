"""Load a stack of DICOM files into a :class:`~viewer.core.volume.Volume` in modality units.

Pipeline: read every header (from the scanner's index records when they still match the files, else a
fast byte-level path for single-frame series (:mod:`viewer.io.rawread`), else pydicom) -> expand
multi-frame and mosaic files into slices -> sort along the slice normal and build the affine
(:mod:`viewer.io.geometry`) -> read pixels into one preallocated array, rescaling each slice in place.
Uncompressed pixels are read straight from their file offset into the volume (two threads); compressed
files are decoded by a process pool (decoders hold the GIL; :mod:`viewer.io.decode_pool`) with the
calling process stealing work, so both cores are used. On Linux the pool's workers write their slices
straight into a volume in shared memory (/dev/shm) instead of sending them back pickled.

Progressive delivery: :class:`SeriesLoader` reads headers in its constructor; ``first_index`` is the
middle slice in sorted order, which :meth:`SeriesLoader.load` decodes before any other and hands to the
``first_slice`` callback, so a viewer can draw it while the rest loads. The other slices follow from the
middle outwards; with ``on_slices`` the caller gets the volume array while it is being filled (zeros
where nothing is decoded yet) and the indices of the slices as they become ready, so a viewer can let
the user scroll through what is decoded.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.core.series_info import SeriesInfo, SliceInfo, VolumeAxis, Window, span_windows, windows_from
from viewer.core.volume import Volume
from viewer.io import decode_pool
from viewer.io.decode_pool import NeedsFloat, SharedFailed, SharedSlices, StoreSpec, store_into
# Re-exported: the app and the benchmarks start and stop the decoder pool through this module.
from viewer.io.decode_pool import shutdown_pool as shutdown_pool
from viewer.io.decode_pool import warm_pool as warm_pool
from viewer.io.errors import LoadCancelled, LoadError, reasons_not_crashes
from viewer.io.geometry import display_reversed, planar_affine, stack_geometry
from viewer.io.headers import HeaderRecord
from viewer.io.limits import (checked_orientation, decoded_size_problem, plausible_position, plausible_rescale,
                              plausible_spacing)
from viewer.io.pixels import ModalityLUT, fix_stored_bits, rescale_fits_int16, rescale_into, stored_range
from viewer.io.rawread import fast_header, fast_tags_present, read_header_dataset, read_pixels_fast

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]
FirstSlice = Callable[[int, np.ndarray], None]
#: on_slices(volume, ks): slices ks of ``volume`` (the array being filled) now hold their values.
SlicesReady = Callable[[np.ndarray, list[int]], None]

_NATIVE_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_OTHER_NATIVE = {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}  # big endian, deflate
# Below this many compressed files, the pool's start-up costs more than it saves.
POOL_MIN_FILES = 6


@dataclass
class _Item:
    """One slice: a file, or one frame / mosaic tile of a file."""

    path: str
    frame: int | None = None           # frame index of a multi-frame file, or tile index of a mosaic
    position: np.ndarray | None = None
    slope: float = 1.0
    intercept: float = 0.0
    sop_uid: str = ""
    instance: int = 0
    fast: bool = False                  # native 16-bit pixels readable straight from the file
    lut: ModalityLUT | None = None      # the Modality LUT Sequence's table, checked, when present
    offset: int = -1                    # PixelData value offset from the index (-1: last element)
    stamp: tuple[int, int] | None = None  # (size, mtime_ns) the index record was made from
    # Orders the slices that share a position into volumes (viewer.io.volumes): temporal position,
    # echo number, acquisition number.
    vkey: tuple[float, ...] = ()
    # The frame's own ImageOrientationPatient when the functional groups give one (None: the layout's).
    orientation: tuple[float, ...] | None = None

    @property
    def name(self) -> str:
        base = os.path.basename(self.path)
        return base if self.frame is None else f"{base}#{self.frame + 1}"


@dataclass
class _Layout:
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


def _f(v: Any, default: float) -> float:
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
    return (_f(temporal, 0.0), _f(echo, 0.0), _f(acquisition, 0.0))


def _item_from_record(rec: HeaderRecord, path: str, lay: _Layout, nbytes: int | None) -> _Item | None:
    """An item from the scanner's :class:`~viewer.io.headers.HeaderRecord`, or None when the record
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
        instance = int(_f(rec.instance_number, 0))
    except (OSError, ValueError):
        return None
    if len(pos) != 3 or st.st_size != rec.size or st.st_mtime_ns != rec.mtime_ns:
        return None
    item = _Item(path, None, np.array(pos), slope, intercept, rec.sop_uid, instance)
    item.stamp = (rec.size, rec.mtime_ns)
    item.vkey = _vkey(rec.temporal_position, rec.echo_number, rec.acquisition_number)
    if nbytes is not None and rec.pixel_offset > 0 and rec.pixel_length == nbytes:
        item.fast, item.offset = True, rec.pixel_offset
    return item


def _header_item(rec: HeaderRecord | None, path: str, lay: _Layout, nbytes: int | None, has: dict[str, bool]) -> _Item | None:
    """The item of a single-frame file from its index record when that is still valid, else from its
    raw bytes; None when neither works (the caller then asks pydicom)."""
    item = _item_from_record(rec, path, lay, nbytes) if rec is not None else None
    if item is not None:
        return item
    head = fast_header(path, nbytes, lay.explicit, has)
    if head is None:
        return None
    item = _Item(path, None, head.position, head.slope, head.intercept, head.sop_uid, head.instance)
    item.fast = head.fast
    return item


def _item_from_dataset(ds: Any, path: str) -> _Item:
    item = _Item(path)
    item.position = (np.array(_floats(ds.get("ImagePositionPatient")))
                     if _floats(ds.get("ImagePositionPatient")) and len(ds.ImagePositionPatient) == 3
                     else None)
    item.slope = _f(ds.get("RescaleSlope"), 1.0)
    item.intercept = _f(ds.get("RescaleIntercept"), 0.0)
    item.sop_uid = str(ds.get("SOPInstanceUID", "") or "")
    item.instance = int(_f(ds.get("InstanceNumber"), 0))
    echo = _floats(ds.get("EchoNumbers"))
    item.vkey = _vkey(ds.get("TemporalPositionIdentifier"), echo[0] if echo else None, ds.get("AcquisitionNumber"))
    seq = ds.get("ModalityLUTSequence")
    if seq:
        try:
            item.lut = ModalityLUT.from_item(seq[0], int(ds.get("PixelRepresentation", 0) or 0) == 1)
        except (ValueError, TypeError) as exc:
            raise LoadError(f"{path}: {exc}") from exc
    return item


def _voi_windows(ds: Any, frame: int | None) -> tuple[Window, ...]:
    """The VOI windows of one file, or of frame ``frame`` of a multi-frame file (FrameVOILUTSequence)."""
    centers, widths = _floats(ds.get("WindowCenter")), _floats(ds.get("WindowWidth"))
    explain = ds.get("WindowCenterWidthExplanation")
    if not centers:
        voi = _frame_group(ds, frame or 0, "FrameVOILUTSequence")
        if voi is not None:
            centers, widths = _floats(voi.get("WindowCenter")), _floats(voi.get("WindowWidth"))
            explain = voi.get("WindowCenterWidthExplanation")
    names = [] if not explain else [str(explain)] if isinstance(explain, str) else [str(x) for x in explain]
    return windows_from(centers, widths, names)


def _frame_group(ds: Any, k: int, name: str) -> Any:
    """The functional-group item ``name`` for frame k: per-frame first, then shared (PS3.3 C.7.6.16)."""
    for seq_name, idx in (("PerFrameFunctionalGroupsSequence", k), ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(seq_name)
        if seq and len(seq) > idx:
            inner = seq[idx].get(name)
            if inner:
                return inner[0]
    return None


def _layout_from(ds: Any, path: str) -> _Layout:
    for kw in ("Rows", "Columns"):
        if not ds.get(kw):
            raise LoadError(f"{path}: {kw} is missing or zero")
    ts = str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    lay = _Layout(rows=int(ds.Rows), cols=int(ds.Columns), samples=int(ds.get("SamplesPerPixel", 1) or 1),
                  bits_allocated=int(ds.get("BitsAllocated", 16) or 16),
                  bits_stored=int(ds.get("BitsStored", 0) or ds.get("BitsAllocated", 16) or 16),
                  signed=int(ds.get("PixelRepresentation", 0) or 0) == 1,
                  photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip(),
                  transfer_syntax=ts, orientation=None, pixel_spacing=None, spacing_source="",
                  explicit=ts != "1.2.840.10008.1.2")
    iop = _floats(ds.get("ImageOrientationPatient"))
    measures = _frame_group(ds, 0, "PixelMeasuresSequence")
    orient_group = _frame_group(ds, 0, "PlaneOrientationSequence")
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


def _expand(ds: Any, path: str, lay: _Layout,
            mosaics: dict[tuple[Any, ...], np.ndarray | None] | None = None) -> list[_Item]:
    """Slices held by one file: itself, its frames (enhanced multi-frame) or its mosaic tiles.

    ``mosaics`` remembers the tile positions (None: not a mosaic) of files already expanded, by
    :func:`_mosaic_key`, so that the CSA header of every time point is not parsed again (~15 ms each).
    """
    from viewer.io.mosaic import is_mosaic, mosaic_info, tile_positions

    frames = int(_f(ds.get("NumberOfFrames"), 1))
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
            it = _Item(path, t, p, base.slope, base.intercept, base.sop_uid, base.instance, lut=base.lut)
            it.vkey = base.vkey
            items.append(it)
        return items
    items = []
    for k in range(frames):
        it = _Item(path, k, None, base.slope, base.intercept, base.sop_uid, base.instance, lut=base.lut)
        it.vkey = base.vkey
        _frame_fields(ds, k, it)
        items.append(it)
    if all(it.position is None for it in items) and frames > 1:
        # Classic multi-frame (NM, US cine, XA): frames stacked along the normal with SpacingBetweenSlices.
        step = _f(ds.get("SpacingBetweenSlices"), 0.0) or _f(ds.get("SliceThickness"), 0.0)
        if base.position is not None and lay.orientation and step:
            from viewer.io.geometry import slice_normal

            n = slice_normal(lay.orientation)
            for k, it in enumerate(items):
                it.position = base.position + k * step * n
    return items


def _frame_fields(ds: Any, k: int, it: _Item) -> None:
    """Position, rescale and volume key of frame k from the functional groups, where present."""
    pos = _frame_group(ds, k, "PlanePositionSequence")
    if pos is not None and _floats(pos.get("ImagePositionPatient")):
        it.position = np.array(_floats(pos.get("ImagePositionPatient")))
    # Enhanced objects carry rescale per frame (PS3.3 C.7.6.16.2.9); classic MF has it at top level.
    trans = _frame_group(ds, k, "PixelValueTransformationSequence")
    if trans is not None:
        it.slope = _f(trans.get("RescaleSlope"), it.slope)
        it.intercept = _f(trans.get("RescaleIntercept"), it.intercept)
    orient = _frame_group(ds, k, "PlaneOrientationSequence")
    iop = _floats(orient.get("ImageOrientationPatient")) if orient is not None else None
    if iop and len(iop) == 6:
        it.orientation = tuple(iop)
    content = _frame_group(ds, k, "FrameContentSequence")
    if content is not None and content.get("TemporalPositionIndex") not in (None, ""):
        it.vkey = (_f(content.get("TemporalPositionIndex"), 0.0),) + it.vkey[1:]


def _mosaic_items_from_record(rec: HeaderRecord | None, path: str, first: Any,
                              tiles0: list[_Item]) -> list[_Item] | None:
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
    vkey = _vkey(rec.temporal_position, rec.echo_number, rec.acquisition_number)
    out = []
    for t in tiles0:
        it = _Item(path, t.frame, t.position, slope, intercept, rec.sop_uid, int(_f(rec.instance_number, 0)))
        it.vkey = vkey
        out.append(it)
    return out


class SeriesLoader:
    """Headers, order and geometry of one stack; pixels on :meth:`load` (or one slice at a time).

    Parameters
    ----------
    files
        Paths of the stack (any order; a multi-frame or mosaic file may be alone).
    series_uid
        SeriesInstanceUID to record (taken from the first file when empty).
    progress, cancel
        Header pass callbacks: progress(done, total) and cancel() -> True to stop (raises
        :class:`~viewer.io.errors.LoadCancelled`).
    decode_in_pool
        True: compressed pixels are decoded only in the process pool (the app: its UI thread shares this
        process, and decoders hold the GIL).
    records
        The scanner's :class:`~viewer.io.headers.HeaderRecord` of the files (``Stack.records``, or the
        index's rows), a sequence or a mapping by path. A file whose record still matches it (size and
        mtime_ns) and the first file's layout is not parsed again: position, rescale and the PixelData
        offset come from the record, and its pixels are read at that offset after checking the element
        header there. Any other file is read as without records.

    Attributes
    ----------
    shape : tuple
        (z, y, x) or (z, y, x, 3).
    affine : numpy.ndarray
        4x4 voxel (i=column, j=row, k=slice) -> LPS mm.
    first_index : int
        The slice :meth:`load` decodes first: the middle one in sorted order.
    dtype : numpy.dtype
        int16, float32 or uint8 (colour).
    """

    @reasons_not_crashes
    def __init__(self, files: Sequence[str], *, series_uid: str = "", progress: Progress | None = None,
                 cancel: Cancel | None = None, decode_in_pool: bool = False,
                 records: Iterable[HeaderRecord] | Mapping[str, HeaderRecord] | None = None) -> None:
        files = [os.fspath(f) for f in files]
        # The scanner's HeaderRecords (viewer.io.headers), by path: trusted per file only while its size
        # and mtime_ns are unchanged and its layout equals the first file's (which pydicom still parses
        # in full: layout, windows, patient/study text).
        recs: dict[str, HeaderRecord] = {}
        if records is not None:
            recs = dict(records) if isinstance(records, Mapping) else {r.path: r for r in records}
        # True (the desktop app): every compressed decode runs in the process pool, never in the calling
        # process, because decoders hold the GIL and a UI thread in the same process would stall with them.
        self.decode_in_pool = decode_in_pool
        if not files:
            raise LoadError("no files to load")
        self.warnings: list[str] = []
        self.dtype: np.dtype[Any] = np.dtype(np.int16)
        self._all_fit = False
        self._shared_ok = True
        first = read_header_dataset(files[0])
        self._first_ds = first
        self._first_path = files[0]
        self._info: SeriesInfo | None = None
        lay = self.layout = _layout_from(first, files[0])
        file_size = (lay.rows, lay.cols)  # of the stored image (a mosaic's tiles are smaller)
        from viewer.io.mosaic import mosaic_info, unsplit_reason

        self._mosaic = mosaic_info(first) if lay.orientation else None
        if self._mosaic is not None:
            lay.rows, lay.cols = self._mosaic.rows, self._mosaic.cols
        unsplit = unsplit_reason(first) if self._mosaic is None else None
        if unsplit is not None:
            self.warnings.append(unsplit)
        self.warnings += lay.warnings
        has = fast_tags_present(first)
        # Byte-level headers for single-frame series whose data set is little endian (native or
        # encapsulated); byte-level pixels only for native 16-bit grey.
        encapsulated = lay.transfer_syntax not in _NATIVE_LE | _OTHER_NATIVE
        self._fast_hdr = (int(_f(first.get("NumberOfFrames"), 1)) <= 1 and "ModalityLUTSequence" not in first
                          and _mosaic_free(first) and has["position"] and lay.orientation is not None
                          and (lay.transfer_syntax in _NATIVE_LE or encapsulated))
        self._fast = (self._fast_hdr and lay.transfer_syntax in _NATIVE_LE and lay.bits_allocated == 16
                      and lay.samples == 1)
        if self._compressed() and (decode_in_pool or len(files) >= POOL_MIN_FILES):
            # The decoder processes start now and import their decoders while the headers are read
            # (a cold spawn costs ~0.3-1 s); load() asks for the same size and finds them ready.
            ncpu = os.cpu_count() or 1
            if ncpu > 1 or decode_in_pool:
                decode_pool.prestart_pool(ncpu if decode_in_pool else ncpu - 1)
        items: list[_Item] = []
        nbytes = lay.rows * lay.cols * 2 if self._fast else None
        total = len(files)
        mosaics: dict[tuple[Any, ...], np.ndarray | None] = {}
        for n, path in enumerate(files):
            if cancel is not None and cancel():
                raise LoadCancelled("loading cancelled while reading headers")
            if n == 0:
                its = _expand(first, path, lay, mosaics)
                if self._fast_hdr:
                    check = _header_item(recs.get(path), path, lay, nbytes, has)
                    pos0 = its[0].position
                    ok = (check is not None and check.position is not None and pos0 is not None
                          and bool(np.allclose(check.position, pos0))
                          and (check.slope, check.intercept, check.sop_uid) ==
                          (its[0].slope, its[0].intercept, its[0].sop_uid))
                    self._fast_hdr = ok
                    self._fast = self._fast and ok
                    its[0].fast = self._fast and check is not None and check.fast
                    if its[0].fast and check is not None:
                        its[0].offset, its[0].stamp = check.offset, check.stamp
                items += its
                tiles0 = its if self._mosaic is not None else None
            else:
                it = None
                if self._fast_hdr:
                    it = _header_item(recs.get(path), path, lay, nbytes, has)
                tiles = (_mosaic_items_from_record(recs.get(path), path, first, tiles0)
                         if tiles0 is not None else None)
                if it is not None:
                    items.append(it)
                elif tiles is not None:
                    items += tiles
                else:
                    ds = read_header_dataset(path)
                    if (int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)) != file_size:
                        self.warnings.append(f"{os.path.basename(path)}: size {ds.get('Rows')}x"
                                             f"{ds.get('Columns')} differs from {file_size[0]}x{file_size[1]}; "
                                             "file left out")
                        continue
                    items += _expand(ds, path, lay, mosaics)
            if progress is not None:
                progress(n + 1, total)
        self.series_uid = series_uid or str(first.get("SeriesInstanceUID", "") or "")
        self.modality = str(first.get("Modality", "") or "")
        self._arrange(items, first)
        self._choose_dtype()
        self.first_index = len(self.items) // 2

    # -- geometry ---------------------------------------------------------------------------------
    def _arrange(self, items: list[_Item], ds: Any) -> None:
        lay = self.layout
        items = self._sane(items)
        if lay.orientation:
            # Frames of another orientation (multi-frame files of one series joined into one stack, or a
            # survey's three planes in one file) cannot share this stack's grid.
            ref = np.asarray(lay.orientation)
            other = [it for it in items if it.orientation is not None
                     and float(np.max(np.abs(np.asarray(it.orientation) - ref))) > 1e-4]
            if other:
                names = sorted({os.path.basename(it.path) for it in other})
                self.warnings.append(f"{len(other)} frame(s) have another orientation than the first and are left "
                                     f"out: {', '.join(names[:5])}")
                gone = {id(it) for it in other}
                items = [it for it in items if id(it) not in gone]
        positioned = [it for it in items if it.position is not None]
        if lay.orientation and positioned:
            if len(positioned) < len(items):
                left = [it.name for it in items if it.position is None]
                self.warnings.append(f"{len(left)} slice(s) without ImagePositionPatient left out: "
                                     f"{', '.join(left[:5])}")
            from viewer.io.geometry import slice_normal
            from viewer.io.volumes import group_volumes

            normal = slice_normal(lay.orientation)
            groups, warning = group_volumes(positioned, lambda it: float(it.position @ normal),
                                            lambda it: (it.vkey, it.instance, it.path, it.frame or 0))
            if warning:
                self.warnings.append(warning)
            single_step = _f(ds.get("SpacingBetweenSlices"), 0.0) or _f(ds.get("SliceThickness"), 0.0) or None
            self._volume_items: list[list[_Item]] = []
            self._affines: list[np.ndarray] = []
            reverse: bool | None = None
            for v, group in enumerate(groups):
                geo = stack_geometry(np.array([it.position for it in group], dtype=np.float64), lay.orientation,
                                     lay.pixel_spacing or [1, 1], names=[it.name for it in group],
                                     single_slice_step=single_step)
                ordered = [group[i] for i in geo.order]
                affine = geo.affine
                if reverse is None:
                    # One display order for every volume, decided on the first (see display_reversed).
                    reverse = display_reversed([float(it.position @ normal) for it in ordered],
                                               [it.instance for it in ordered], normal)
                    self.warnings += geo.warnings
                if reverse and len(ordered) > 1:
                    ordered.reverse()
                    affine = _reversed_affine(affine, ordered)
                self._volume_items.append(ordered)
                self._affines.append(affine)
        else:
            # Radiographs, secondary captures: no 3D position. Keep file order (frames in order).
            if len(items) > 1:
                self.warnings.append("no ImagePositionPatient/ImageOrientationPatient: slices kept in file "
                                     "and frame order, slice step 1 mm")
            self._volume_items = [items]
            self._affines = [planar_affine(lay.pixel_spacing, lay.orientation,
                                           items[0].position if items and items[0].position is not None
                                           else None)]
        self.volumes = len(self._volume_items)
        self.volume_index = 0
        self.items = self._volume_items[0]
        self.affine = self._affines[0]
        self._volume_axis: VolumeAxis | None = None

    def _sane(self, items: list[_Item]) -> list[_Item]:
        """Items whose numbers can make a finite volume: a position that is not finite or lies beyond
        1 km becomes "no position" (warned); a slice whose RescaleSlope/Intercept is not finite is left
        out (warned); when none is left, the stack is refused."""
        odd = [it for it in items if it.position is not None and not plausible_position(it.position)]
        for it in odd:
            it.position = None
        if odd:
            self.warnings.append(f"{len(odd)} slice(s) with an ImagePositionPatient that is not finite or "
                                 f"absurdly far ({', '.join(it.name for it in odd[:5])}): treated as absent")
        kept = [it for it in items if plausible_rescale(it.slope, it.intercept)]
        if not kept:
            raise LoadError(f"{items[0].name if items else 'the stack'}: RescaleSlope/RescaleIntercept "
                            "are not finite numbers of a sane size (|v| <= 1e10); values cannot be computed")
        if len(kept) < len(items):
            left = [it.name for it in items if it not in kept]
            self.warnings.append(f"{len(left)} slice(s) with a RescaleSlope/Intercept that is not a finite "
                                 f"number of a sane size left out: {', '.join(left[:5])}")
        return kept

    def select_volume(self, index: int) -> None:
        """Make volume ``index`` (0-based, of :attr:`volumes`) the one :meth:`load` and
        :meth:`read_slice` read."""
        if not 0 <= index < self.volumes:
            raise LoadError(f"volume {index} out of range: the series has {self.volumes} volume(s)")
        if index != self.volume_index:
            self.volume_index = index
            self.items = self._volume_items[index]
            self.affine = self._affines[index]
            self._info = None
            self._choose_dtype()

    @property
    def volume_axis(self) -> VolumeAxis | None:
        """The fourth dimension (meaning and per-volume fields), None for a 3D stack. Reads one header
        per volume the first time it is asked for."""
        if self.volumes < 2:
            return None
        if self._volume_axis is None:
            from viewer.io.volumes import axis_kind, read_volume_header, volume_info

            infos = []
            cache: dict[str, Any] = {self._first_path: self._first_ds}
            for v, items in enumerate(self._volume_items):
                it = items[len(items) // 2]
                ds = cache.get(it.path)
                if ds is None:
                    ds = cache[it.path] = read_volume_header(it.path)
                # The functional groups of this slice's frame (frame 0 of a one-frame or mosaic file).
                frame = it.frame if it.frame is not None and int(_f(ds.get("NumberOfFrames"), 1)) > 1 else 0
                infos.append(volume_info(v, ds, functools.partial(_frame_group, ds, frame)))
            self._volume_axis = VolumeAxis(axis_kind(infos), tuple(infos))
        return VolumeAxis(self._volume_axis.kind, self._volume_axis.items, self.volume_index)

    # -- values -----------------------------------------------------------------------------------
    def _choose_dtype(self) -> None:
        lay = self.layout
        self._all_fit = False
        if lay.samples == 3 or lay.photometric == "PALETTE COLOR":
            self.dtype = np.dtype(np.uint8)
            self.shape: tuple[int, ...] = (len(self.items), lay.rows, lay.cols, 3)
            return
        self.shape = (len(self.items), lay.rows, lay.cols)
        if lay.bits_allocated == 1:
            self.dtype = np.dtype(np.int16)
            return
        float_data = "FloatPixelData" in self._first_ds or "DoubleFloatPixelData" in self._first_ds
        if float_data or any(it.lut is not None for it in self.items):
            self.dtype = np.dtype(np.float32)
            return
        if lay.bits_allocated > 16:
            self.dtype = np.dtype(np.int16)  # 32-bit integers: int16 while every slice fits (checked)
            return
        lo, hi = stored_range(lay.bits_stored, lay.signed)
        pairs = {(it.slope, it.intercept) for it in self.items}  # usually one
        integer = all(float(a).is_integer() and float(b).is_integer() for a, b in pairs)
        self.dtype = np.dtype(np.int16 if integer else np.float32)
        # int16 is kept as long as every slice fits; a slice that does not turns the volume float32.
        self._all_fit = integer and all(rescale_fits_int16(a, b, lo, hi) for a, b in pairs)

    def padding_value(self) -> float | None:
        """PixelPaddingValue in modality units (e.g. -3024 HU), or None."""
        pad = self._first_ds.get("PixelPaddingValue")
        if pad is None:
            return None
        v = int(pad if not isinstance(pad, (list, tuple)) else pad[0])
        if self.layout.signed and v >= 1 << 15:
            v -= 1 << 16  # US-encoded value of a signed image (PS3.3 C.7.5.1.1.2)
        it = self.items[0] if self.items else _Item("")
        val = v * it.slope + it.intercept
        return int(val) if float(val).is_integer() else float(val)

    def series_info(self) -> SeriesInfo:
        """The typed description of the series (cached): windows, per-slice files, numbers, positions.

        VOI windows: those of the slice shown first (:attr:`first_index`); whether slices carry
        different ones is read from every frame of a multi-frame file and, for single-frame series,
        from five slices spread over the stack (first, quartiles, middle, last: five header reads).
        """
        if self._info is not None:
            return self._info
        ds = self._first_ds
        n = len(self.items)
        headers: dict[str, Any] = {self._first_path: ds}
        sampled = {0, n // 4, n // 2, (3 * n) // 4, n - 1, self.first_index} if n else set()
        per_slice: list[Window | None] = []
        shown: tuple[Window, ...] = ()
        for k, it in enumerate(self.items):
            head = headers.get(it.path)
            if head is None and k in sampled:
                try:
                    head = headers[it.path] = read_header_dataset(it.path)
                except Exception:  # noqa: BLE001 - a header read here only refines the window
                    head = None
            wins = _voi_windows(head, it.frame) if head is not None else ()
            per_slice.append(wins[0] if wins else None)
            if k == self.first_index:
                shown = wins
        if not shown:
            shown = _voi_windows(ds, 0)
        name = ds.get("PatientName")
        thickness = _f(ds.get("SliceThickness"), 0.0)
        measures = _frame_group(ds, 0, "PixelMeasuresSequence")
        if not thickness and measures is not None:
            thickness = _f(measures.get("SliceThickness"), 0.0)
        slices = tuple(SliceInfo(it.path, it.frame, it.sop_uid, it.instance or None,
                                 tuple(float(v) for v in it.position) if it.position is not None else None,  # type: ignore[arg-type]
                                 (float(it.slope), float(it.intercept)), per_slice[k])
                       for k, it in enumerate(self.items))
        self._info = SeriesInfo(
            modality=self.modality, photometric=self.layout.photometric, windows=shown,
            varying_window=span_windows(per_slice), slices=slices,
            study_uid=str(ds.get("StudyInstanceUID", "") or ""), series_uid=self.series_uid,
            frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
            sop_class_uid=str(ds.get("SOPClassUID", "") or ""),
            patient_name=str(name) if name is not None else "",
            patient_id=str(ds.get("PatientID", "") or ""),
            study_date=str(ds.get("StudyDate", "") or ""),
            study_description=str(ds.get("StudyDescription", "") or ""),
            series_description=str(ds.get("SeriesDescription", "") or ""),
            # what a model's applies_to is checked against (viewer.ai.applies)
            body_part=str(ds.get("BodyPartExamined", "") or "").strip(),
            view_position=str(ds.get("ViewPosition", "") or "").strip(),
            series_number=int(_f(ds.get("SeriesNumber"), 0)) if ds.get("SeriesNumber") not in (None, "") else None,
            slice_thickness=thickness or None, padding_value=self.padding_value(),
            pixel_spacing_source=self.layout.spacing_source,
            # False for images without ImageOrientationPatient (CR/DX/US/SC): orientation letters would lie.
            orientation_known=self.layout.orientation is not None,
            transfer_syntax=self.layout.transfer_syntax, bits_stored=self.layout.bits_stored,
            volumes_in_stack=self.volumes)
        return self._info

    def metadata(self) -> dict[str, Any]:
        """Deprecated: :meth:`series_info` as the old plain dict."""
        return self.series_info().as_metadata()

    # -- pixels -----------------------------------------------------------------------------------
    @reasons_not_crashes
    def read_slice(self, k: int) -> np.ndarray:
        """Slice k (sorted order) in modality units, decoded alone (for previews)."""
        item = self.items[k]
        for dtype in (self.dtype, np.dtype(np.float32)):
            out = np.empty(self.shape[1:], dtype=dtype)
            try:
                if not (item.fast and self._try_fast(item, out)):
                    self._store(out, self._decode_one(item.path), item, k)
                return out
            except NeedsFloat:
                continue
        return out

    def _decode_one(self, path: str) -> np.ndarray:
        if self.decode_in_pool and self._compressed():
            try:
                return decode_pool.get_pool(os.cpu_count() or 1).submit(decode_pool.decode_file, path).result()
            except BrokenProcessPool:
                decode_pool.drop_pool()
            except (OSError, RuntimeError):  # no child processes here (daemon, sandbox)
                decode_pool.drop_pool()
        from viewer.io.fastcodecs import j2k_threads

        with j2k_threads(os.cpu_count() or 1):  # one frame decoded alone: all cores on it
            return decode_pool.decode_file(path)

    def _compressed(self) -> bool:
        return self.layout.transfer_syntax not in _NATIVE_LE | _OTHER_NATIVE

    def _try_fast(self, item: _Item, out: np.ndarray) -> bool:
        if out.dtype == np.float32:
            # Non-integer rescale (PET, some MR/CT): stored values read into a scratch slice, then one
            # float32 multiply-add into the volume, as the int16 path does in place.
            scratch = np.empty(out.shape, dtype=np.int16)
            if not read_pixels_fast(item.path, scratch, self.layout.explicit, item.offset, item.stamp):
                return False
            stored = fix_stored_bits(scratch.view(np.int16 if self.layout.signed else np.uint16),
                                     self.layout.bits_stored, self.layout.signed)
            rescale_into(out, stored, item.slope, item.intercept)
            return True
        if out.dtype != np.int16 or not (float(item.slope).is_integer() and float(item.intercept).is_integer()):
            return False
        if not read_pixels_fast(item.path, out, self.layout.explicit, item.offset, item.stamp):
            return False
        stored = out.view(np.int16 if self.layout.signed else np.uint16)
        stored = fix_stored_bits(stored, self.layout.bits_stored, self.layout.signed)
        if not self.layout.signed and self.layout.bits_stored <= 15:
            stored = out  # masked values < 2**15 have the same bits as int16: same-type in-place add
        if not self._all_fit and not rescale_fits_int16(item.slope, item.intercept, int(stored.min()),
                                                        int(stored.max())):
            # The stored bit range alone could leave int16 (e.g. signed 16-bit + intercept -1024):
            # this slice's actual values do.
            raise NeedsFloat(0)
        if item.slope != 1 or item.intercept != 0:
            rescale_into(out, stored, item.slope, item.intercept)
        return True

    _on_slices: SlicesReady | None = None

    def _new_volume(self) -> np.ndarray:
        # Zeros when a caller shows the volume while it fills (undecoded slices black, not old memory);
        # np.zeros of this size maps fresh zero pages, as cheap as np.empty.
        return (np.zeros if self._on_slices is not None else np.empty)(self.shape, dtype=self.dtype)

    def _spec(self) -> StoreSpec:
        return StoreSpec(self._all_fit, int(_f(self._first_ds.get("NumberOfFrames"), 1)) <= 1, self._mosaic)

    def _store(self, out: np.ndarray, frames: np.ndarray, item: _Item, k: int) -> np.ndarray:
        """Write ``item``'s stored values (taken from its file's decoded frames) into ``out``."""
        return store_into(out, frames, item, k, self._spec())

    @reasons_not_crashes
    def load(self, *, progress: Progress | None = None, cancel: Cancel | None = None,
             first_slice: FirstSlice | None = None, workers: int | None = None,
             volume: int | None = None, on_slices: SlicesReady | None = None) -> Volume:
        """Read all pixels of one volume into a new :class:`Volume`.

        Parameters
        ----------
        volume
            Which volume of a 4D stack (0-based; default: the selected one, see :meth:`select_volume`).
        progress
            progress(done, total) after each slice.
        cancel
            Polled between slices; True raises :class:`~viewer.io.errors.LoadCancelled`.
        first_slice
            first_slice(k, array) with slice ``first_index`` in modality units, called before any other
            slice is read.
        workers
            Processes for compressed data (default: all cores; the pool part is capped at
            :data:`viewer.io.decode_pool.MAX_WORKERS`); 1 decodes in this process only.
        on_slices
            on_slices(volume, ks) after slices ks (sorted order) hold their values in ``volume``, the
            array that the returned Volume will hold (zeros where no slice is stored yet): a viewer may
            show ready slices while the rest loads (slices come from the middle outwards). Called on
            the loading thread. A load that starts over (float32 needed, shared memory full) hands a
            new array: every slice of an earlier one is then void.
        """
        self._on_slices = on_slices
        if volume is not None:
            self.select_volume(volume)
        while True:
            try:
                return self._load(progress, cancel, first_slice, workers)
            except NeedsFloat:
                # A slice's values leave int16: redo in float32 (rare: unsigned 16-bit with large values).
                self.dtype = np.dtype(np.float32)
                first_slice = None
            except SharedFailed:
                self._shared_ok = False

    def _load(self, progress: Progress | None, cancel: Cancel | None, first_slice: FirstSlice | None,
              workers: int | None) -> Volume:
        n = len(self.items)
        done = 0
        # The middle slice first, then outwards (first+1, first-1, ...): what a reader scrolls to first.
        mid = self.first_index
        order = sorted(range(n), key=lambda k: (abs(k - mid), k < mid))
        fast = [k for k in order if self.items[k].fast]
        slow = [k for k in order if not self.items[k].fast]
        if not fast:
            # All decoded: _load_slow allocates the volume (in shared memory when the pool fills it).
            arr = self._load_slow(None, slow, progress, cancel, first_slice, workers, done)
            return self._volume(arr)
        vol = self._new_volume()
        if fast and fast[0] == self.first_index:
            # The first slice alone, before anything else, so the caller can draw it at once.
            if cancel is not None and cancel():
                raise LoadCancelled("loading cancelled")
            if self._try_fast(self.items[fast[0]], vol[fast[0]]):
                done += 1
                if progress is not None:
                    progress(done, n)
                if self._on_slices is not None:
                    self._on_slices(vol, [fast[0]])
                if first_slice is not None:
                    first_slice(fast[0], vol[fast[0]])
            else:
                slow.insert(0, fast[0])
            fast = fast[1:]
        # Reading (preadv) and the numpy rescale release the GIL: this thread and one helper take
        # chunks from one queue, so both cores read (and fault in the new volume's pages) at once.
        threads = min(2, os.cpu_count() or 1) if (workers is None or workers > 1) else 1
        size = 8
        queue = deque(fast[i:i + size] for i in range(0, len(fast), size))
        finished: list[tuple[list[int], list[int]]] = []  # (chunk, its failed slices); appends are atomic
        errors: list[BaseException] = []
        stop = threading.Event()

        def run(chunk: list[int]) -> None:
            finished.append((chunk, [k for k in chunk if not self._try_fast(self.items[k], vol[k])]))

        def helper() -> None:
            try:
                while not stop.is_set():
                    try:
                        chunk = queue.popleft()
                    except IndexError:
                        return
                    run(chunk)
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread (NeedsFloat)
                errors.append(exc)

        reported = 0

        def account() -> None:
            nonlocal reported, done
            while reported < len(finished):
                chunk, failed = finished[reported]
                reported += 1
                slow.extend(failed)
                done += len(chunk) - len(failed)
                if progress is not None:
                    progress(done, n)
                if self._on_slices is not None:
                    self._on_slices(vol, [k for k in chunk if k not in failed])

        thread = threading.Thread(target=helper, daemon=True) if threads > 1 and len(queue) > 2 else None
        if thread is not None:
            thread.start()
        try:
            while not errors:
                if cancel is not None and cancel():
                    raise LoadCancelled("loading cancelled")
                try:
                    chunk = queue.popleft()
                except IndexError:
                    break
                run(chunk)
                account()
        finally:
            stop.set()
            if thread is not None:
                thread.join()
        if errors:
            raise errors[0]
        account()
        if slow:
            vol = self._load_slow(vol, slow, progress, cancel, first_slice, workers, done)
        return self._volume(vol)

    def _volume(self, array: np.ndarray) -> Volume:
        positions = ([it.position for it in self.items] if self.items and all(
            it.position is not None for it in self.items) and self.layout.orientation else None)
        # The fourth axis joins the description only here: its per-volume header reads must not delay
        # the preview slice (series_info() alone serves that).
        info = self.series_info()
        if self.volumes > 1:
            info = dataclasses.replace(info, volumes=self.volume_axis)
        return Volume(array=array, affine=self.affine, modality=self.modality, series_uid=self.series_uid,
                      info=info, warnings=list(self.warnings),
                      slice_positions=np.array(positions, dtype=np.float64) if positions else None)

    def _load_slow(self, vol: np.ndarray | None, ks: list[int], progress: Progress | None,
                   cancel: Cancel | None, first_slice: FirstSlice | None, workers: int | None,
                   done: int) -> np.ndarray:
        """Decode slices ``ks`` (first slice first) into ``vol`` (allocated here when None), or into a
        new shared-memory volume, returned instead, when decoder processes do all of them (see
        :class:`SharedSlices`)."""
        n = len(self.items)
        # Group slices by file: a multi-frame or mosaic file is decoded once.
        by_file: dict[str, list[int]] = {}
        for k in ks:
            by_file.setdefault(self.items[k].path, []).append(k)
        paths = list(by_file)
        ncpu = os.cpu_count() or 1
        workers = ncpu if workers is None else workers
        compressed = self._compressed()
        pool_only = self.decode_in_pool and compressed
        use_pool = pool_only or (workers > 1 and compressed and len(paths) >= POOL_MIN_FILES)
        spec = self._spec()
        out = vol
        shared: SharedSlices | None = None

        def volume() -> np.ndarray:
            nonlocal out
            if out is None:
                out = self._new_volume()
            return out

        def report(done_ks: list[int], slice_of: Callable[[int], np.ndarray]) -> None:
            nonlocal done
            if self._on_slices is not None:
                self._on_slices(shared.array() if shared is not None else volume(), done_ks)
            for k in done_ks:
                done += 1
                if progress is not None:
                    progress(done, n)
                if k == self.first_index and first_slice is not None:
                    first_slice(k, slice_of(k))

        def put(path: str, frames: np.ndarray) -> None:
            v = volume()
            for k in by_file[path]:
                store_into(v[k], frames, self.items[k], k, spec)
            report(by_file[path], v.__getitem__)

        def decode_here(chunk: list[str]) -> np.ndarray:
            for path in chunk:
                if cancel is not None and cancel():
                    raise LoadCancelled("loading cancelled")
                put(path, decode_pool.decode_file(path))
            return volume()

        if not use_pool:
            from viewer.io.fastcodecs import j2k_threads

            # One decoding process: OpenJPEG may use every core for each JPEG 2000 frame.
            with j2k_threads(ncpu if workers > 1 else 1):
                return decode_here(paths)
        # Decoded slices travel back through a pipe as pickles at ~0.5 GB/s (measured: ~1 ms per 512x512
        # int16 slice, as long as decoding a JPEG-LS slice takes). With a shared-memory volume the
        # workers write each slice in place (pwrite) and return only when done.
        shared = SharedSlices.create(self.shape, self.dtype) if (
            self._shared_ok and len(ks) == n) else None
        try:
            try:
                pool = decode_pool.get_pool(ncpu if pool_only else workers - 1)
            except Exception:  # noqa: BLE001 - no child processes here (daemon, sandbox): decode locally
                decode_pool.drop_pool()
                return decode_here(paths)
            # A pool kept from an earlier load may already have a worker per core asked for (the app
            # warms one per core): then this process only waits; a third decoder on two cores would
            # slow the others down as much as it adds.
            pool_only = pool_only or decode_pool.pool_size() >= workers
            # The first slice's file is a chunk of its own, so that it is on screen after one decode.
            size = max(1, min(8, len(paths) // (4 * workers)))
            chunks = [paths[:1]] + [paths[i:i + size] for i in range(1, len(paths), size)]
            first, rest = ([], chunks) if pool_only else (chunks[0], chunks[1:])
            if shared is not None:
                return self._pool_shared(pool, shared, first, rest, by_file, spec, pool_only, cancel,
                                         report)
            self._pool_pickled(pool, first, rest, pool_only, cancel, put)
            return volume()
        finally:
            if shared is not None:
                shared.discard()

    def _pool_pickled(self, pool: ProcessPoolExecutor, first: list[str], rest: list[list[str]],
                      pool_only: bool, cancel: Cancel | None, put: Callable[[str, np.ndarray], None]) -> None:
        """Decode with the pool, slices sent back pickled and stored here by ``put``."""

        def here(chunk: list[str]) -> list[np.ndarray]:
            return [decode_pool.decode_file(p) for p in chunk]

        def finished(chunk: list[str], results: list[np.ndarray]) -> None:
            for path, frames in zip(chunk, results):
                put(path, frames)

        _steal_work(first, rest, pool_only, cancel, lambda chunk: pool.submit(decode_pool.decode_chunk, chunk),
                    here, finished)

    def _pool_shared(self, pool: ProcessPoolExecutor, shared: SharedSlices, first: list[str],
                     rest: list[list[str]], by_file: dict[str, list[int]], spec: StoreSpec,
                     pool_only: bool, cancel: Cancel | None,
                     report: Callable[[list[int], Callable[[int], np.ndarray]], None]) -> np.ndarray:
        """:meth:`_pool_pickled` with every slice written into ``shared`` by whoever decodes it."""
        shape, dtype = self.shape[1:], self.dtype.str

        def jobs(chunk: list[str]) -> list[tuple[str, list[tuple[int, _Item]]]]:
            return [(p, [(k, self.items[k]) for k in by_file[p]]) for p in chunk]

        def here(chunk: list[str]) -> None:
            decode_pool.decode_chunk_into(shared.path, shape, dtype, spec, jobs(chunk))

        def finished(chunk: list[str], _: object) -> None:
            report([k for p in chunk for k in by_file[p]], shared.read_slice)

        try:
            _steal_work(first, rest, pool_only, cancel,
                        lambda chunk: pool.submit(decode_pool.decode_chunk_into, shared.path, shape, dtype,
                                                  spec, jobs(chunk)),
                        here, finished)
        except OSError as exc:
            # Writing the shared volume failed (shared memory full): the caller loads again without it.
            raise SharedFailed(str(exc)) from exc
        return shared.finish()


def _steal_work(first: list[str], rest: list[list[str]], pool_only: bool, cancel: Cancel | None,
                submit: Callable[[list[str]], Future[Any]], here: Callable[[list[str]], Any],
                finished: Callable[[list[str], Any], None]) -> None:
    """Work stealing between this process and the decoder pool, in chunk order.

    This process decodes ``first`` and then chunks from the front (``here``); the pool gets the same
    chunks from the back (``submit``). A chunk whose future has not started yet is cancelled and decoded
    here. In pool-only mode the pool has all cores, decodes front first, and this process only waits
    (without the GIL). ``finished(chunk, result)`` runs here, in chunk order; a pool that broke (a worker
    killed, or spawn could not start it) is dropped and its chunk decoded here.
    """
    futures: dict[int, Future[Any]] = {}
    try:
        for i in (range(len(rest)) if pool_only else range(len(rest) - 1, -1, -1)):
            futures[i] = submit(rest[i])
        if first:
            finished(first, here(first))
        for i, chunk in enumerate(rest):
            if cancel is not None and cancel():
                raise LoadCancelled("loading cancelled")
            fut = futures[i]
            if not pool_only and fut.cancel():
                result = here(chunk)
            else:
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    decode_pool.drop_pool()
                    result = here(chunk)
            finished(chunk, result)
    finally:
        for fut in futures.values():
            fut.cancel()


def _reversed_affine(affine: np.ndarray, ordered: Sequence[_Item]) -> np.ndarray:
    """``affine`` of slices shown last-to-first: origin at the (new) first slice's own position, the
    slice column from the first to the last position (exact, not a flipped mean)."""
    out = affine.copy()
    first, last = ordered[0].position, ordered[-1].position
    assert first is not None and last is not None
    out[:3, 3] = first
    out[:3, 2] = (last - first) / (len(ordered) - 1)
    return out


def _mosaic_free(ds: Any) -> bool:
    return "MOSAIC" not in [str(v).upper() for v in (ds.get("ImageType") or [])]


# -- public entry points ----------------------------------------------------------------------------
def stack_loader(stack: Any, *, progress: Progress | None = None, cancel: Cancel | None = None,
                 decode_in_pool: bool = False) -> SeriesLoader:
    """The :class:`SeriesLoader` (headers read, no pixels) of a Stack or a list of paths."""
    files = stack.files if hasattr(stack, "files") else list(stack)
    uid = getattr(stack, "series_uid", "") or ""
    # The scanner's records (Stack.records) spare the loader a second read of every header.
    records = getattr(stack, "records", None) or None
    return SeriesLoader(files, series_uid=uid, progress=progress, cancel=cancel, records=records,
                        decode_in_pool=decode_in_pool)


def load_stack(stack: Any, *, progress: Progress | None = None, cancel: Cancel | None = None,
               first_slice: FirstSlice | None = None, volume: int = 0) -> Volume:
    """Load a :class:`viewer.io.series.Stack` (or a list of paths) into a :class:`Volume`.

    ``progress(done, total)`` counts the header pass and then the pixel pass (each 0..total).
    ``volume``: which volume of a 4D stack (see :func:`load_series`).
    """
    loader = stack_loader(stack, progress=progress, cancel=cancel)
    vol = loader.load(progress=progress, cancel=cancel, first_slice=first_slice, volume=volume)
    extra = list(getattr(stack, "warnings", []) or [])
    vol.warnings = extra + vol.warnings
    return vol


def iter_volumes(stack: Any, *, cancel: Cancel | None = None) -> Iterator[Volume]:
    """Every volume of a stack, one at a time (a 3D stack yields one): memory holds one volume, the
    headers are read once. Each :class:`Volume`'s ``volumes.index`` says which it is."""
    loader = stack_loader(stack, cancel=cancel)
    extra = list(getattr(stack, "warnings", []) or [])
    for v in range(loader.volumes):
        vol = loader.load(cancel=cancel, volume=v)
        vol.warnings = extra + vol.warnings
        yield vol


def select_stack(path_or_paths: Any, series: str | int | None = None, *, progress: Progress | None = None,
                 cancel: Cancel | None = None) -> Any:
    """The stack ``series`` names among those :func:`viewer.io.series.find_stacks` finds.

    ``series``: a SeriesInstanceUID (the largest of its stacks when it was split), a number N counted from 1
    in the scan's order (int or digit string; :func:`viewer.core.series_number.pick_series`, the rule the
    viewer and every command share), or None for the largest stack (most frames, counting each
    single-frame file as one; the first of those on a tie).
    """
    from viewer.core.series_number import SeriesNotFound, pick_series
    from viewer.io.series import find_stacks

    result = find_stacks(path_or_paths, progress=progress, cancel=cancel)
    stacks = result.stacks
    if not stacks:
        reasons = "; ".join(f"{os.path.basename(p)}: {r}" for p, r in result.bad_files[:5])
        raise LoadError(f"no loadable DICOM series in {path_or_paths}" + (f" ({reasons})" if reasons else ""))
    if series is None:
        # max keeps the first of equals; ``frames`` (total frames, when the scanner reports it) makes a
        # 100-frame file outrank a 3-file localizer.
        return max(stacks, key=lambda s: max(int(getattr(s, "frames", 0) or 0), len(s.files)))
    try:
        picked = pick_series([s.series_uid for s in stacks], series)
    except SeriesNotFound as exc:
        raise LoadError(str(exc)) from None
    return max((stacks[i] for i in picked), key=lambda s: len(s.files))


def load_series(path_or_paths: Any, *, series: str | int | None = None, progress: Progress | None = None,
                cancel: Cancel | None = None, first_slice: FirstSlice | None = None,
                volume: int = 0) -> Volume:
    """Load one series from a folder, a file or a list of files.

    Parameters
    ----------
    path_or_paths
        A folder (searched recursively), a DICOM file, or a list of files.
    series
        SeriesInstanceUID, or number N of the stack counted from 1 in the order
        :func:`viewer.io.series.find_stacks` lists them (see :func:`select_stack`); None picks the largest stack (most slices/frames; the first one on a tie).
    progress, cancel, first_slice
        See :meth:`SeriesLoader.load`.
    volume
        For a 4D series (time points, diffusion directions, echoes, cardiac phases): which volume,
        0-based. A 4D series gives one 3D :class:`Volume` per call, never a 4D array, so that everything
        that shows or measures a volume works unchanged and memory holds one volume at a time; its
        ``volumes`` (:class:`~viewer.core.volume.VolumeAxis`) names the fourth axis's meaning, every
        volume's fields (b-value and direction, echo time, trigger time ...) and which one this is.
        :func:`iter_volumes` yields all of them in turn; :class:`SeriesLoader` (``select_volume``,
        ``load(volume=k)``) loads any without reading the headers again.

    Returns
    -------
    Volume
        ``array`` (z, y, x) in modality units (HU for CT): int16 when the values are integers that fit,
        else float32; colour as (z, y, x, 3) uint8. ``affine`` maps (i=column, j=row, k=slice, 1) to LPS
        mm. ``info`` (:class:`~viewer.core.series_info.SeriesInfo`) holds windows, photometric
        interpretation (MONOCHROME1 is NOT inverted), padding value in modality units, patient/study/series
        text and per slice its file, frame, instance UID and number, position and rescale, and for a
        4D series ``info.volumes``. Slices are in display order: the lowest InstanceNumber first where
        it runs with position (else the cranial / first-acquired end; see
        :func:`viewer.io.geometry.display_reversed`); the affine is exact for that order.
        ``slice_positions`` keeps each slice's own position.

    Raises
    ------
    LoadError
        Nothing loadable, an unknown series, a missing decoder or a defective file (named).
    LoadCancelled
        ``cancel()`` returned True.
    """
    stack = select_stack(path_or_paths, series, cancel=cancel)
    return load_stack(stack, progress=progress, cancel=cancel, first_slice=first_slice, volume=volume)
