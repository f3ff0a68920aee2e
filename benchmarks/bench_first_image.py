"""Time from "series chosen" to its first image painted, in the real main window (offscreen).

For every CT series in ``<data>/ct`` (data: ``$VIEWER_TEST_DATA`` or ``../shared/data``):

- progressive: ``MainWindow.load_stack`` (the double-click path): headers and geometry on the pool, the
  middle slice decoded first and drawn, the rest streaming in; the clock stops when that first image has
  been painted (a synchronous ``repaint`` of the viewport after ``first_image_shown``);
- baseline "load all, then paint": the same series loaded whole (``viewer.io.load_stack``) and then
  drawn, the way a viewer without progressive loading shows it (measured in the same run).

Prints the median of several runs (the page cache is warm after the first, untimed, run), the ratio to
the baseline and to the 150 ms target. Usage: ``python benchmarks/bench_first_image.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import data_root  # noqa: E402

TARGET_MS = 150.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from viewer.app import build_main_window
    from viewer.io import load_stack
    from viewer.io.series import find_stacks

    root = data_root()
    tmp = tempfile.mkdtemp()
    window = build_main_window(settings_file=os.path.join(tmp, "settings.ini"))
    window.auto_open = False
    window.resize(1400, 900)
    window.show()
    app = QApplication.instance()
    slot = window.grid.slots[0]

    def pump_until(cond, timeout_s: float = 120.0) -> None:
        # A real event loop (it sleeps when idle), not a busy processEvents() loop that would take a
        # core and the GIL away from the loader the way no user session does.
        loop = QEventLoop()
        poll = QTimer()
        poll.setInterval(1)
        poll.timeout.connect(lambda: loop.quit() if cond() else None)
        poll.start()
        deadline = time.perf_counter() + timeout_s
        while not cond():
            loop.exec()
            if time.perf_counter() > deadline:
                raise TimeoutError("timed out")
        poll.stop()

    rows = []
    for series_dir in sorted(p for p in (root / "ct").iterdir() if p.is_dir()):
        result = find_stacks(str(series_dir))
        if not result.stacks:
            continue
        stack = max(result.stacks, key=lambda s: len(s.files))
        window.browser.stacks.clear()
        window.browser._add_stack(stack)
        key = next(iter(window.browser.stacks))

        def progressive_once() -> float:
            state = {"t": None, "loaded": False}

            def on_first(_i: int) -> None:
                slot.view.viewport().repaint()  # the first image is painted before the clock stops
                state["t"] = time.perf_counter()

            def on_loaded(_i: int) -> None:
                state["loaded"] = True

            window.first_image_shown.connect(on_first)
            window.series_loaded.connect(on_loaded)
            t0 = time.perf_counter()
            window.load_stack(key, 0)
            pump_until(lambda: state["t"] is not None)
            first = (state["t"] - t0) * 1000.0
            pump_until(lambda: state["loaded"])  # let the rest finish before the next run
            window.first_image_shown.disconnect(on_first)
            window.series_loaded.disconnect(on_loaded)
            return first

        def baseline_once() -> float:
            slot.view.set_volume(None)
            app.processEvents()
            t0 = time.perf_counter()
            vol = load_stack(stack)
            slot.view.set_volume(vol, vol.shape[0] // 2)
            slot.view.viewport().repaint()
            return (time.perf_counter() - t0) * 1000.0

        progressive_once(), baseline_once()  # warm the page cache and the decoder pool, untimed
        prog, base = [], []
        for _ in range(args.repeats):
            prog.append(progressive_once())
            base.append(baseline_once())
        p, b = statistics.median(prog), statistics.median(base)
        rows.append((series_dir.name, len(stack.files), p, b))

    print(f"{'series':32s} {'slices':>6s} {'first image ms':>15s} {'load-all ms':>12s} "
          f"{'ratio vs load-all':>18s} {'ratio vs 150 ms':>16s}")
    for name, n, p, b in rows:
        print(f"{name:32s} {n:6d} {p:15.1f} {b:12.1f} {p / b:18.2f} {p / TARGET_MS:16.2f}")
    worst = max(r[2] for r in rows)
    print(f"worst median first image: {worst:.1f} ms = {worst / TARGET_MS:.2f}x the {TARGET_MS:.0f} ms target "
          f"({'met' if worst < TARGET_MS else 'NOT met'}); medians of {args.repeats} warm runs")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
