"""Sessions: provider choice and CUDA fallback with a message, fixed batch shapes, warm-up, caching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

import viewer.ai.session as session_mod
from tests.ai.helpers import linear_model, write_model_dir
from viewer.ai import Manifest, ModelError, ModelSession, load_manifest
from viewer.ai.session import CPU, CUDA

RNG = np.random.default_rng(7)
W = RNG.standard_normal((16, 3)).astype(np.float32)
B = np.array([0.1, -0.2, 0.3], dtype=np.float32)
HAS_CUDA = CUDA in ort.get_available_providers()


def _manifest(tmp_path: Path, batch: Any = "N") -> Manifest:
    folder = write_model_dir(tmp_path / f"lin{batch}", lambda p: linear_model(p, W, B, (1, 4, 4), batch=batch),
                             labels=["a", "b", "c"], shape=[-1 if batch == "N" else batch, 1, 4, 4])
    return load_manifest(folder)


def test_cpu_session_reports_its_provider(tmp_path: Path) -> None:
    s = ModelSession(_manifest(tmp_path), "cpu", threads=2)
    assert (s.provider, s.device, s.message) == (CPU, "cpu", None)
    assert s._session.get_session_options().intra_op_num_threads == 2
    x = RNG.standard_normal((5, 1, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(s.run(x), x.reshape(5, 16) @ W + B, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA: the fallback case cannot happen by itself")
def test_cuda_requested_on_a_cpu_build_falls_back_with_a_message(tmp_path: Path) -> None:
    s = ModelSession(_manifest(tmp_path), "cuda")
    assert s.provider == CPU and s.device == "cpu"
    assert s.message is not None and "onnxruntime-gpu" in s.message and "CPU" in s.message
    quiet = ModelSession(_manifest(tmp_path), "auto")  # auto on a CPU machine is not a failure
    assert quiet.provider == CPU and quiet.message is None


def test_cuda_failing_to_start_falls_back_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _manifest(tmp_path)
    real = session_mod._make_session
    attempts: list[list[Any]] = []

    def failing(path: str, providers: list[Any], threads: int, optimize: bool = True) -> Any:
        attempts.append(providers)
        if any((p[0] if isinstance(p, tuple) else p) == CUDA for p in providers):
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return real(path, providers, threads, optimize)

    monkeypatch.setattr(session_mod, "available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(session_mod, "_make_session", failing)
    for device in ("cuda", "auto"):
        s = ModelSession(m, device)
        assert s.provider == CPU
        assert s.message is not None and "CUDA failed to start" in s.message and "no CUDA-capable device" in s.message
    assert attempts[0][0][0] == CUDA and attempts[0][0][1]["cudnn_conv_algo_search"] == "HEURISTIC"
    assert attempts[1] == [CPU]


def test_cuda_silently_dropped_by_onnxruntime_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if HAS_CUDA:
        pytest.skip("CUDA really starts here")
    # Claim CUDA is there: the CPU build then either refuses the provider or runs without it; both must
    # end on the CPU with a message.
    monkeypatch.setattr(session_mod, "available_providers", lambda: [CUDA, CPU])
    s = ModelSession(_manifest(tmp_path), "cuda")
    assert s.provider == CPU and s.message is not None and "CUDA failed to start" in s.message


def test_fixed_batch_shapes_pad_the_last_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shapes: list[tuple[int, ...]] = []
    real = ModelSession._run_exact

    def spy(self: ModelSession, x: np.ndarray) -> np.ndarray:
        shapes.append(x.shape)
        return real(self, x)

    monkeypatch.setattr(ModelSession, "_run_exact", spy)
    s = ModelSession(_manifest(tmp_path), "cpu", batch_size=4)
    assert shapes == [(1, 1, 4, 4), (4, 1, 4, 4)]  # warm-up of both shapes
    shapes.clear()
    x = RNG.standard_normal((10, 1, 4, 4)).astype(np.float32)
    out = s.run(x)
    assert shapes == [(4, 1, 4, 4)] * 3 and out.shape == (10, 3)
    np.testing.assert_allclose(out, x.reshape(10, 16) @ W + B, rtol=1e-5, atol=1e-5)  # padding rows dropped
    shapes.clear()
    s.run(x[:1])
    assert shapes == [(1, 1, 4, 4)]  # the single-slice latency case runs alone


def test_a_graph_with_a_fixed_batch_gets_exactly_that_batch(tmp_path: Path) -> None:
    s = ModelSession(_manifest(tmp_path, batch=8), "cpu", batch_size=64)
    assert s.batch_size == 8
    x = RNG.standard_normal((3, 1, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(s.run(x), x.reshape(3, 16) @ W + B, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.run(x[:1]), x[:1].reshape(1, 16) @ W + B, rtol=1e-5, atol=1e-5)


def test_sessions_are_cached_per_model_and_device(tmp_path: Path) -> None:
    m = _manifest(tmp_path)
    ModelSession.clear_cache()
    a = ModelSession.get(m, "cpu")
    assert ModelSession.get(m, "cpu") is a
    assert ModelSession.get(m, "auto") is not a


def test_an_unreadable_graph_is_a_model_error(tmp_path: Path) -> None:
    m = _manifest(tmp_path)
    m.model_path.write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="cannot load"):
        ModelSession(m, "cpu")
    with pytest.raises(ValueError, match="device"):
        ModelSession(m, "tpu")


def test_io_binding_path_gives_the_plain_results(tmp_path: Path) -> None:
    """The CUDA path's IO binding (preallocated, reused buffers), exercised with CPU buffers here."""
    s = ModelSession(_manifest(tmp_path), "cpu", batch_size=4, warmup=False)
    s.device, s._bind_device = "cuda", "cpu"
    for n in (10, 3, 1):  # full batches, a padded batch, the single-image shape; buffers reused per shape
        x = RNG.standard_normal((n, 1, 4, 4)).astype(np.float32)
        np.testing.assert_allclose(s.run(x), x.reshape(n, 16) @ W + B, rtol=1e-5, atol=1e-5)
    assert s.io_binding_error is None and sorted(s._bindings) == [1, 4]


def test_concurrent_get_creates_one_session(tmp_path: Path) -> None:
    import threading

    m = _manifest(tmp_path)
    ModelSession.clear_cache()
    got: list[ModelSession] = []
    threads = [threading.Thread(target=lambda: got.append(ModelSession.get(m, "cpu"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6 and all(s is got[0] for s in got)


def test_manifest_shape_that_would_allocate_tens_of_gib_is_refused_with_the_size(tmp_path: Path) -> None:
    # The graph and manifest fix the batch at 10^9: the warm-up batch would take 59.6 GiB.
    with pytest.raises(ModelError, match=r"needs 59\.6 GiB"):
        ModelSession(_manifest(tmp_path, batch=10**9), "cpu", threads=1)
