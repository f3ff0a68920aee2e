"""The denoiser as a display filter: time to the filtered slice, the UI thread meanwhile, and the cache.

    nice python benchmarks/bench_denoise_view.py [--series PATH] [--slices N]

On the CT series ct-denoise never saw in training (../shared/data), in a SliceViewport with the shipped
ct-denoise as its display filter:

- **filtered slice on screen**: from a slice change to the denoised slice drawn (worker, tiles, blend,
  redraw), against ``run_tiled`` on the same slice called directly in this process (the baseline);
- **UI thread**: the longest gap between 5 ms timer ticks while slices are denoised, against idle;
- **scrolling back**: a slice change to a slice already denoised (the cache), against a slice change with
  no filter at all (the plain redraw);
- **MPR volume filters**: SimpleITK 3-D median, Gaussian and curvature flow on the whole series, against
  the 2-D numpy filter of every slice (the same reach).
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

from benchmarks._common import EventLoopGaps, data_root, machine, median_time  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", default=str(data_root() / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom"))
    ap.add_argument("--slices", type=int, default=6, help="slices denoised in the timed phase")
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    import viewer.ai
    from viewer.core.filters import DisplayFilter
    from viewer.io import load_series
    from viewer.io.volume_filter import filter_volume
    from viewer.ui.display_filter import image_to_image_models
    from viewer.ui.viewport import SliceViewport

    app = QApplication.instance() or QApplication([])
    vol = load_series(args.series)
    from viewer.ai.inference import ModelInference

    (model,) = [m for m in image_to_image_models(ModelInference()) if m.manifest.id == "ct-denoise"]
    vp = SliceViewport()
    vp.resize(700, 700)
    vp.show()
    start = max(0, vol.shape[0] // 2 - args.slices // 2)
    vp.set_volume(vol, start)
    print(f"{machine()}; {args.series}: {vol.shape[0]} slices of {vol.shape[1]}x{vol.shape[2]}")

    gaps = EventLoopGaps()

    def pump_until(done, seconds: float = 600.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not done():
            app.processEvents()
            time.sleep(0.0005)

    def watched(run) -> tuple[float, float]:
        gaps.start()
        run()
        g = np.asarray(gaps.stop())
        return float(g.max()), float(np.percentile(g, 99))

    idle = watched(lambda: pump_until(lambda: False, 6.0))  # about as long as the denoising phase
    vp.display_filter.set_filter(model)
    pump_until(lambda: vp.display_filter.ready)  # session created and warmed up, first slice

    per_slice: list[float] = []

    def denoise_slices() -> None:
        for k in range(start + 1, start + 1 + args.slices):
            t = time.perf_counter()
            vp.set_slice(k)
            pump_until(lambda: vp.display_filter.ready)
            per_slice.append(time.perf_counter() - t)

    busy = watched(denoise_slices)
    session = viewer.ai.ModelSession.get(model.manifest, "auto")
    direct = median_time(lambda: viewer.ai.run_tiled(session, vol.array[start:start + 1]), 3)
    viewer_ms = float(np.median(per_slice)) * 1000
    print(f"denoised slice on screen: {viewer_ms:.0f} ms median of {len(per_slice)}; run_tiled direct "
          f"{direct * 1000:.0f} ms; ratio {viewer_ms / (direct * 1000):.2f}x")
    print(f"UI thread, longest gap / p99: idle {idle[0]:.1f} / {idle[1]:.1f} ms; while denoising "
          f"{busy[0]:.1f} / {busy[1]:.1f} ms ({busy[0] / max(idle[0], 1e-3):.2f}x idle)")

    def back_and_forth(filtered: bool) -> float:
        vp.display_filter.set_filter(model if filtered else None)
        a, b = start + 1, start + 2

        def flip() -> None:
            vp.set_slice(b if vp.slice_index == a else a)
            assert not filtered or vp.display_filter.ready  # a cache hit: drawn without the worker

        vp.set_slice(a)
        return median_time(flip, 50)

    cached, plain = back_and_forth(True), back_and_forth(False)
    print(f"slice change to a denoised slice already seen: {cached * 1000:.2f} ms; with no filter "
          f"{plain * 1000:.2f} ms; ratio {cached / plain:.2f}x")

    spacing = vol.spacing
    for f in (DisplayFilter("median", 1), DisplayFilter("gaussian", 1.0), DisplayFilter("bilateral", 1.5)):
        t3 = median_time(lambda: filter_volume(vol.array, spacing, f), 1)
        t2 = median_time(lambda: f.apply(vol.array), 1)
        print(f"MPR volume {f.name:9s}: SimpleITK 3-D {t3:.2f} s; numpy 2-D every slice {t2:.2f} s; "
              f"ratio {t3 / t2:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
