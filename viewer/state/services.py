"""The services the application model and the widgets use, as Protocols: scanning, loading, thumbnails,
inference.

The implementations live below (``viewer.io``: ``find_stacks``, ``SeriesLoader``, ``load_series``) and are
handed in by the composition root (``viewer.app.io_services``) as an :class:`IoServices`; ``ui`` never
imports ``io`` (pydicom stays there) and never guesses a function's arguments: each Protocol states them.
Cancellation is :class:`viewer.core.jobs.Cancelled` everywhere; jobs run on a
:class:`viewer.core.jobs.Executor`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

# The model records, typed and importing no onnxruntime (viewer.ai imports it only to run a network);
# re-exported for the widgets that show them.
from viewer.ai.manifest import Manifest as Manifest
from viewer.ai.catalog import ModelEntry as ModelEntry
from viewer.ai.results import ClassMap as ClassMap
from viewer.ai.results import ModelRun as ModelRun
from viewer.ai.results import OcclusionMap as OcclusionMap
from viewer.ai.results import Predictions as Predictions
from viewer.core.derived import DerivedOverlay
from viewer.core.jobs import CancelCheck, Progress
from viewer.core.records import HeaderRecord
from viewer.core.series_info import SeriesInfo
from viewer.core.volume import Volume


class SeriesSource(Protocol):
    """One loadable stack the scanner found (:class:`viewer.core.records.Stack`): what the browser lists."""

    series_uid: str
    files: list[str]
    modality: str
    description: str
    warnings: list[str]
    split_reason: str | None
    split_label: str | None  # what tells a split stack from its siblings, or "4D: 6 time points"
    volumes: int  # volumes of a 4D stack as the scan sees them (1: 3D)
    patient_id: str
    patient_name: str
    study_uid: str
    study_date: str
    study_description: str
    series_number: str
    series_date: str
    # The scanner's header record of each of ``files``: the loader reads them instead of the headers.
    records: Sequence[HeaderRecord]


class ScanResultLike(Protocol):
    """What a scan returns (:class:`viewer.core.records.ScanResult`)."""

    @property
    def stacks(self) -> Sequence[SeriesSource]: ...

    bad_files: list[tuple[str, str]]
    non_image: list[tuple[str, str]]
    cancelled: bool


class Scanner(Protocol):
    def __call__(self, paths: list[str], *, progress: Progress | None = ..., cancel: CancelCheck | None = ...,
                 on_stack: Callable[[Any], None] | None = ...) -> ScanResultLike: ...


class SeriesLoaderLike(Protocol):
    """Headers and geometry of a stack read; pixels on :meth:`load` (``viewer.io.load.SeriesLoader``)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    affine: np.ndarray
    modality: str
    series_uid: str
    first_index: int

    def series_info(self) -> SeriesInfo: ...

    def read_slice(self, k: int) -> np.ndarray: ...

    def load(self, *, progress: Progress | None = ..., cancel: CancelCheck | None = ...,
             volume: int | None = ...,
             on_slices: Callable[[np.ndarray, list[int]], None] | None = ...) -> Volume:
        """``on_slices(volume_array, ks)``: slices ks of the array being filled hold their values (scroll
        while decoding); a new array means the load started over."""
        ...


class LoaderFactory(Protocol):
    def __call__(self, files: list[str], *, series_uid: str = ..., progress: Progress | None = ...,
                 cancel: CancelCheck | None = ..., records: Sequence[HeaderRecord] | None = ...) -> SeriesLoaderLike: ...


class SeriesLoad(Protocol):
    def __call__(self, paths: list[str], *, progress: Progress | None = ...,
                 cancel: CancelCheck | None = ..., volume: int = ...) -> Volume: ...


Thumbnailer = Callable[[list[str], int], np.ndarray]


class ArrivedLike(Protocol):
    """What has arrived of a series being retrieved (``viewer.io.arriving.Arrived``)."""

    @property
    def volume(self) -> Volume: ...

    @property
    def ready(self) -> np.ndarray: ...  # bool per slice: it holds its values (else blank until stored)

    @property
    def arrived(self) -> int: ...

    @property
    def total(self) -> int: ...


class ArrivingSeriesLike(Protocol):
    """Decodes instances as they are stored; snapshots the growing volume (``viewer.io.arriving``)."""

    problems: list[str]

    def __len__(self) -> int: ...  # instances decoded so far

    def add(self, paths: str | Sequence[str]) -> int: ...  # how many joined

    def snapshot(self, total: int = ...) -> ArrivedLike | None: ...

    def whole(self, loader: SeriesLoaderLike) -> Volume | None:
        """The loader's whole volume made of the arrived slices, or None (then ``loader.load()``)."""
        ...


class ExportSummary(Protocol):
    """What an export reports (``viewer.io.export.ExportReport``)."""

    def summary(self) -> str:
        """One line for the status bar: files, ratio, speed."""
        ...


class SeriesExport(Protocol):
    def __call__(self, files: list[str], out_dir: str, codec: str, *, deidentify: bool = ...,
                 progress: Progress | None = ..., cancel: CancelCheck | None = ...) -> ExportSummary: ...


@dataclass(frozen=True)
class IoServices:
    """The io functions the application runs in the background, injected by ``viewer.app``.

    ``find_stacks`` scans folders/files/DICOMDIRs (``on_stack`` hands each stack over as it is found);
    ``load_series`` loads files into a Volume; ``series_loader`` reads headers and geometry first, then
    decodes the middle slice before the rest (a preview at once); ``thumbnail(files, size)`` renders a
    windowed uint8 thumbnail (in a separate process in the app).
    """

    find_stacks: Scanner
    load_series: SeriesLoad
    series_loader: LoaderFactory | None = None
    thumbnail: Thumbnailer | None = None
    # Reads a DICOM SEG or SR file into an overlay record (viewer.annotations.derived.read_derived).
    read_derived: Callable[[str], DerivedOverlay] | None = None
    # Ends every worker process the services started (decoder pools); called when the window closes.
    shutdown: Callable[[], None] | None = None
    # ``export_series(files, out_dir, codec, *, deidentify, progress, cancel)`` -> a report with
    # ``summary()`` (``viewer.io.export``; the app adds the de-identification): File > Export Series.
    export_series: SeriesExport | None = None
    # ``filter_volume(array, spacing, display_filter, *, progress, cancel)`` -> float32 (z, y, x): a
    # display filter in 3-D with true spacing, for MPR (``viewer.io.volume_filter``, SimpleITK).
    filter_volume: Callable[..., np.ndarray] | None = None
    # A new ``viewer.io.arriving.ArrivingSeries``: a series shown while a PACS retrieve stores it.
    arriving_series: Callable[[], ArrivingSeriesLike] | None = None


class Inference(Protocol):
    """Running the models (implemented by ``viewer.ai.inference.ModelInference``, in the one layer that may
    import ONNX Runtime; the composition root hands it to the docks).

    Listing and applicability read manifests only: the network runtime is started by the first run, on
    whatever thread runs it (a worker: creating a session takes from milliseconds to seconds). Slices are
    0-based z of the volume; boxes ``(row0, col0, row1, col1)`` pixels, half-open. Runs poll ``cancel`` and
    raise :class:`viewer.core.jobs.Cancelled`; ``progress(done, total)`` counts images or windows.
    """

    def models(self) -> Sequence[ModelEntry]:
        """Every model folder found, usable (``entry.manifest``) or not (``entry.error``)."""
        ...

    def applicability(self, manifest: Manifest, volume: Volume) -> tuple[bool, str]:
        """Whether the model is meant for ``volume``, and why not (or the warning to show with its results)."""
        ...

    def classify_slices(self, manifest: Manifest, volume: Volume, slices: Sequence[int] | None = None, *,
                        progress: Progress | None = None,
                        cancel: CancelCheck | None = None) -> ModelRun[Predictions]:
        """Whole slices ``slices`` (default all) of ``volume``."""
        ...

    def classify_box(self, manifest: Manifest, volume: Volume, k: int, box: tuple[int, int, int, int], *,
                     cancel: CancelCheck | None = None) -> ModelRun[Predictions]: ...

    def class_map(self, manifest: Manifest, volume: Volume, k: int, *, progress: Progress | None = None,
                  cancel: CancelCheck | None = None) -> ModelRun[ClassMap]:
        """The model's window slid over slice ``k`` (models of scope ``roi``)."""
        ...

    def occlusion(self, manifest: Manifest, volume: Volume, k: int, *, progress: Progress | None = None,
                  cancel: CancelCheck | None = None) -> ModelRun[OcclusionMap]:
        """Occlusion sensitivity of slice ``k`` for the model's top class."""
        ...

    def image_to_image(self, manifest: Manifest, images: np.ndarray, *, progress: Progress | None = None,
                       cancel: CancelCheck | None = None) -> np.ndarray:
        """An image-to-image model (a denoiser) on (N, rows, columns) images in modality units."""
        ...
