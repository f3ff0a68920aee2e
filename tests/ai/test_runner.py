"""Runner: exact classification plumbing, progress/cancel, stale results dropped, sliding window, occlusion."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.ai.helpers import linear_model, mean_model, write_model_dir
from viewer.ai import (Cancelled, LatestOnly, ModelSession, classify, classify_box, classify_slices, load_manifest,
                       occlusion_map, sliding_window_map)
from viewer.ai.runner import activate, window_starts
from viewer.core.volume import Volume

RNG = np.random.default_rng(11)
W = RNG.standard_normal((16, 3)).astype(np.float32)
B = np.array([0.3, 0.0, -0.3], dtype=np.float32)
SCALE01 = [{"op": "scale", "mode": "fixed", "low": 0.0, "high": 100.0}]


def _session(folder: Path, build, **kw) -> ModelSession:  # type: ignore[no-untyped-def]
    write_model_dir(folder, build, **kw)
    return ModelSession(load_manifest(folder), "cpu", batch_size=4, threads=1)


@pytest.fixture(scope="module")
def linear(tmp_path_factory: pytest.TempPathFactory) -> ModelSession:
    return _session(tmp_path_factory.mktemp("lin") / "lin", lambda p: linear_model(p, W, B, (1, 4, 4)),
                    labels=["a", "b", "c"], shape=[-1, 1, 4, 4], preprocess=SCALE01)


def _volume(array: np.ndarray, spacing: float = 1.0, modality: str = "CT") -> Volume:
    return Volume(array, np.diag([spacing, spacing, 2.0, 1.0]), modality=modality, series_uid="1.2.3")


def test_softmax_of_a_known_linear_map(linear: ModelSession) -> None:
    images = RNG.uniform(0, 100, size=(10, 4, 4)).astype(np.float32)
    p = classify(linear, images)
    logits = (images / 100.0).reshape(10, 16) @ W + B
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p.probabilities, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.scores, logits, rtol=1e-5, atol=1e-5)
    assert p.top_label == [("a", "b", "c")[i] for i in logits.argmax(axis=1)]
    top = p.top(2)
    assert len(top[0]) == 2 and top[0][0][1] >= top[0][1][1] and top[0][0][0] == p.top_label[0]
    assert (p.model_id, p.model_version, p.provider) == ("toy", "0.1.0", "CPUExecutionProvider")


def test_activations() -> None:
    s = np.array([[0.0, np.log(3.0)], [1000.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(activate(s, "softmax"), [[0.25, 0.75], [1.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(activate(s, "sigmoid")[0], [0.5, 0.75], atol=1e-6)
    np.testing.assert_array_equal(activate(s, "none"), s)


def test_progress_and_cancel(linear: ModelSession) -> None:
    images = np.zeros((10, 4, 4), dtype=np.float32)
    seen: list[tuple[int, int]] = []
    classify(linear, images, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(4, 10), (8, 10), (10, 10)]
    calls: list[int] = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 1  # let the first batch run, then cancel

    seen.clear()
    with pytest.raises(Cancelled):
        classify(linear, images, progress=lambda d, t: seen.append((d, t)), cancel=cancel)
    assert seen == [(4, 10)]


def test_classify_slices_and_box(tmp_path: Path) -> None:
    s = _session(tmp_path / "mean", lambda p: mean_model(p, (1, 4, 4)), labels=["mean"], shape=[-1, 1, 4, 4],
                 activation="none", preprocess=[{"op": "resize", "size": [4, 4], "interpolation": "area"}])
    arr = RNG.integers(-1000, 1000, size=(6, 12, 8)).astype(np.int16)
    vol = _volume(arr)
    p = classify_slices(s, vol, [4, 1])
    np.testing.assert_array_equal(p.indices, [4, 1])
    np.testing.assert_allclose(p.scores[:, 0], arr[[4, 1]].mean(axis=(1, 2)), rtol=1e-5)
    everything = classify_slices(s, vol)
    assert len(everything) == 6
    box = classify_box(s, vol, 2, (4, 0, 8, 8))  # rows 4..7, all columns: area-resized 4x8 -> 4x4, exact mean
    np.testing.assert_allclose(box.scores[0, 0], arr[2, 4:8, 0:8].mean(), rtol=1e-5)
    assert box.indices.tolist() == [2]
    with pytest.raises(ValueError, match="outside"):
        classify_box(s, vol, 2, (4, 0, 20, 8))
    with pytest.raises(IndexError):
        classify_slices(s, vol, [6])


def test_latest_only_drops_stale_results() -> None:
    gate = LatestOnly()
    first = gate.next()
    stale_cancel = gate.cancel_for(first)
    assert gate.is_current(first) and not stale_cancel()
    second = gate.next()
    assert not gate.is_current(first) and gate.is_current(second) and stale_cancel()
    shown: list[str] = []
    assert not gate.deliver(first, "slice 10", shown.append)
    assert gate.deliver(second, "slice 11", shown.append)
    assert shown == ["slice 11"]
    gate.invalidate()
    assert not gate.deliver(second, "slice 11 again", shown.append)


def test_scrolling_fast_delivers_only_the_last_slice(linear: ModelSession) -> None:
    """Ten requests in quick succession from worker threads: only the newest reaches the 'screen'."""
    gate = LatestOnly()
    shown: list[int] = []
    lock = threading.Lock()
    images = RNG.uniform(0, 100, size=(10, 4, 4)).astype(np.float32)

    def work(slice_index: int, rid: int) -> None:
        cancel = gate.cancel_for(rid)
        time.sleep(0.01 * (10 - slice_index))  # older requests finish last, the worst order
        if cancel():
            return  # stale work stops early
        result = classify(linear, images[slice_index:slice_index + 1], cancel=cancel)
        with lock:
            gate.deliver(rid, slice_index, shown.append)

    threads = []
    for k in range(10):
        t = threading.Thread(target=work, args=(k, gate.next()))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    assert shown == [9]


def test_window_positions_cover_the_image_without_leaving_it() -> None:
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]
    assert window_starts(10, 4, 4).tolist() == [0, 4, 6]  # last window moved back to end at the edge
    assert window_starts(4, 4, 2).tolist() == [0]
    with pytest.raises(ValueError, match="larger than the image"):
        window_starts(3, 4, 1)


def test_sliding_window_finds_the_bright_square(tmp_path: Path) -> None:
    # class "bright" scores the mean of the (scaled) patch, class "dark" a constant 0.5
    w = np.concatenate([np.zeros((16, 1)), np.full((16, 1), 1.0 / 16)], axis=1).astype(np.float32)
    s = _session(tmp_path / "sq", lambda p: linear_model(p, w, np.array([0.5, 0.0]), (1, 4, 4)),
                 labels=["dark", "bright"], shape=[-1, 1, 4, 4], scope="roi",
                 preprocess=SCALE01 + [{"op": "resize", "size": [4, 4], "interpolation": "area"}])
    img = np.zeros((2, 32, 40), dtype=np.float32)
    img[1, 8:16, 16:24] = 100.0
    vol = _volume(img, spacing=0.5)
    cm = sliding_window_map(s, vol, 1, window_mm=(4.0, 4.0), stride=(4, 4))  # 4 mm = 8 px at 0.5 mm
    assert cm.window == (8, 8) and cm.stride == (4, 4)
    assert cm.rows.tolist() == [0, 4, 8, 12, 16, 20, 24] and cm.cols.tolist() == list(range(0, 33, 4))
    assert cm.probabilities.shape == (7, 9, 2)
    bright = {(int(r), int(c)) for r, c in zip(*np.nonzero(cm.class_map == 1))}
    assert bright == {(2, 4)}  # only the window exactly on the square has a mean above 0.5
    np.testing.assert_allclose(cm.probabilities[2, 4], activate(np.array([[0.5, 1.0]]), "softmax")[0], atol=1e-6)
    labels = cm.label_image((32, 40))
    assert labels.shape == (32, 40) and labels[11, 19] == 1 and labels[0, 0] == 0 and labels.sum() == 16
    assert (cm.model_id, cm.model_version) == ("toy", "0.1.0")
    default = sliding_window_map(s, vol, 1)  # no roi_size_mm: the network's 4x4 input, stride half of it
    assert default.window == (4, 4) and default.stride == (2, 2)


def test_occlusion_map_finds_the_informative_patch(tmp_path: Path) -> None:
    # 16x16 input; the "target" logit is the sum of rows 4..7, columns 8..11, the other logit 0
    w = np.zeros((16, 16, 2), dtype=np.float32)
    w[4:8, 8:12, 1] = 0.5
    s = _session(tmp_path / "occ", lambda p: linear_model(p, w.reshape(256, 2), np.zeros(2), (1, 16, 16)),
                 labels=["other", "target"], shape=[-1, 1, 16, 16], preprocess=SCALE01)
    img = np.full((16, 16), 100.0, dtype=np.float32)
    occ = occlusion_map(s, img, patch=(4, 4), stride=(2, 2), fill=0.0)
    assert occ.label == "target" and occ.base_probability > 0.99
    assert occ.heatmap.shape == (16, 16)
    r, c = np.unravel_index(np.argmax(occ.heatmap), occ.heatmap.shape)
    assert 4 <= r < 8 and 8 <= c < 12
    # pixels no patch overlapping the informative region covers are unimportant
    assert np.all(occ.heatmap[:, :4] == 0) and np.all(occ.heatmap[12:, :] == 0)
    outside = occ.heatmap.copy()
    outside[4:8, 8:12] = -1.0
    assert occ.heatmap[4:8, 8:12].min() > max(outside.max(), 0.1)
    with pytest.raises(Cancelled):
        occlusion_map(s, img, patch=(4, 4), stride=(2, 2), cancel=lambda: True)
