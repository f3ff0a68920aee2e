"""Load a stack of DICOM files into a :class:`~viewer.core.volume.Volume` in modality units.

Three steps, each its own module:

1. the header pass (:mod:`viewer.io.stack_headers`): the first file parsed by pydicom, every other file's
   facts from the scanner's header records or :func:`~viewer.io.headers.read_header`, multi-frame and
   mosaic files expanded into slices;
2. the plan (:mod:`viewer.io.plan`, pure): usable slices, the 4D split, the order along the slice normal,
   the exact affine (:mod:`viewer.io.geometry`), the display order and the value type;
3. the pixels (:mod:`viewer.io.pixel_reader`): one preallocated array filled from the middle slice
   outwards, uncompressed slices read at their file offset, compressed ones decoded by a process pool.

:class:`SeriesLoader` ties them together: its constructor does steps 1 and 2 (no pixels), so a viewer has
the geometry and the typed description (:meth:`SeriesLoader.series_info`) at once; :meth:`SeriesLoader.load`
does step 3 and hands the middle slice to the ``first_slice`` callback before any other, and with
``on_slices`` the array while it is being filled, so a viewer can let the user scroll through what is
decoded.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from viewer.core.jobs import CancelCheck, Progress
from viewer.core.records import HeaderRecord, Stack
from viewer.core.series_info import SeriesInfo, SliceInfo, VolumeAxis, Window, span_windows
from viewer.core.volume import Volume
from viewer.io import decode_pool
# Re-exported: the app and the benchmarks start and stop the decoder pool through this module.
from viewer.io.decode_pool import shutdown_pool as shutdown_pool
from viewer.io.decode_pool import warm_pool as warm_pool
from viewer.io.errors import LoadError, reasons_not_crashes
from viewer.io.pixel_reader import POOL_MIN_FILES, FirstSlice, PixelReader, SlicesReady
from viewer.io.plan import Layout, PlannedSlice, SeriesPlan, make_plan
from viewer.io.rawread import read_header_dataset
from viewer.io.stack_headers import frame_group, number, read_first, read_slices, record_windows, voi_windows

#: A stack as the loader takes it: the scanner's Stack (its records spare a second header read) or paths.
StackArg = Stack | Sequence[str]


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
        The scanner's :class:`~viewer.core.records.HeaderRecord` of the files (``Stack.records``, or the
        index's rows), a sequence or a mapping by path. A file whose record still matches it (size and
        mtime_ns) and the first file's layout is not parsed again: position, rescale and the PixelData
        offset come from the record, and its pixels are read at that offset after checking the element
        header there. A file without a valid record is read by :func:`~viewer.io.headers.read_header`.

    Attributes
    ----------
    plan : SeriesPlan
        Every volume's slices in display order and affine (:mod:`viewer.io.plan`).
    reader : PixelReader
        The pixel reader of the selected volume.
    shape : tuple
        (z, y, x) or (z, y, x, 3).
    affine : numpy.ndarray
        4x4 voxel (i=column, j=row, k=slice) -> LPS mm.
    first_index : int
        The slice :meth:`load` decodes first: the middle one in display order.
    dtype : numpy.dtype
        int16, float32 or uint8 (colour).
    """

    @reasons_not_crashes
    def __init__(self, files: Sequence[str], *, series_uid: str = "", progress: Progress | None = None,
                 cancel: CancelCheck | None = None, decode_in_pool: bool = False,
                 records: Iterable[HeaderRecord] | Mapping[str, HeaderRecord] | None = None) -> None:
        files = [os.fspath(f) for f in files]
        recs: dict[str, HeaderRecord] = {}
        if records is not None:
            recs = dict(records) if isinstance(records, Mapping) else {r.path: r for r in records}
        self.decode_in_pool = decode_in_pool
        if not files:
            raise LoadError("no files to load")
        head = read_first(files[0])
        lay = head.layout
        if lay.compressed and (decode_in_pool or len(files) >= POOL_MIN_FILES):
            # The decoder processes start now and import their decoders while the headers are read
            # (a cold spawn costs ~0.3-1 s); load() asks for the same size and finds them ready.
            ncpu = os.cpu_count() or 1
            if ncpu > 1 or decode_in_pool:
                decode_pool.prestart_pool(ncpu if decode_in_pool else ncpu - 1)
        read_slices(head, files, recs, progress=progress, cancel=cancel)
        self.plan: SeriesPlan = make_plan(lay, head.slices, single_step=head.single_step,
                                          float_data=head.float_data,
                                          single_frame_files=head.single_frame_files, mosaic=head.mosaic)
        self.warnings: list[str] = head.warnings + self.plan.warnings
        self._first_ds = head.first
        self._first_path = head.first_path
        first = head.first
        self.series_uid = series_uid or str(first.get("SeriesInstanceUID", "") or "")
        self.modality = str(first.get("Modality", "") or "")
        self.volumes = len(self.plan.volumes)
        self.volume_index = 0
        self.reader = PixelReader(self.plan.volume(0), decode_in_pool=decode_in_pool)
        self._info: SeriesInfo | None = None
        self._volume_axis: VolumeAxis | None = None

    @property
    def layout(self) -> Layout:
        return self.plan.layout

    @property
    def items(self) -> list[PlannedSlice]:
        """The selected volume's slices, in display order."""
        return self.reader.plan.slices

    @property
    def affine(self) -> np.ndarray:
        return self.reader.plan.affine

    @property
    def shape(self) -> tuple[int, ...]:
        return self.reader.plan.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.reader.dtype

    @property
    def first_index(self) -> int:
        return self.reader.plan.first_index

    def select_volume(self, index: int) -> None:
        """Make volume ``index`` (0-based, of :attr:`volumes`) the one :meth:`load` and
        :meth:`read_slice` read."""
        if not 0 <= index < self.volumes:
            raise LoadError(f"volume {index} out of range: the series has {self.volumes} volume(s)")
        if index != self.volume_index:
            self.volume_index = index
            self.reader = PixelReader(self.plan.volume(index), decode_in_pool=self.decode_in_pool,
                                      shared_ok=self.reader.shared_ok)
            self._info = None

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
            for v, items in enumerate(self.plan.volumes):
                it = items[len(items) // 2]
                ds = cache.get(it.path)
                if ds is None:
                    ds = cache[it.path] = read_volume_header(it.path)
                # The functional groups of this slice's frame (frame 0 of a one-frame or mosaic file).
                frame = it.frame if it.frame is not None and int(number(ds.get("NumberOfFrames"), 1)) > 1 else 0
                infos.append(volume_info(v, ds, functools.partial(frame_group, ds, frame)))
            self._volume_axis = VolumeAxis(axis_kind(infos), tuple(infos))
        return VolumeAxis(self._volume_axis.kind, self._volume_axis.items, self.volume_index)

    def padding_value(self) -> float | None:
        """PixelPaddingValue in modality units (e.g. -3024 HU), or None."""
        pad = self._first_ds.get("PixelPaddingValue")
        if pad is None:
            return None
        v = int(pad if not isinstance(pad, (list, tuple)) else pad[0])
        if self.layout.signed and v >= 1 << 15:
            v -= 1 << 16  # US-encoded value of a signed image (PS3.3 C.7.5.1.1.2)
        it = self.items[0] if self.items else PlannedSlice("")
        val = v * it.slope + it.intercept
        return int(val) if float(val).is_integer() else float(val)

    def series_info(self) -> SeriesInfo:
        """The typed description of the series (cached): windows, per-slice files, numbers, positions.

        VOI windows: those of the slice shown first (:attr:`first_index`); whether slices carry
        different ones is read from every frame of a multi-frame file and, for single-frame series,
        from five slices spread over the stack (first, quartiles, middle, last), taken from their header
        records where these hold the window, else by parsing those files (a few ms each).
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
            wins: tuple[Window, ...] | None = None
            if head is None and k in sampled:
                if it.voi is not None:
                    wins = record_windows(it.voi)  # the scan read the window: no second parse
                else:
                    try:
                        head = headers[it.path] = read_header_dataset(it.path)
                    except Exception:  # noqa: BLE001 - a header read here only refines the window
                        head = None
            if wins is None:
                wins = voi_windows(head, it.frame) if head is not None else ()
            per_slice.append(wins[0] if wins else None)
            if k == self.first_index:
                shown = wins
        if not shown:
            shown = voi_windows(ds, 0)
        name = ds.get("PatientName")
        thickness = number(ds.get("SliceThickness"), 0.0)
        measures = frame_group(ds, 0, "PixelMeasuresSequence")
        if not thickness and measures is not None:
            thickness = number(measures.get("SliceThickness"), 0.0)
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
            series_number=int(number(ds.get("SeriesNumber"), 0)) if ds.get("SeriesNumber") not in (None, "") else None,
            slice_thickness=thickness or None, padding_value=self.padding_value(),
            pixel_spacing_source=self.layout.spacing_source,
            # False for images without ImageOrientationPatient (CR/DX/US/SC): orientation letters would lie.
            orientation_known=self.layout.orientation is not None,
            transfer_syntax=self.layout.transfer_syntax, bits_stored=self.layout.bits_stored,
            volumes_in_stack=self.volumes)
        return self._info


    @reasons_not_crashes
    def read_slice(self, k: int) -> np.ndarray:
        """Slice k (display order) in modality units, decoded alone (for previews)."""
        return self.reader.read_slice(k)

    @reasons_not_crashes
    def load(self, *, progress: Progress | None = None, cancel: CancelCheck | None = None,
             first_slice: FirstSlice | None = None, workers: int | None = None,
             volume: int | None = None, on_slices: SlicesReady | None = None) -> Volume:
        """Read all pixels of one volume into a new :class:`Volume`.

        Parameters
        ----------
        volume
            Which volume of a 4D stack (0-based; default: the selected one, see :meth:`select_volume`).
        progress, cancel, first_slice, workers, on_slices
            See :meth:`viewer.io.pixel_reader.PixelReader.read`. An exception raised by one of these
            callbacks reaches the caller as it was raised (a :class:`~viewer.core.jobs.Cancelled` as a
            cancel), never as a :class:`LoadError` about the files.
        """
        if volume is not None:
            self.select_volume(volume)
        array = self.reader.read(progress=progress, cancel=cancel, first_slice=first_slice, workers=workers,
                                 on_slices=on_slices)
        return self._volume(array)

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


# -- public entry points ----------------------------------------------------------------------------
def stack_loader(stack: StackArg, *, progress: Progress | None = None, cancel: CancelCheck | None = None,
                 decode_in_pool: bool = False) -> SeriesLoader:
    """The :class:`SeriesLoader` (headers read, no pixels) of a Stack or a list of paths."""
    if not isinstance(stack, Stack):
        return SeriesLoader(list(stack), progress=progress, cancel=cancel, decode_in_pool=decode_in_pool)
    # The scanner's records spare the loader a second read of every header.
    return SeriesLoader(stack.files, series_uid=stack.series_uid, progress=progress, cancel=cancel,
                        records=stack.records or None, decode_in_pool=decode_in_pool)


def _stack_warnings(stack: StackArg) -> list[str]:
    return list(stack.warnings) if isinstance(stack, Stack) else []


def load_stack(stack: StackArg, *, progress: Progress | None = None, cancel: CancelCheck | None = None,
               first_slice: FirstSlice | None = None, volume: int = 0) -> Volume:
    """Load a :class:`~viewer.core.records.Stack` (or a list of paths) into a :class:`Volume`.

    ``progress(done, total)`` counts the header pass and then the pixel pass (each 0..total).
    ``volume``: which volume of a 4D stack (see :func:`load_series`).
    """
    loader = stack_loader(stack, progress=progress, cancel=cancel)
    vol = loader.load(progress=progress, cancel=cancel, first_slice=first_slice, volume=volume)
    extra = _stack_warnings(stack)
    vol.warnings = extra + vol.warnings
    return vol


def iter_volumes(stack: StackArg, *, cancel: CancelCheck | None = None) -> Iterator[Volume]:
    """Every volume of a stack, one at a time (a 3D stack yields one): memory holds one volume, the
    headers are read once. Each :class:`Volume`'s ``volumes.index`` says which it is."""
    loader = stack_loader(stack, cancel=cancel)
    extra = _stack_warnings(stack)
    for v in range(loader.volumes):
        vol = loader.load(cancel=cancel, volume=v)
        vol.warnings = extra + vol.warnings
        yield vol


def select_stack(path_or_paths: Any, series: str | int | None = None, *, progress: Progress | None = None,
                 cancel: CancelCheck | None = None) -> Stack:
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
        return max(stacks, key=lambda s: max(s.frames, len(s.files)))
    try:
        picked = pick_series([s.series_uid for s in stacks], series)
    except SeriesNotFound as exc:
        raise LoadError(str(exc)) from None
    return max((stacks[i] for i in picked), key=lambda s: len(s.files))


def load_series(path_or_paths: Any, *, series: str | int | None = None, progress: Progress | None = None,
                cancel: CancelCheck | None = None, first_slice: FirstSlice | None = None,
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

