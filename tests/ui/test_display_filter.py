"""Display filters on a real CT slice: computed in a worker, drawn, named in the corner text, off again."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.ui.test_viewport_support import load_real
from viewer.core.filters import DisplayFilter, median_filter
from viewer.core.windowing import window_to_uint8
from viewer.ui.viewport import SliceViewport


def _viewport(qtbot, data_dir: Path, k: int) -> tuple[SliceViewport, object]:
    vp = SliceViewport()
    qtbot.addWidget(vp)
    vp.resize(400, 400)
    vp.show()
    vol = load_real(data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom")
    vp.set_volume(vol, k)
    return vp, vol


def test_median_filter_shown_then_removed(qtbot, data_dir: Path) -> None:
    vp, vol = _viewport(qtbot, data_dir, 10)
    original = vp.displayed_image().copy()
    assert not any(line.startswith("filter:") for line in vp.overlay().bottom_left)

    vp.display_filter.set_filter(DisplayFilter("median", 1))
    qtbot.waitUntil(lambda: vp.display_filter._result is not None, timeout=120000)  # a hang guard only
    shown = vp.displayed_image()
    c, w = vp.state.image.center, vp.state.image.width
    want = window_to_uint8(median_filter(vol.array[10].astype(np.float32), 1), c, w)
    # the drawn image is the windowed median of the slice (display transform: none for an axial CT)
    assert np.mean(np.abs(shown.astype(int) - want.astype(int)) <= 1) > 0.99
    assert not np.array_equal(shown, original)
    assert "filter: median 3x3" in vp.overlay().bottom_left
    assert np.array_equal(vp.state.slice_array(), vol.array[10])  # the data is untouched

    vp.display_filter.set_filter(None)
    assert np.array_equal(vp.displayed_image(), original)
    assert not any(line.startswith("filter:") for line in vp.overlay().bottom_left)


def test_the_shipped_denoiser_is_offered_and_drawn(qtbot, data_dir: Path) -> None:
    from viewer.ai.image_to_image import run_tiled
    from viewer.ai.session import ModelSession
    from viewer.ui.display_filter import image_to_image_models

    from viewer.ai.inference import ModelInference

    models = image_to_image_models(ModelInference())
    assert [m.manifest.id for m in models] == ["ct-denoise"]
    vp, vol = _viewport(qtbot, data_dir, 5)
    vp.display_filter.set_filter(models[0])
    qtbot.waitUntil(lambda: vp.display_filter._result is not None, timeout=120000)  # a hang guard only
    want = run_tiled(ModelSession.get(models[0].manifest, "cpu"), vol.array[5:6])[0]
    c, w = vp.state.image.center, vp.state.image.width
    assert np.mean(np.abs(vp.displayed_image().astype(int) - window_to_uint8(want, c, w).astype(int)) <= 1) > 0.99
    assert any("CT denoiser" in line for line in vp.overlay().bottom_left)
