"""Render the screenshot set of README and the docs from the real main window on the shared CT data.

    xvfb-run -a python resources/screenshots/render.py        (or QT_QPA_PLATFORM=offscreen)

Writes, next to this file: ``1x1.png`` (a chest CT, lung window, with a measurement), ``2x2.png`` (four
series, the active viewport outlined), ``mpr.png`` (the MPR of the chest CT at the slice read) and
``labels-seg.png`` (the labels dock with a DICOM SEG drawn over its source series), ``denoise-split.png``
(the denoiser ct-denoise in the split view, original left, on the CT series it never saw in training)
and ``mpr-filter.png`` (the MPR with a 3-D Gaussian display filter). Names on the command line render
only those (``render.py denoise-split mpr-filter``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DATA = Path(os.environ.get("VIEWER_TEST_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))
# The scan index and user configuration of a rendering live in a throw-away folder.
_TMP = tempfile.mkdtemp(prefix="viewer-shots-env-")
for _var in ("VIEWER_CACHE_DIR", "VIEWER_DATA_DIR", "VIEWER_CONFIG_DIR"):
    os.environ.setdefault(_var, os.path.join(_TMP, _var.lower()))


def pump(app: object, until: object, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()  # type: ignore[attr-defined]
        if until():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise TimeoutError("the window did not get there in time")


def main(only: list[str]) -> int:
    import numpy as np
    import pydicom

    from viewer.annotations.seg import Segment, write_seg
    from viewer.app import build_main_window, make_application
    from viewer.state.measurements import Measurement
    from viewer.ui.label_panel import attach_label_panel

    from viewer.annotations.store import LabelStore

    app = make_application()
    tmp = tempfile.mkdtemp(prefix="viewer-shots-")
    window = build_main_window(settings_file=os.path.join(tmp, "settings.ini"))
    labels = attach_label_panel(window, LabelStore(os.path.join(tmp, "labels.sqlite")))  # never the user's
    window.resize(1600, 1000)
    window.show()
    window.auto_open = False
    window.open_paths([str(DATA / "ct"), str(DATA / "dcm_qa" / "sag" / "In" / "2_gre_field_mapping")])
    pump(app, lambda: not window.browser.background.pending("scan") and window.browser.scan_order)
    stacks = window.browser.stacks
    by_size = {len(s.files): k for k, s in stacks.items()}
    loaded: list[int] = []
    window.series_loaded.connect(loaded.append)

    def load(key: str, idx: int) -> None:
        n = len(loaded)
        window.load_stack(key, idx)
        pump(app, lambda: len(loaded) > n)

    def settle() -> None:
        pump(app, lambda: not window.browser.is_busy())
        end = time.monotonic() + 0.4
        pump(app, lambda: time.monotonic() > end)

    def wanted(name: str) -> bool:
        return not only or name in only

    written: list[str] = []

    def save(name: str) -> None:
        window.grab().save(str(HERE / f"{name}.png"))
        written.append(name)

    if only:
        _filters(app, window, by_size, load, settle, save, only)
        for name in written:
            print(f"wrote {HERE / (name + '.png')}")
        window.close()
        return 0

    # 1x1: chest CT, lung window, a distance measurement.
    load(by_size[100], 0)
    view = window.grid.slots[0].view
    view.set_slice(55)
    view.set_window(-600.0, 1500.0)
    p0, p1 = view.state.point_to_lps(180, 140), view.state.point_to_lps(180, 230)
    view.state.image.add_measurement(Measurement("distance", [tuple(p0), tuple(p1)], plane="acquired", slice_index=55))
    settle()
    window.grab().save(str(HERE / "1x1.png"))

    # 2x2: four series, the third viewport active.
    window.set_layout("2x2")
    load(by_size[134], 1)
    load(by_size[20], 2)
    load(by_size[5], 3)
    window.grid.set_active(2)
    settle()
    window.grab().save(str(HERE / "2x2.png"))

    # MPR of the chest CT at the slice read.
    window.set_layout("1x1")
    window.grid.set_active(0)
    window.set_layout("mpr")
    settle()
    window.grab().save(str(HERE / "mpr.png"))
    window.set_layout("1x1")

    # Labels with a SEG over its source series (the pancreas CT, a region drawn on three images).
    load(by_size[134], 0)
    vol = window.grid.slots[0].volume
    sources = [pydicom.dcmread(s.file, stop_before_pixels=True) for s in vol.info.slices]
    z, y, x = vol.shape
    mask = np.zeros((z, y, x), dtype=bool)
    rr, cc = np.ogrid[:y, :x]
    for k in (66, 67, 68):
        mask[k] = ((rr - 300) / 45.0) ** 2 + ((cc - 330) / 70.0) ** 2 <= 1.0
    seg_path = os.path.join(tmp, "seg.dcm")
    write_seg(seg_path, sources, [Segment("region of interest", mask, "#33cc66")], series_description="Demo SEG")
    done: list[object] = []
    window.derived_opened.connect(done.append)
    window.open_derived(seg_path)
    pump(app, lambda: bool(done))
    labels.set_label_set("Normal / abnormal")
    labels.dock.raise_()
    window.grid.slots[0].view.set_slice(67)
    settle()
    window.grab().save(str(HERE / "labels-seg.png"))
    written.extend(["1x1", "2x2", "mpr", "labels-seg"])
    _filters(app, window, by_size, load, settle, save, ["denoise-split", "mpr-filter"])
    for name in written:
        print(f"wrote {HERE / (name + '.png')}")
    window.close()
    return 0


def _filters(app: object, window: object, by_size: dict[int, str], load: object, settle: object, save: object,
             names: list[str]) -> None:
    """The display-filter shots: the denoiser split view and an MPR filtered in 3-D."""
    from viewer.ai.inference import ModelInference
    from viewer.core.filters import DisplayFilter
    from viewer.ui.ai_panel import attach_ai_panel

    w: Any = window
    attach_ai_panel(w, ModelInference())
    w.set_layout("1x1")
    controls = w.filter_controls
    if "denoise-split" in names:
        # The abdominal CT that ct-denoise was not trained on (its held-out series), liver level, soft
        # tissue window, magnified so the noise grain shows; Shift+F: the split view.
        load(by_size[20], 0)  # type: ignore[operator]
        view = w.grid.slots[0].view
        view.set_slice(12)
        view.set_window(60.0, 360.0)
        view.state.set_zoom(1.7)
        controls.choose(controls.models[0])
        controls.set_split(True)
        pump(app, lambda: view.display_filter.ready, timeout_s=600)
        settle()  # type: ignore[operator]
        save("denoise-split")  # type: ignore[operator]
        controls.set_split(False)
        controls.choose(None)
    if "mpr-filter" in names:
        load(by_size[100], 0)  # type: ignore[operator]
        view = w.grid.slots[0].view
        view.set_slice(55)
        view.set_window(40.0, 400.0)
        w.set_layout("mpr")
        for dock in (w.studies_dock, w.measurements_dock, w.ai_dock):
            dock.hide()  # the three planes get the width (each one's corner text in full)
        controls.choose(DisplayFilter("gaussian", 1.0))
        planes = w.grid.mpr.viewports.values()
        pump(app, lambda: all(vp.display_filter.ready for vp in planes), timeout_s=600)
        settle()  # type: ignore[operator]
        save("mpr-filter")  # type: ignore[operator]
        controls.choose(None)
        w.set_layout("1x1")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
