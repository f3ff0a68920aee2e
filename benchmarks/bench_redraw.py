"""Redraw time of the slice viewport after a slice change and during a window drag.

Prints medians (ms) and ratios against baselines measured in the same run, offscreen, each redraw
forced to a real paint (``viewport().repaint()``, checked by counting paints):

- like for like, at the same image size as ours (512^2 and 1024^2, the same CT slices):
  ``uint16 + LUT``: a plain ``ImageItem`` fed the slice as uint16 with levels and a 256-entry LUT (the
  product document's kind of baseline), and ``raw int16 + levels``: an ``ImageItem`` fed the same int16
  slice with levels (pyqtgraph's slow path);
- for reference only, not like for like: the product document's ``uint16 + LUT 4096^2`` (about 50 ms on
  a workstation), 64 times the pixels of a 512^2 slice.

Targets: 512^2 <= 5 ms, 1024^2 <= 15 ms. Run: ``python benchmarks/bench_redraw.py [--repeats N]``.
Uses the real CT in ../shared/data when present, else a synthetic int16 volume.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402

from viewer.core.volume import Volume  # noqa: E402

VIEW_PX = 800  # the widget is 800 x 800 for every case, so only the image size differs


def ct_volume(size: int) -> Volume:
    """512^2 real CT slices (or synthetic), upsampled by repetition to ``size``^2."""
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct" / "pancreas-ct-philips-134"
    arr = None
    if data.is_dir():
        try:
            from viewer.io import load_series

            arr = load_series(str(data)).array[40:80]
        except Exception as exc:  # a benchmark must still run without the loader
            print(f"(real CT not loaded: {exc}; using a synthetic volume)")
    if arr is None:
        rng = np.random.default_rng(0)
        arr = rng.integers(-1024, 2000, size=(40, 512, 512)).astype(np.int16)
    rep = size // arr.shape[1]
    if rep > 1:
        arr = np.repeat(np.repeat(arr, rep, axis=1), rep, axis=2)
    aff = np.diag([0.7, 0.7, 3.0, 1.0])
    return Volume(np.ascontiguousarray(arr), aff, modality="CT")


def timed(fn, repeats: int) -> float:
    for _ in range(3):  # warm caches (LUTs, QImage buffers)
        fn(0)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i + 1)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def bench_viewport(app, vol: Volume, repeats: int) -> tuple[float, float]:
    from viewer.ui.viewport import SliceViewport

    vp = SliceViewport()
    vp.resize(VIEW_PX, VIEW_PX)
    vp.show()
    app.processEvents()
    vp.set_volume(vol)
    app.processEvents()
    paints = [0]
    orig = vp.drawForeground

    def counting(painter, rect):
        paints[0] += 1
        orig(painter, rect)

    vp.drawForeground = counting  # type: ignore[method-assign]
    n = vol.shape[0]

    def slice_change(i: int) -> None:
        vp.state.set_slice(i % n)
        vp.viewport().repaint()

    def window_drag(i: int) -> None:
        vp.state.image.set_window(40 + (i % 50), 400 + 2 * (i % 50))
        vp.viewport().repaint()

    before = paints[0]
    t_slice = timed(slice_change, repeats)
    t_window = timed(window_drag, repeats)
    assert paints[0] - before >= 2 * repeats, "repaint() did not paint"
    vp.close()
    return t_slice, t_window


def bench_plain_item(app, image_for, levels, lut, repeats: int) -> float:
    view = pg.GraphicsView()
    vb = pg.ViewBox(lockAspect=True, invertY=True)
    view.setCentralItem(vb)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    view.resize(VIEW_PX, VIEW_PX)
    view.show()
    item.setImage(image_for(0), levels=levels, lut=lut, autoLevels=False)
    vb.autoRange(padding=0)
    app.processEvents()

    def redraw(i: int) -> None:
        item.setImage(image_for(i), levels=(levels[0] + i % 50, levels[1] + 2 * (i % 50)), lut=lut, autoLevels=False)
        view.viewport().repaint()

    t = timed(redraw, repeats)
    view.close()
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args()
    pg.setConfigOptions(imageAxisOrder="row-major")
    app = pg.mkQApp()
    lut = pg.colormap.get("CET-L1").getLookupTable(nPts=256) if hasattr(pg, "colormap") else None

    rng = np.random.default_rng(1)
    big = [rng.integers(0, 4096, size=(4096, 4096)).astype(np.uint16) for _ in range(2)]
    t_base = bench_plain_item(app, lambda i: big[i % 2], (1000.0, 3000.0), lut, max(5, args.repeats // 4))
    print(f"reference (not like for like) pyqtgraph ImageItem uint16+LUT 4096^2: {t_base:8.2f} ms")

    for size, target in ((512, 5.0), (1024, 15.0)):
        vol = ct_volume(size)
        t_raw = bench_plain_item(app, lambda i, v=vol: v.array[i % v.shape[0]], (-160.0, 240.0), None, args.repeats)
        u16 = np.clip(vol.array.astype(np.int32) + 1024, 0, 65535).astype(np.uint16)  # same slices, as uint16
        t_u16 = bench_plain_item(app, lambda i, a=u16: a[i % a.shape[0]], (864.0, 1264.0), lut, args.repeats)
        t_slice, t_window = bench_viewport(app, vol, args.repeats)
        print(f"\n{size}x{size} (widget {VIEW_PX}x{VIEW_PX}, median of {args.repeats})")
        print(f"  baseline uint16 + LUT ImageItem, {size}^2:      {t_u16:8.2f} ms")
        print(f"  baseline raw int16 + levels ImageItem, {size}^2: {t_raw:8.2f} ms")
        for name, t in (("slice change", t_slice), ("window drag", t_window)):
            print(
                f"  SliceViewport {name:13s}             {t:8.2f} ms   target <= {target:g} ms: "
                f"{'OK' if t <= target else 'MISSED'}   "
                f"x{t_u16 / t:5.2f} vs uint16+LUT, x{t_raw / t:5.2f} vs raw int16 (both {size}^2)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
