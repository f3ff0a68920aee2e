"""Each preprocessing op on known values, and the whole chain through a network that returns its input's mean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.ai.helpers import linear_model, mean_model, write_model_dir
from viewer.ai import ModelSession, classify, load_manifest, preprocess
from viewer.ai.preprocess import Context, parse_ops, run_ops
from viewer.core.series_info import SeriesInfo, Window
from viewer.core.windowing import apply_window


def ops(*tables: dict[str, Any]) -> Any:
    return parse_ops(list(tables))


def test_window_fixed_and_from_dicom() -> None:
    hu = np.array([[[-1000.0, -160.0, 40.0, 239.5, 3000.0]]], dtype=np.float32)  # (1, 1, 5)
    got = run_ops(ops({"op": "window", "center": 40.0, "width": 400.0}), hu)
    assert got.shape == (1, 1, 1, 5)
    # DICOM linear window: black at c - 0.5 - (w - 1)/2 = -160, white at +239
    np.testing.assert_allclose(got[0, 0, 0], [0.0, 0.0, 200.0 / 399.0, 1.0, 1.0], atol=1e-6)
    dicom = ops({"op": "window", "source": "dicom"})
    ctx = Context.of(SeriesInfo(windows=(Window(40.0, 400.0), Window(300.0, 1500.0))))
    np.testing.assert_array_equal(run_ops(dicom, hu, ctx), got)
    # no stored window: the modality default (CT soft tissue 40/400)
    np.testing.assert_array_equal(run_ops(dicom, hu, Context(modality="CT")), got)


def test_scale_minmax_fixed_and_invert_monochrome1() -> None:
    x = np.array([[[0.0, 5.0, 10.0]], [[3.0, 3.0, 3.0]]], dtype=np.float32)  # 2 images 1x3
    got = run_ops(ops({"op": "scale", "mode": "minmax"}), x)
    np.testing.assert_array_equal(got[:, 0, 0], [[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]])
    fixed = ops({"op": "scale", "mode": "fixed", "low": 0.0, "high": 8.0}, {"op": "invert_monochrome1"})
    np.testing.assert_array_equal(run_ops(fixed, x)[0, 0, 0], [0.0, 0.625, 1.0])
    mono1 = Context.of(SeriesInfo(photometric="MONOCHROME1"))
    np.testing.assert_array_equal(run_ops(fixed, x, mono1)[0, 0, 0], [1.0, 0.375, 0.0])
    unclipped = ops({"op": "scale", "mode": "fixed", "low": 0.0, "high": 8.0, "clip": False})
    np.testing.assert_array_equal(run_ops(unclipped, x)[0, 0, 0], [0.0, 0.625, 1.25])


def test_crop_resize_normalize_repeat() -> None:
    x = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    got = run_ops(ops({"op": "crop", "box": [2, 2, 6, 6]}), x)
    np.testing.assert_array_equal(got[:, 0], x[:, 2:6, 2:6])
    got = run_ops(ops({"op": "crop", "fraction": 0.5}, {"op": "resize", "size": [2, 2], "interpolation": "area"}), x)
    np.testing.assert_allclose(got[:, 0], x[:, 2:6, 2:6].reshape(2, 2, 2, 2, 2).mean(axis=(2, 4)), atol=1e-5)
    got = run_ops(ops({"op": "repeat_channels", "count": 3},
                      {"op": "normalize", "mean": [1.0, 2.0, 3.0], "std": [1.0, 2.0, 4.0]}), x)
    assert got.shape == (2, 3, 8, 8)
    for c, (m, s) in enumerate([(1.0, 1.0), (2.0, 2.0), (3.0, 4.0)]):
        np.testing.assert_allclose(got[:, c], (x - m) / s, rtol=1e-6)


def test_square_crop_keeps_the_centre_of_the_longer_side() -> None:
    x = np.arange(6 * 10, dtype=np.float32).reshape(1, 6, 10)  # 6 rows, 10 columns
    got = run_ops(ops({"op": "crop", "square": True}), x)
    np.testing.assert_array_equal(got[0, 0], x[0, :, 2:8])
    tall = np.arange(9 * 4, dtype=np.float32).reshape(1, 9, 4)
    np.testing.assert_array_equal(run_ops(ops({"op": "crop", "square": True}), tall)[0, 0], tall[0, 2:6, :])


def test_rgb_images_become_three_channels() -> None:
    rgb = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 2] = 255, 10
    got = run_ops(ops({"op": "scale", "mode": "fixed", "low": 0.0, "high": 255.0}), rgb)
    assert got.shape == (1, 3, 2, 2)
    np.testing.assert_allclose(got[0, :, 0, 0], [1.0, 0.0, 10 / 255], rtol=1e-6)


@pytest.fixture(scope="module")
def mean_session(tmp_path_factory: pytest.TempPathFactory) -> ModelSession:
    folder = tmp_path_factory.mktemp("mean") / "mean"
    write_model_dir(folder, lambda p: mean_model(p, (1, 8, 8)), model_id="mean", labels=["mean"],
                    shape=[-1, 1, 8, 8], activation="none",
                    preprocess=[{"op": "window", "center": 40.0, "width": 400.0},
                                {"op": "resize", "size": [8, 8], "interpolation": "bilinear"},
                                {"op": "normalize", "mean": [0.5], "std": [0.5]}])
    return ModelSession.get(load_manifest(folder), "cpu", batch_size=4)


def test_whole_chain_through_a_mean_network_is_exact(mean_session: ModelSession) -> None:
    rng = np.random.default_rng(0)
    hu = rng.integers(-300, 400, size=(6, 20, 12)).astype(np.int16)
    p = classify(mean_session, hu)
    # the same chain written out with numpy + viewer.core: window -> bilinear resize -> (x - .5) / .5 -> mean
    from viewer.core.resize import resize

    want = ((resize(apply_window(hu, 40.0, 400.0), (8, 8), "bilinear") - 0.5) / 0.5).mean(axis=(1, 2))
    np.testing.assert_allclose(p.scores[:, 0], want, atol=1e-6)
    np.testing.assert_array_equal(p.probabilities, p.scores)  # activation "none"
    np.testing.assert_allclose(preprocess(mean_session.manifest, hu).mean(axis=(1, 2, 3)), want, atol=1e-6)


def test_preprocess_uses_the_series_info(tmp_path: Path) -> None:
    w = np.full((4, 1), 1.0 / 4, dtype=np.float32)
    folder = write_model_dir(tmp_path / "m", lambda p: linear_model(p, w, np.zeros(1), (1, 2, 2)), labels=["x"],
                             shape=[-1, 1, 2, 2], activation="none",
                             preprocess=[{"op": "window", "source": "dicom"}, {"op": "invert_monochrome1"}])
    m = load_manifest(folder)
    img = np.array([[[0.0, 100.0], [100.0, 100.0]]], dtype=np.float32)
    info = SeriesInfo(windows=(Window(50.5, 101.0),), photometric="MONOCHROME1")  # maps 0 -> 0, 100 -> 1
    np.testing.assert_allclose(preprocess(m, img, info=info)[0, 0], [[1.0, 0.0], [0.0, 0.0]], atol=1e-6)
