"""Composition root of the desktop application: QApplication, pyqtgraph options, pool, main window.

``run_app(argv)`` is what ``python -m viewer [PATH ...]`` / ``dicom-viewer`` calls; ``build_main_window``
is shared with the ``screenshot`` command and the tests so they see exactly the window a user sees.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from viewer.core.paths import RESOURCES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from PySide6.QtWidgets import QApplication

    from viewer.ai.results import Predictions
    from viewer.core.derived import DerivedOverlay
    from viewer.core.jobs import CancelCheck, Progress
    from viewer.core.pacs_records import Match, RetrieveResult, SeriesProgress
    from viewer.state.services import ExportSummary
    from viewer.ui.main_window import MainWindow
    from viewer.ui.pacs_dialog import PacsServices
    from viewer.ui.pacs_send import SendReport
    from viewer.ui.workers import IoServices

STYLE = RESOURCES / "style" / "dark.qss"


def make_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once), with pyqtgraph set to row-major (z, y, x) arrays."""
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "dicom-viewer", *(argv or [])])
        app.setApplicationName("dicom-viewer")
        app.setOrganizationName("dicom-viewer")
        app.setStyle("Fusion")
        # The icon of every window, and the .desktop entry the desktop matches them to (packaging/linux).
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(RESOURCES / "icons" / "dicom-viewer-256.png")))
        app.setDesktopFileName("dicom-viewer")
        if STYLE.is_file():
            app.setStyleSheet(STYLE.read_text(encoding="utf-8"))
    # Volumes are (z, y, x): row-major keeps pyqtgraph from transposing every slice it draws.
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    collect_garbage_on_the_main_thread()
    return app  # type: ignore[return-value]


_GC: Any = None


def collect_garbage_on_the_main_thread() -> Any:
    """Turn Python's automatic cycle collection off and run it from a timer on the main thread instead.

    The cycle collector runs in whichever thread happens to allocate. When a worker thread's allocation
    sets it off and it frees a dead cycle holding a Qt object, the C++ destructor runs on that worker: it
    takes Qt's object lock and then waits for the GIL, while the main thread, holding the GIL, waits for
    the same lock to delete a widget. A test run hung exactly so (worker: gc_collect_main ->
    QObject::~QObject -> Shiboken GilState::acquire; main: QObject::~QObject -> QBasicMutex::lockInternal).
    pyqtgraph's GarbageCollector collects on a QTimer, by generation, as the automatic collector would.
    Call it on the main thread once a QApplication exists; it returns the collector (one per process).
    """
    global _GC
    if _GC is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _GC = GarbageCollector(interval=0.5)
    return _GC


def io_services() -> IoServices:
    """The io functions the UI runs in the background (resolved when called, so ``--help`` stays fast)."""
    from viewer.ui.workers import IoServices

    def find_stacks(*args: Any, **kwargs: Any) -> Any:
        from viewer.io.series import find_stacks as impl

        # The persistent header index ($VIEWER_CACHE_DIR or ~/.cache/dicom-viewer): re-opening a folder
        # reads only new or changed files.
        kwargs.setdefault("index", True)
        return impl(*args, **kwargs)

    def load_series(*args: Any, **kwargs: Any) -> Any:
        import viewer.io

        return viewer.io.load_series(*args, **kwargs)

    def series_loader(*args: Any, **kwargs: Any) -> Any:
        from viewer.io.load import SeriesLoader

        # Compressed pixels are decoded in other processes only: decoders hold the GIL, and the UI
        # thread shares this process (a J2K series stalled the event loop ~150 ms when decoded here).
        kwargs.setdefault("decode_in_pool", True)
        return SeriesLoader(*args, **kwargs)

    def arriving_series() -> Any:
        from viewer.io.arriving import ArrivingSeries

        return ArrivingSeries(decode_in_pool=True)  # as series_loader: no decoder holds the UI's GIL

    return IoServices(find_stacks=find_stacks, load_series=load_series, series_loader=series_loader,
                      thumbnail=thumbnail_in_process, export_series=export_series, shutdown=shutdown_workers,
                      read_derived=read_derived, arriving_series=arriving_series, filter_volume=filter_volume)


def filter_volume(*args: Any, **kwargs: Any) -> Any:
    """A display filter on a whole volume for MPR: ``viewer.io.volume_filter.filter_volume`` (SimpleITK)."""
    from viewer.io.volume_filter import filter_volume as impl

    return impl(*args, **kwargs)


def export_series(files: list[str], out_dir: str, codec: str, *, deidentify: bool = False,
                  progress: Progress | None = None, cancel: CancelCheck | None = None) -> ExportSummary:
    """File > Export Series: ``viewer.io.export.export_series`` with this user's de-identification."""
    from viewer.io.export import export_series as impl

    transform = None
    if deidentify:
        from viewer.annotations.deid import Deidentifier, user_secret

        transform = Deidentifier(user_secret()).dataset
    return impl(files, out_dir, codec, transform=transform, rename=deidentify, progress=progress,
                cancel=cancel)




def read_derived(path: str) -> DerivedOverlay:
    """A DICOM SEG or SR file as an overlay record (highdicom stays below ui)."""
    from viewer.annotations.derived import read_derived as impl

    return impl(path)


def shutdown_workers() -> None:
    """End every worker process: the loader's decoder pool and the thumbnail decoder (window close, the
    end of every command). Nothing is started here; the next use starts them again."""
    global _DECODER
    pool = sys.modules.get("viewer.io.decode_pool")
    if pool is not None:
        pool.shutdown_pool()
    if _DECODER is not None:
        decoder, _DECODER = _DECODER, None
        decoder.shutdown(wait=True, cancel_futures=True)


_DECODER: Any = None


def _decoder_pool() -> Any:
    """One spawned process for thumbnails (compressed decoders hold the GIL; a thread would stall the UI)."""
    global _DECODER
    if _DECODER is None:
        import atexit
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _DECODER = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        atexit.register(_DECODER.shutdown, wait=False, cancel_futures=True)
    return _DECODER


def render_thumbnail(files: list[str], size: int) -> Any:
    """Load ``files`` and return the windowed uint8 thumbnail of the middle slice (runs in the decoder)."""
    import viewer.io
    from viewer.ui.workers import thumbnail_image

    return thumbnail_image(viewer.io.load_series(files), size)


# Start-up order (run_app): the first image of the series opened from the command line comes before the
# browser's thumbnails, whose decoder process (a Python start plus numpy/pydicom imports) would otherwise
# share the two cores with that first load. Set once the first image is shown or its load failed; None
# when nothing is held back (the screenshot command, tests). The wait has a limit, so a thumbnail is
# never held back for good.
_FIRST_IMAGE_DONE: threading.Event | None = None
THUMBNAILS_WAIT_AT_MOST_S = 10.0


def thumbnail_in_process(files: list[str], size: int) -> Any:
    """:func:`render_thumbnail` in the decoder process; the calling pool thread waits without the GIL."""
    global _DECODER
    from concurrent.futures.process import BrokenProcessPool

    if _FIRST_IMAGE_DONE is not None:
        _FIRST_IMAGE_DONE.wait(THUMBNAILS_WAIT_AT_MOST_S)
    try:
        return _decoder_pool().submit(render_thumbnail, list(files), int(size)).result()
    except BrokenProcessPool:
        # The decoder process died (killed, out of memory): start a new one next time, do this one here.
        _DECODER = None
        return render_thumbnail(list(files), int(size))


def build_main_window(paths: list[str] | None = None, *, settings_file: str | None = None) -> MainWindow:
    """Create the main window (and the QApplication if needed) and start opening ``paths``.

    ``settings_file`` stores recent folders and layout in that INI file instead of the user's settings
    (tests and headless commands must not touch a user's configuration).
    """
    make_application()
    from PySide6.QtCore import QSettings

    from viewer.ui.main_window import MainWindow
    from viewer.ui.settings import Settings
    from viewer.ui.workers import Background

    settings = Settings(QSettings(settings_file, QSettings.Format.IniFormat)) if settings_file else Settings()
    # Two pool threads: one scans or makes thumbnails while the other loads the series the user chose.
    background = Background(max_threads=max(2, min(4, os.cpu_count() or 2)))
    window = MainWindow(io_services(), background, settings)
    background.setParent(window)
    if paths:
        window.open_paths(paths)
    return window


def pacs_services() -> PacsServices:
    """The PACS dock's network functions (viewer.io.pacs), resolved when called."""
    from viewer.ui.pacs_dialog import PacsServices

    def nodes() -> list[tuple[str, str]]:
        from viewer.io.pacs.nodes import load_nodes, node_label

        return [(node_label(n), n.name or n.url) for n in load_nodes()]

    def find(node_text: str, ae: str, fields: dict[str, str], cancel: CancelCheck) -> Iterator[Match]:
        from viewer.io.pacs import dimse, parse_node, web
        from viewer.io.pacs.nodes import DimseNode
        from viewer.io.pacs.query import Query

        node, q = parse_node(node_text), Query(**fields)
        return dimse.find(node, q, ae, cancel=cancel) if isinstance(node, DimseNode) else web.find(node, q, cancel=cancel)

    def retrieve(node_text: str, ae: str, port: int, study_uid: str, series_uids: list[str] | None, *,
                 modalities: dict[str, str] | None = None,
                 progress: Callable[[SeriesProgress], None] | None = None,
                 on_stored: Callable[[Path, SeriesProgress], None] | None = None,
                 cancel: CancelCheck | None = None) -> RetrieveResult:
        from viewer.io.pacs import parse_node
        from viewer.io.pacs.retrieve import retrieve as impl

        return impl(parse_node(node_text), study_uid, series_uids, ae_title=ae, port=port, modalities=modalities,
                    progress=progress, on_stored=on_stored, cancel=cancel)

    def send(node_text: str, ae: str, paths: list[str], *, progress: Progress | None = None,
             cancel: CancelCheck | None = None) -> SendReport:
        from viewer.io.pacs import dimse, parse_node, web
        from viewer.io.pacs.nodes import DimseNode
        from viewer.ui.pacs_send import SendReport

        node = parse_node(node_text)
        if isinstance(node, DimseNode):
            sent, problems = dimse.send_files(node, ae, paths, progress=progress, cancel=cancel)
        else:
            sent, problems = web.send_files(node, paths, progress=progress, cancel=cancel)
        return SendReport(node.url, len(paths), sent, list(problems), sop_uids(paths))

    return PacsServices(nodes=nodes, find=find, retrieve=retrieve, send=send, write_ai_sr=write_ai_findings_sr)


def write_ai_findings_sr(out: str, slices: list[tuple[str, str, int]], predictions: Predictions) -> None:
    """Write a classifier's per-slice ``predictions`` (``viewer.ai.results.Predictions``, ``indices`` the
    slices) as the findings SR of the batch (``viewer.annotations.findings_sr``): ``slices[k]`` is slice k's
    (file, SOP Instance UID, 1-based frame). The UIDs derive from the images and the model, so sending
    the same findings twice replaces, not doubles, them in the PACS."""
    try:
        from viewer.annotations.findings_sr import Algorithm, ImageFinding, build_findings_sr, derived_uid
    except ImportError as exc:
        raise ValueError(f"this build cannot write AI results as DICOM SR ({exc})") from exc
    from viewer.core.atomic import write_atomically
    from viewer.io.rawread import read_header_dataset

    if predictions.indices is None:
        raise ValueError("these AI results are not per slice of a series; an SR cannot reference them")
    labels = list(predictions.labels)
    findings = []
    for i, (k, decided) in enumerate(zip((int(k) for k in predictions.indices), predictions.predicted_index)):
        _file, sop_uid, frame = slices[k]
        if not sop_uid:
            raise ValueError(f"slice {k + 1} has no SOP Instance UID; an SR cannot reference it")
        findings.append(ImageFinding(sop_uid, frame, labels[int(decided)],
                                     {lab: float(p) for lab, p in zip(labels, predictions.probabilities[i])}))
    files = list(dict.fromkeys(slices[int(k)][0] for k in predictions.indices))
    key = "|".join([predictions.model_id, predictions.model_version, predictions.decision,
                    *sorted(f.sop_uid for f in findings)])
    algo = Algorithm(predictions.model_id, predictions.model_version, predictions.model_name or predictions.model_id,
                     (predictions.decision,))
    ds = build_findings_sr([read_header_dataset(f) for f in files], findings, algo,
                           series_uid=derived_uid("viewer-ai-sr-series", key), sop_uid=derived_uid("viewer-ai-sr", key))
    write_atomically(out, lambda tmp: ds.save_as(str(tmp), enforce_file_format=True))


def sop_uids(paths: list[str]) -> list[str]:
    """SOP Instance UIDs of DICOM files ("" for a file without one), read by the scanner's header walker."""
    from viewer.io.headers import read_header

    return [read_header(p).sop_uid for p in paths]


def warm_decoder_pool() -> None:
    """Spawn the loader's decoder processes (and their imports) ahead of the first compressed series."""
    from viewer.io.load import warm_pool

    warm_pool()


def display_problem(env: dict[str, str] | None = None) -> str | None:
    """One sentence when the desktop app cannot show a window here (Linux/BSD without X11 or Wayland and no
    QT_QPA_PLATFORM chosen), instead of Qt aborting with a core dump; None when it can."""
    env = dict(os.environ) if env is None else env
    if not sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) or env.get("QT_QPA_PLATFORM"):
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return ("no display: DISPLAY and WAYLAND_DISPLAY are not set. Run it in a desktop session (or under "
            "xvfb-run), or use the headless commands: python -m viewer --help")


def open_when_painted(window: MainWindow, paths: list[str]) -> None:
    """Open ``paths`` once the window has painted itself (at the latest after a second).

    Started earlier, the scan's pool thread (pydicom's import, header parsing) shares the GIL with the
    main thread while it builds and paints the window, and the window comes up later; the scan then
    waits only for that first paint.
    """
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QWidget

    app = QApplication.instance()

    class FirstPaint(QObject):
        done = False

        def open(self) -> None:
            if not self.done:
                self.done = True
                app.removeEventFilter(self)  # type: ignore[union-attr]
                window.open_paths(paths)

        def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
            if (not self.done and event.type() == QEvent.Type.Paint and isinstance(obj, QWidget)
                    and obj.window() is window):
                QTimer.singleShot(0, self.open)  # after this paint (and the rest of this frame's) is done
            return False

    opener = FirstPaint(window)
    app.installEventFilter(opener)  # type: ignore[union-attr]
    QTimer.singleShot(1000, opener.open)


def run_app(argv: list[str]) -> int:
    """Run the desktop application; ``argv`` holds the paths to open (folders, files, a DICOMDIR)."""
    parser = argparse.ArgumentParser(prog="dicom-viewer", description="DICOM viewer with embedded AI.")
    parser.add_argument("paths", nargs="*", help="folders, DICOM files or a DICOMDIR to open")
    parser.add_argument("--results", metavar="RESULTS.parquet",
                        help="batch inference results (python -m viewer batch infer): mark series with their stored "
                        "labels and show stored predictions without re-running")
    args = parser.parse_args(argv)
    missing = [p for p in args.paths + ([args.results] if args.results else []) if not os.path.exists(p)]
    if missing:
        print("dicom-viewer: not found: " + ", ".join(missing), file=sys.stderr)
        return 2
    problem = display_problem()
    if problem:
        print(f"dicom-viewer: {problem}", file=sys.stderr)
        return 1
    global _FIRST_IMAGE_DONE
    _FIRST_IMAGE_DONE = threading.Event()  # see thumbnail_in_process
    app = make_application()
    from PySide6.QtCore import QTimer

    window = build_main_window()  # args.paths are opened once the window is on screen (open_when_painted)
    if os.environ.get("VIEWER_STARTUP_REPORT"):  # benchmarks/bench_startup.py: print start-up moments, quit
        from viewer.ui.startup_probe import attach_startup_probe

        attach_startup_probe(window, os.environ["VIEWER_STARTUP_REPORT"])
    from viewer.ai.inference import ModelInference  # lists manifests; ONNX Runtime comes with the first run
    from viewer.ui.ai_panel import attach_ai_panel
    from viewer.ui.label_panel import attach_label_panel, offer_ai_suggestions

    inference = ModelInference()  # one listing and one session cache for the AI, Evaluation and Filter docks
    labels = attach_label_panel(window, inference=inference)
    ai_panel = attach_ai_panel(window, inference)
    offer_ai_suggestions(labels, ai_panel)
    from viewer.ui.pacs_dialog import attach_pacs_dock

    attach_pacs_dock(window, pacs_services())
    if args.results:
        from viewer.ui.batch_results import attach_batch_results

        try:
            from viewer.batch.stored import read_stored
        except ImportError as exc:  # the desktop build leaves the batch stack (pyarrow) out: say so, open anyway
            window.statusBar().showMessage(f"Cannot read batch results: this build has no batch support ({exc}); "
                                           "pip install dicom-viewer for it")
        else:
            attach_batch_results(window, args.results, read_stored, ai_panel)
    window.resize(1400, 900)
    window.show()
    if args.paths:
        open_when_painted(window, args.paths)
    # Start the decoder processes off the UI thread, so a later compressed series does not pay their
    # spawn; but only once the first image is on screen (or soon after start when there is none to wait
    # for): spawning them with their imports costs seconds of CPU that the first load needs on 2 cores.
    # A compressed first series starts the pool itself when it needs it.
    def warm_once() -> None:
        global _FIRST_IMAGE_DONE
        if _FIRST_IMAGE_DONE is not None and not _FIRST_IMAGE_DONE.is_set():
            _FIRST_IMAGE_DONE.set()
            window.background.submit("warm-decoders", lambda _ctx: warm_decoder_pool())

    if args.paths:
        window.first_image_shown.connect(warm_once)
        window.series_failed.connect(warm_once)
        QTimer.singleShot(int(THUMBNAILS_WAIT_AT_MOST_S * 1000), warm_once)
    else:
        QTimer.singleShot(2000, warm_once)
    return int(app.exec())
