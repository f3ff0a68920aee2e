"""The image-to-image engine: fixed tiles with overlap and blending give the whole-image answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.ai.helpers import sha256, toml_text
from viewer.ai import load_manifest
from viewer.ai.errors import ManifestError
from viewer.ai.image_to_image import affine_of, blend_weights, run_on_volume, run_tiled
from viewer.ai.session import ModelSession
from viewer.core.filters import mean_filter
from viewer.io import load_series


def _conv_model(path: Path, kernel: np.ndarray) -> Path:
    """y = conv2d(x, kernel), zero-padded 'same': a denoiser-shaped graph (N, 1, H, W) -> (N, 1, H, W)."""
    k = kernel.shape[0]
    node = helper.make_node("Conv", ["input", "K"], ["denoised"], pads=[k // 2] * 4)
    io = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, "H", "W"])]
    out = [helper.make_tensor_value_info("denoised", TensorProto.FLOAT, ["N", 1, "H", "W"])]
    graph = helper.make_graph([node], "conv", io, out, [numpy_helper.from_array(kernel[None, None].astype(np.float32), "K")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _folder(tmp_path: Path, kernel: np.ndarray, tile: list[int], overlap: int, preprocess: list | None = None) -> Path:
    folder = tmp_path / "den"
    folder.mkdir(parents=True, exist_ok=True)
    f = _conv_model(folder / "model.onnx", kernel)
    data = {"schema_version": 1, "id": "toy-denoise", "name": "Toy denoiser", "version": "0.1.0", "file": f.name,
            "sha256": sha256(f), "task": "image-to-image", "intended_use": "Tests only.",
            "applies_to": {"modalities": ["CT"], "scope": "image"},
            "input": {"name": "input", "layout": "NCHW", "shape": [-1, 1, -1, -1], "dtype": "float32",
                      "tile": tile, "tile_overlap": overlap},
            "preprocess": preprocess if preprocess is not None else
            [{"op": "scale", "mode": "fixed", "low": -1000.0, "high": 1000.0, "clip": False},
             {"op": "normalize", "mean": [0.5], "std": [0.1]}],
            "output": {"name": "denoised"}}
    (folder / "manifest.toml").write_text(toml_text(data))
    return folder


@pytest.fixture(scope="module")
def ct(data_dir: Path) -> object:
    return load_series(data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom")


def test_tiles_blend_to_the_whole_image_result(tmp_path: Path, ct: object) -> None:
    kernel = np.full((3, 3), 1 / 9)
    session = ModelSession.get(load_manifest(_folder(tmp_path, kernel, [64, 64], 8)), "cpu", batch_size=4)
    out = run_on_volume(session, ct, [3, 4])
    want = mean_filter(ct.array[3:5].astype(np.float32), 1)
    # away from the image border (zero padding in the graph vs edge replication) every pixel is exact,
    # including those on tile seams: the overlap (8) covers the receptive field (1)
    inner = (slice(None), slice(1, -1), slice(1, -1))
    assert np.allclose(out[inner], want[inner], atol=0.05)
    assert out.shape == (2, 512, 512) and out.dtype == np.float32


def test_identity_on_odd_and_small_images(tmp_path: Path) -> None:
    ident = np.zeros((3, 3))
    ident[1, 1] = 1.0
    session = ModelSession.get(load_manifest(_folder(tmp_path, ident, [32, 32], 6)), "cpu", batch_size=3)
    rng = np.random.default_rng(1)
    for shape in ((1, 75, 41), (2, 20, 13), (1, 32, 32)):
        x = rng.normal(40, 30, shape).astype(np.float32)
        assert np.allclose(run_tiled(session, x), x, atol=1e-3)


def test_affine_inverse_and_blend_weights() -> None:
    from viewer.ai.preprocess import Op

    a, b = affine_of([Op("scale", {"mode": "fixed", "low": -1000.0, "high": 1000.0, "clip": False}),
                      Op("normalize", {"mean": [0.5], "std": [0.1]})])
    assert a * 0.0 + b == pytest.approx(0.0) and a * 200.0 + b == pytest.approx(1.0)
    w = blend_weights((16, 16), 4)
    assert w.min() > 0 and w[8, 8] == 1.0 and w[0, 8] < 1e-5 and w[2, 8] < w[3, 8] < w[4, 8] == 1.0


def test_image_to_image_manifest_rules(tmp_path: Path) -> None:
    k = np.ones((3, 3))
    with pytest.raises(ManifestError, match="preprocess\\[0\\].op"):
        load_manifest(_folder(tmp_path / "a", k, [64, 64], 8, [{"op": "window", "center": 40.0, "width": 400.0}]))
    with pytest.raises(ManifestError, match="input.tile_overlap"):
        load_manifest(_folder(tmp_path / "b", k, [32, 32], 16))
    m = load_manifest(_folder(tmp_path / "c", k, [64, 64], 8))
    assert m.task == "image-to-image" and m.input.tile == (64, 64) and m.output.labels == ()
