"""The UI thread while the AI dock works: longest gap between 5 ms timer ticks on the main thread.

    nice python benchmarks/bench_ai_ui.py [--series PATH]

Opens the pancreas CT (../shared/data) in a SliceViewport with the AI dock (organ-ct, CPU), then measures
the event loop's longest stall in four phases: idle (the noise floor of this machine, the baseline),
scrolling with auto-classify on (a slice every 20 ms, debounced), whole-series classification, the
sliding-window class map and the occlusion heatmap. Prints each phase's longest and 99th-percentile gap
and its ratio to the idle floor. Target: no stall above 50 ms.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", default=str(REPO.parent / "shared" / "data" / "ct" / "pancreas-ct-philips-134"))
    args = ap.parse_args()
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from viewer.io import load_series
    from viewer.ai.inference import ModelInference
    from viewer.ui.ai_panel import AiPanel
    from viewer.ui.viewport import SliceViewport

    app = QApplication.instance() or QApplication([])
    vol = load_series(sorted(str(p) for p in Path(args.series).glob("*.dcm")))
    vp = SliceViewport()
    vp.resize(700, 700)
    vp.show()
    vp.set_volume(vol, vol.shape[0] // 2)
    panel = AiPanel(ModelInference(device="cpu"))
    panel.show()
    results: dict[str, int] = {}
    panel.result_ready.connect(lambda kind, _r: results.__setitem__(kind, results.get(kind, 0) + 1))
    clock = QElapsedTimer()
    gaps: list[float] = []
    last = [0.0]

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e6
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)

    def measure(start, done, seconds: float = 60.0) -> tuple[float, float]:
        gaps.clear()
        clock.start()
        last[0] = 0.0
        timer.start()
        start()
        end = time.monotonic() + seconds
        while time.monotonic() < end and not done():
            app.processEvents()
            time.sleep(0.001)
        timer.stop()
        g = np.asarray(gaps[1:] or [0.0])
        return float(g.max()), float(np.percentile(g, 99))

    measure(lambda: None, lambda: bool(panel.entries))
    panel.set_viewport(vp)
    panel.select_model("organ-ct")
    measure(panel.classify_slice, lambda: "slice" in results)  # session creation and warm-up
    phases = {"idle (baseline)": (lambda: None, None, 1.0)}
    t_end = [0.0]

    def scroll() -> None:
        panel.auto.setChecked(True)
        t_end[0] = time.monotonic() + 1.5
        step = QTimer(panel)
        step.setInterval(20)
        step.timeout.connect(lambda: vp.state.step_slice(1) if time.monotonic() < t_end[0] else step.stop())
        step.start()

    phases["scroll + auto-classify"] = (scroll, lambda: time.monotonic() > t_end[0] + 0.5, 5.0)
    phases["classify series"] = (panel.classify_series, lambda: "series" in results, 60.0)
    phases["class map"] = (panel.class_map, lambda: "classmap" in results, 60.0)
    phases["occlusion heatmap"] = (panel.occlusion, lambda: "occlusion" in results, 60.0)
    floor = None
    print(f"{'phase':26s} {'max gap ms':>10s} {'p99 ms':>8s} {'max/idle':>9s}")
    for name, (start, done, secs) in phases.items():
        t0 = time.perf_counter()
        mx, p99 = measure(start, done or (lambda: False), secs)
        wall = time.perf_counter() - t0
        floor = floor or max(mx, 1e-3)
        print(f"{name:26s} {mx:10.1f} {p99:8.1f} {mx / floor:9.2f}   ({wall:.2f} s)")
    print(f"results delivered: {results}")
    panel.background.wait_idle(30000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
