"""``python -m viewer screenshot PATH --out FILE.png``: the main window a user sees, rendered to a PNG.

The command builds the real main window (``viewer.app.build_main_window``), indexes PATH, opens the
largest series (or ``--series``), waits until the volume and the browser's thumbnails are loaded, applies
``--slice`` / ``--preset`` / ``--window``, and saves ``window.grab()``. Without a display it renders with
Qt's offscreen platform; under Xvfb or a desktop it uses that display.

Exit status: 0 written; 1 the series could not be loaded (the PNG shows the error, as a user would see
it); 2 bad arguments (missing PATH, unknown preset, slice out of range, a model that is missing or does
not apply to the series). With ``--model ID`` the AI dock runs the model on the shown slice and the
screenshot shows its top-k labels (and, for ``roi`` models, the class map with its legend).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
WAIT_S = 180.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", nargs="+", help="folder, DICOM files or DICOMDIR")
    parser.add_argument("--out", required=True, help="image file to write; its format from the name (.png, .jpg or "
                        ".bmp)")
    parser.add_argument("--series", help="series to show: its SeriesInstanceUID, or its number N in the scan's "
                        "order, counted from 1 as the viewer counts series and images (series 1 is the "
                        "first `scan`/`info` lists; default: the series with the most images)")
    parser.add_argument("--slice", type=int, metavar="N", help="image to show: N is the number the viewport "
                        "shows as 'Im N/n', counted from 1 in display order (default: the middle image)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--preset", help="window preset name, e.g. lung, bone, 'soft tissue'")
    group.add_argument("--window", nargs=2, type=float, metavar=("W", "L"),
                       help="window width and level (center) in modality units (HU for CT)")
    parser.add_argument("--model", help="AI model id to run and overlay")
    parser.add_argument("--size", default="1600x1000", help="window size WIDTHxHEIGHT in pixels")
    parser.add_argument("--layout", default="1x1", choices=["1x1", "1x2", "2x2", "mpr"],
                        help="viewport layout (default 1x1)")


def _fail(message: str, code: int = 2) -> int:
    print(f"screenshot: {message}", file=sys.stderr)
    return code


def _model_problem(model_id: str) -> str | None:
    """Why ``--model model_id`` cannot be shown in the screenshot, or None when it can."""
    try:
        from viewer.ai.registry import ModelRegistry
    except ImportError:
        return "AI models are not available in this build (viewer.ai has no model registry yet)"
    try:
        ModelRegistry(check_onnx=False).get(model_id)
    except Exception as exc:  # noqa: BLE001 - ModelError (or a broken folder) names the problem
        return str(exc)
    return None


def _pump(app: object, until: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()  # type: ignore[attr-defined]
        if until():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False


#: --out file name extension -> Qt image format.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}


def run(args: argparse.Namespace) -> int:
    missing = [p for p in args.path if not os.path.exists(p)]
    if missing:
        return _fail("not found: " + ", ".join(missing))
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        return _fail(f"output folder does not exist: {out_dir}")
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        return _fail(f"--size must look like 1600x1000, got {args.size!r}")
    if not (200 <= width <= 16384 and 200 <= height <= 16384):
        return _fail(f"--size {width}x{height}: each side must be 200 to 16384 pixels")
    fmt = IMAGE_FORMATS.get(os.path.splitext(args.out)[1].lower())
    if fmt is None:
        return _fail(f"--out {args.out}: the format comes from the file name; use "
                     + ", ".join(sorted(IMAGE_FORMATS)))
    if args.model:
        reason = _model_problem(args.model)
        if reason:
            return _fail(f"--model {args.model}: {reason}")
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from viewer.app import build_main_window, make_application

    app = make_application()
    with tempfile.TemporaryDirectory() as tmp:
        window = build_main_window(settings_file=os.path.join(tmp, "settings.ini"))
        window.auto_open = args.series is None
        window.setFixedSize(width, height)  # exactly --size, whatever the widgets' size hints ask
        window.show()
        state = {"loaded": False, "error": None}
        window.series_loaded.connect(lambda _i: state.update(loaded=True))
        window.series_failed.connect(lambda _i, m: state.update(error=m))
        window.open_paths(list(args.path))
        browser = window.browser
        if not _pump(app, lambda: not browser.background.pending("scan"), WAIT_S):
            return _fail("timed out indexing " + ", ".join(args.path), 1)
        if not browser.stacks:
            return _fail("no loadable DICOM series in " + ", ".join(args.path), 1)
        if args.series is not None:
            from viewer.core.series_number import SeriesNotFound, pick_series

            order = browser.scan_order
            try:
                picked = pick_series([browser.stacks[k].series_uid for k in order], args.series)
            except SeriesNotFound as exc:
                return _fail(str(exc))
            window.load_stack(order[picked[0]], 0)
        _pump(app, lambda: state["loaded"] or state["error"] is not None, WAIT_S)
        _pump(app, lambda: not browser.is_busy(), WAIT_S)  # thumbnails, as a user would see them
        slot = window.grid.slots[0]
        code = 0
        if state["error"] is not None or slot.volume is None:
            print(f"screenshot: cannot load the series: {str(state['error']).splitlines()[0]}", file=sys.stderr)
            code = 1
        else:
            code = _apply_view(slot, args)
            if code:
                return code
            if args.model:
                code = _draw_model(app, window, args.model)
                if code:
                    return code
            if args.layout != "1x1":
                window.set_layout(args.layout)
        _pump(app, lambda: False, 0.2)  # let layouts and repaints settle
        image = window.grab()
        if not image.save(args.out, fmt):
            return _fail(f"could not write {args.out}", 1)
        print(f"wrote {args.out} ({image.width()}x{image.height()})")
        window.close()
        return code


def _draw_model(app: object, window: object, model_id: str) -> int:
    """Run ``model_id`` through the AI dock on the shown slice: top-k labels, and for ``roi`` models the
    class map, drawn on the viewport as a user would see them."""
    from viewer.ai.inference import ModelInference
    from viewer.ui.ai_panel import attach_ai_panel

    panel = attach_ai_panel(window, ModelInference())
    if not _pump(app, lambda: bool(panel.entries), WAIT_S):
        return _fail("timed out listing the AI models", 1)
    if not panel.select_model(model_id):
        item = panel.model_item(model_id)
        why = item.text().split("\n", 1)[-1].strip() if item is not None else "not listed"
        return _fail(f"--model {model_id}: {why}")
    results: dict[str, object] = {}
    panel.result_ready.connect(lambda kind, r: results.__setitem__(kind, r))
    panel.failed.connect(lambda kind, m: results.__setitem__("error", f"{kind}: {m}"))
    # An ROI model draws its class map (its scope); a whole-image model its top-k labels of the slice.
    if panel.manifest().applies_to.scope == "roi":
        kinds = ["classmap"]
        panel.class_map()
    else:
        kinds = ["slice"]
        panel.classify_slice()
    if not _pump(app, lambda: "error" in results or all(k in results for k in kinds), WAIT_S):
        return _fail(f"--model {model_id}: timed out running the model", 1)
    if "error" in results:
        return _fail(f"--model {model_id}: {str(results['error']).splitlines()[0]}", 1)
    return 0


def _apply_view(slot: object, args: argparse.Namespace) -> int:
    view = slot.view  # type: ignore[attr-defined]
    volume = slot.volume  # type: ignore[attr-defined]
    if args.slice is not None:
        n = volume.shape[0]
        if not 1 <= args.slice <= n:
            return _fail(f"--slice {args.slice} is outside 1..{n}: this series has {n} images, numbered "
                         "from 1 as the viewport shows them (Im 1/{n} to Im {n}/{n})".replace("{n}", str(n)))
        view.set_slice(args.slice - 1)  # the viewport's Im N is slice index N - 1
    if args.preset:
        from viewer.core.presets import find_preset

        try:
            preset = find_preset(args.preset, volume.modality or "CT")
        except KeyError as exc:
            return _fail(str(exc.args[0]))
        view.set_window(preset.center, preset.width)
    elif args.window:
        w, level = args.window
        if w <= 0:
            return _fail("--window width must be > 0")
        view.set_window(level, w)
    return 0
