"""Classify every slice of a 300-slice 512x512 CT series on 2 CPU threads, end to end (preprocessing
included), with the shipped organ-ct model (or, until it exists, a CNN of the same size built here).

    nice python benchmarks/bench_infer_cpu.py [--model ID] [--threads 2] [--repeats 5] [--synthetic]

Prints per-stage medians (preprocess, network, end to end) and the ratio against a baseline measured in the
same run: the naive loop that preprocesses and runs one slice at a time. Target: end to end < 3 s.
The series is the pancreas CT (134 slices) tiled to 300 slices when ../shared/data is there, else a
synthetic int16 volume with CT-like values.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from viewer.ai import ModelRegistry, ModelSession, classify_slices, load_manifest  # noqa: E402
from viewer.ai.preprocess import run_ops  # noqa: E402
from viewer.ai.runner import PREPROCESS_CHUNK, context_of  # noqa: E402
from viewer.core.volume import Volume  # noqa: E402

N_SLICES = 300


def small_cnn_onnx(path: Path, n_classes: int = 11, widths: tuple[int, int, int] = (24, 48, 96)) -> Path:
    """The shipped models' architecture (models/training/nets.py: 3 stages of 2 conv3x3+BN+ReLU, max-pool,
    global average pool, linear; ~13 M multiply-adds at 28x28) with random weights, BN folded into the convs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    c_in, x = 1, "input"
    for stage, c in enumerate(widths):
        for j in range(2):
            name = f"s{stage}c{j}"
            w = (rng.standard_normal((c, c_in, 3, 3)) * np.sqrt(2.0 / (9 * c_in))).astype(np.float32)
            inits += [numpy_helper.from_array(w, name + "_w"),
                      numpy_helper.from_array(np.zeros(c, np.float32), name + "_b")]
            nodes += [helper.make_node("Conv", [x, name + "_w", name + "_b"], [name], pads=[1, 1, 1, 1]),
                      helper.make_node("Relu", [name], [name + "_r"])]
            x, c_in = name + "_r", c
        if stage < 2:
            nodes.append(helper.make_node("MaxPool", [x], [f"p{stage}"], kernel_shape=[2, 2], strides=[2, 2]))
            x = f"p{stage}"
    fc = (rng.standard_normal((widths[-1], n_classes)) * 0.1).astype(np.float32)
    inits += [numpy_helper.from_array(fc, "fc_w"), numpy_helper.from_array(np.zeros(n_classes, np.float32), "fc_b")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"]), helper.make_node("Flatten", ["gap"], ["flat"]),
              helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"])]
    graph = helper.make_graph(nodes, "small_cnn",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def stand_in_model(folder: Path) -> Path:
    """A model folder like the shipped organ-ct (same preprocessing and network size), random weights."""
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = small_cnn_onnx(folder / "model.onnx")
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    labels = ", ".join(f'"c{i}"' for i in range(11))
    (folder / "manifest.toml").write_text(f'''schema_version = 1
id = "bench-cnn"
name = "Benchmark CNN (organ-ct sized, random weights)"
version = "0"
file = "model.onnx"
sha256 = "{sha}"
task = "classification"
intended_use = "Benchmark only."
[applies_to]
modalities = ["CT"]
scope = "roi"
[input]
name = "input"
layout = "NCHW"
shape = [-1, 1, 28, 28]
dtype = "float32"
[[preprocess]]
op = "window"
center = 50.0
width = 400.0
[[preprocess]]
op = "resize"
size = [28, 28]
interpolation = "area"
[[preprocess]]
op = "normalize"
mean = [0.5]
std = [0.5]
[output]
name = "logits"
activation = "softmax"
labels = [{labels}]
''')
    return folder


def series(synthetic: bool) -> tuple[Volume, str]:
    data = Path(os.environ.get("VIEWER_TEST_DATA", REPO.parent / "shared" / "data")) / "ct" / "pancreas-ct-philips-134"
    if not synthetic and data.is_dir():
        from viewer.io import load_series

        v = load_series(data)
        reps = -(-N_SLICES // v.shape[0])
        arr = np.concatenate([v.array] * reps)[:N_SLICES]
        return Volume(arr, v.affine, v.modality, v.series_uid, v.metadata), f"pancreas CT tiled to {N_SLICES}"
    rng = np.random.default_rng(1)
    arr = rng.integers(-1024, 1500, size=(N_SLICES, 512, 512), dtype=np.int16)
    return Volume(arr, np.eye(4), "CT"), f"synthetic int16 {N_SLICES}x512x512"


def main_thread_stall(work: Callable[[], object], tick: float = 0.002) -> float:
    """Run ``work`` on a worker thread while this thread sleeps in ``tick`` steps, as an event loop
    would; return the longest time one step overran (how long the worker kept the GIL from us)."""
    t = threading.Thread(target=work)
    worst = 0.0
    t.start()
    while t.is_alive():
        t0 = time.perf_counter()
        time.sleep(tick)
        worst = max(worst, time.perf_counter() - t0 - tick)
    t.join()
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="organ-ct")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--synthetic", action="store_true")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    reg = ModelRegistry()
    if any(e.ok and e.id == args.model for e in reg.models()):
        manifest, what = reg.get(args.model), f"shipped model {args.model}"
    else:
        manifest, what = load_manifest(stand_in_model(Path(tmp.name) / "bench-cnn")), \
            f"stand-in CNN (no usable {args.model!r} in models/ yet)"
    vol, source = series(args.synthetic)
    t0 = time.perf_counter()
    session = ModelSession(manifest, "cpu", batch_size=args.batch, threads=args.threads)
    t_session = time.perf_counter() - t0
    ctx = context_of(vol)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (figures are only comparable within a run)")
    print(f"{what}; {source}; {args.threads} threads, batch {args.batch}; session + warm-up {t_session * 1e3:.0f} ms")

    pre, net, e2e, naive = [], [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        xs = [np.concatenate([run_ops(manifest.preprocess, vol.array[j:min(j + PREPROCESS_CHUNK, i + args.batch)], ctx)
                              for j in range(i, min(i + args.batch, N_SLICES), PREPROCESS_CHUNK)])
              for i in range(0, N_SLICES, args.batch)]
        t1 = time.perf_counter()
        for x in xs:
            session.run(x)
        t2 = time.perf_counter()
        pre.append(t1 - t0)
        net.append(t2 - t1)
        t0 = time.perf_counter()
        p = classify_slices(session, vol)
        e2e.append(time.perf_counter() - t0)
        assert len(p) == N_SLICES
    # Baseline: the obvious loop, one slice preprocessed and run at a time (fewer repeats: it is slow).
    for _ in range(max(1, args.repeats // 2)):
        t0 = time.perf_counter()
        for k in range(N_SLICES):
            session.run(run_ops(manifest.preprocess, vol.array[k:k + 1], ctx))
        naive.append(time.perf_counter() - t0)
    stall = main_thread_stall(lambda: classify_slices(session, vol))
    med = statistics.median
    for name, v in (("preprocess (window, resize, normalize)", med(pre)), ("network", med(net))):
        print(f"{name:40s} median {v * 1e3:8.1f} ms  ({v / N_SLICES * 1e3:.2f} ms/slice)")
    print(f"end to end classify_slices               median {med(e2e) * 1e3:8.1f} ms  (target < 3000 ms: "
          f"{'met' if med(e2e) < 3.0 else 'MISSED'})")
    print(f"baseline: one slice at a time            median {med(naive) * 1e3:8.1f} ms")
    print(f"main thread's longest wait while a worker thread classifies the series: {stall * 1e3:.1f} ms "
          "(the UI's event loop would stall this long; target <= 50 ms)")
    print(f"ratio baseline / end to end: {med(naive) / med(e2e):.2f}x;  end to end / 3 s target: {med(e2e) / 3.0:.2f}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
