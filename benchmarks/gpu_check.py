"""GPU check: onnxruntime-gpu's CUDA provider against PyTorch CUDA on the same networks.

Runs on the lent GPU machine (../shared/device/README.md) with only numpy, onnxruntime-gpu and torch, and
this repository on PYTHONPATH (for ``viewer.ai``, used for the first-run latency through the viewer's own
``ModelSession``). ONNX files: exported here with torch when the ``onnx`` package is importable, else read
from ``--onnx-dir`` (make them on the development machine with ``python benchmarks/gpu_check.py --export
DIR``). The shipped models in ``models/*/model.onnx`` are measured too (PyTorch side: the same architecture
from ``models/training/nets.py``, random weights: throughput does not depend on the weights).

Printed per network, batch 64 fixed, images/s (median of repeats) and the ratio to PyTorch:

- ``torch``: PyTorch fp32 eval, input resident on the GPU (TF32 convs allowed, PyTorch's default), and the
  same with the input coming from / going back to numpy;
- ``ort run``: plain ``session.run`` on numpy (what the README measured at 36% on ResNet-18);
- ``ort iobind copy``: IO binding, input copied into a preallocated GPU buffer, output preallocated (what
  ``viewer.ai.ModelSession`` does);
- ``ort iobind resident`` (+ ``exhaustive`` / ``nhwc`` / ``cudagraph``): input already on the GPU, the
  like-for-like comparison with ``torch`` resident, with provider options that may close the gap;
- first-run latency: ``ModelSession(manifest, "cuda")`` creation with warm-up plus the first single-image
  result (target < 1 s), for HEURISTIC (the viewer's choice) and EXHAUSTIVE cuDNN algorithm search.

``--smoke-cpu`` runs every code path on the CPU with tiny counts, to check the script without a GPU.

On the lent machine (which has torch but maybe not ``onnx``), after bringing onnxruntime-gpu over as
../shared/device/README.md says::

    # here:  python benchmarks/gpu_check.py --export .gpucheck --no-weights    (~45 MB, git-ignore it)
    # there: PYTHONPATH=/tmp/site:$PWD python benchmarks/gpu_check.py --onnx-dir .gpucheck
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "models" / "training"))

BATCH = 64


# --- networks (torch) -------------------------------------------------------------------------------

def resnet18(num_classes: int = 1000) -> Any:
    """ResNet-18 (He et al. 2016) as torchvision defines it, written out so torchvision is not needed."""
    from torch import nn

    class Basic(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x: Any) -> Any:
            idt = x if self.down is None else self.down(x)
            y = self.relu(self.b1(self.c1(x)))
            return self.relu(self.b2(self.c2(y)) + idt)

    layers: list[Any] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Basic(cin, cout, stride), Basic(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)


def small_cnn(num_classes: int = 11) -> Any:
    from nets import SmallCNN  # models/training/nets.py: the shipped models' architecture

    return SmallCNN(num_classes)


NETS: dict[str, tuple[Callable[[], Any], tuple[int, int, int], int]] = {
    "resnet18": (lambda: resnet18(1000), (3, 224, 224), 1000),
    "small_cnn": (lambda: small_cnn(11), (1, 28, 28), 11),
}


def export(net: str, folder: Path, weights: bool = True) -> Path:
    """Export ``net`` (seeded random weights, eval mode) to ``folder/net.onnx`` plus its state dict."""
    import torch

    build, chw, _ = NETS[net]
    torch.manual_seed(0)
    model = build().eval()
    path = folder / f"{net}.onnx"
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter is what we want
    torch.onnx.export(model, (torch.zeros(1, *chw),), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
                      external_data=False)
    if weights:  # lets the check compare outputs; ResNet-18's is 45 MB, leave it out to travel light
        torch.save(model.state_dict(), folder / f"{net}.pt")
    return path


def write_manifest(onnx_path: Path, chw: tuple[int, int, int], k: int, work: Path) -> Path:
    """A model folder in ``work`` (a temporary folder, never models/) with a copy of ``onnx_path`` and a
    manifest.toml, so ``viewer.ai`` can load it."""
    folder = work / f"{onnx_path.parent.name}-{onnx_path.stem}-model"
    folder.mkdir(exist_ok=True)
    target = folder / "model.onnx"
    if not target.exists():
        target.write_bytes(onnx_path.read_bytes())
    sha = hashlib.sha256(target.read_bytes()).hexdigest()
    labels = ", ".join(f'"c{i}"' for i in range(k))
    (folder / "manifest.toml").write_text(
        f'schema_version = 1\nid = "{onnx_path.stem.replace("_", "-")}"\nname = "{onnx_path.stem}"\nversion = "0"\n'
        f'file = "model.onnx"\nsha256 = "{sha}"\ntask = "classification"\nintended_use = "GPU check."\n'
        f'[applies_to]\nmodalities = ["CT"]\nscope = "image"\n'
        f'[input]\nname = "input"\nlayout = "NCHW"\nshape = [-1, {chw[0]}, {chw[1]}, {chw[2]}]\ndtype = "float32"\n'
        f'[output]\nname = "logits"\nactivation = "softmax"\nlabels = [{labels}]\n')
    return folder


# --- timing -----------------------------------------------------------------------------------------

def throughput(step: Callable[[], Any], sync: Callable[[], None], seconds: float, repeats: int) -> float:
    """Images/s of ``step`` (one batch of BATCH) over ``repeats`` windows of about ``seconds``; median."""
    for _ in range(3):
        step()
    sync()
    t0 = time.perf_counter()
    step()
    sync()
    one = max(time.perf_counter() - t0, 1e-5)
    iters = max(2, int(seconds / one))
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        sync()
        rates.append(iters * BATCH / (time.perf_counter() - t0))
    return statistics.median(rates)


def torch_rates(net: str, x_np: np.ndarray, device: str, seconds: float, repeats: int,
                state: Path | None) -> tuple[dict[str, float], Any]:
    import torch

    build, _, _ = NETS[net]
    model = build().eval().to(device)
    if state is not None and state.exists():
        model.load_state_dict(torch.load(state, map_location=device))
    torch.backends.cudnn.benchmark = True
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    x = torch.from_numpy(x_np).to(device)
    out: dict[str, float] = {}
    with torch.inference_mode():
        out["torch resident"] = throughput(lambda: model(x), sync, seconds, repeats)
        out["torch numpy in/out"] = throughput(lambda: model(torch.from_numpy(x_np).to(device)).cpu().numpy(),
                                               sync, seconds, repeats)
        if device == "cuda":
            prev = torch.backends.cudnn.allow_tf32
            torch.backends.cudnn.allow_tf32 = False
            out["torch resident, no TF32"] = throughput(lambda: model(x), sync, seconds, repeats)
            torch.backends.cudnn.allow_tf32 = prev
        ref = model(x[:4]).float().cpu().numpy()
    return out, ref


def ort_rates(onnx_path: Path, x_np: np.ndarray, k: int, device: str, seconds: float,
              repeats: int) -> tuple[dict[str, float], Any]:
    import onnxruntime as ort

    cuda = device == "cuda"
    out: dict[str, float] = {}
    ref = None

    def session(**opts: Any) -> Any:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        providers: list[Any] = [("CUDAExecutionProvider", {"device_id": 0, **opts}), "CPUExecutionProvider"] if cuda \
            else ["CPUExecutionProvider"]
        s = ort.InferenceSession(str(onnx_path), sess_options=so, providers=providers)
        if cuda and s.get_providers()[0] != "CUDAExecutionProvider":
            raise RuntimeError(f"CUDA provider did not start (providers: {s.get_providers()})")
        return s

    dev = "cuda" if cuda else "cpu"
    variants: list[tuple[str, dict[str, Any], str]] = [
        ("ort run (numpy)", {"cudnn_conv_algo_search": "HEURISTIC"}, "run"),
        ("ort iobind copy", {"cudnn_conv_algo_search": "HEURISTIC"}, "copy"),
        ("ort iobind resident", {"cudnn_conv_algo_search": "HEURISTIC"}, "resident"),
        ("ort iobind resident exhaustive", {"cudnn_conv_algo_search": "EXHAUSTIVE"}, "resident"),
        ("ort iobind resident nhwc", {"cudnn_conv_algo_search": "HEURISTIC", "prefer_nhwc": "1"}, "resident"),
        ("ort iobind resident cudagraph", {"cudnn_conv_algo_search": "EXHAUSTIVE", "enable_cuda_graph": "1"},
         "resident"),
    ]
    for name, opts, mode in variants:
        if not cuda and opts != {"cudnn_conv_algo_search": "HEURISTIC"}:
            continue  # provider options of CUDA only
        try:
            s = session(**opts) if cuda else session()
            if mode == "run":
                out[name] = throughput(lambda: s.run(["logits"], {"input": x_np}), lambda: None, seconds, repeats)
                ref = s.run(["logits"], {"input": x_np[:4]})[0]
                continue
            x_dev = ort.OrtValue.ortvalue_from_numpy(x_np, dev, 0)
            y_dev = ort.OrtValue.ortvalue_from_shape_and_type([x_np.shape[0], k], np.float32, dev, 0)
            b = s.io_binding()
            b.bind_ortvalue_input("input", x_dev)
            b.bind_ortvalue_output("logits", y_dev)
            if mode == "copy":
                def step() -> Any:
                    x_dev.update_inplace(x_np)
                    s.run_with_iobinding(b)
                    return y_dev.numpy()
            else:
                def step() -> Any:
                    s.run_with_iobinding(b)
            out[name] = throughput(step, (b.synchronize_outputs if hasattr(b, "synchronize_outputs") else
                                          (lambda: None)), seconds, repeats)
        except Exception as exc:  # one variant failing must not hide the others
            out[name] = float("nan")
            print(f"  {name}: failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    return out, ref


def first_run_latency(onnx_path: Path, chw: tuple[int, int, int], k: int, device: str,
                      work: Path) -> dict[str, float]:
    """Seconds from nothing to the first single-image result through viewer.ai.ModelSession."""
    import viewer.ai.session as vs
    from viewer.ai import ModelSession, load_manifest

    m = load_manifest(write_manifest(onnx_path, chw, k, work))
    x = np.zeros((1, *chw), dtype=np.float32)
    out: dict[str, float] = {}
    real = vs._make_session
    for search in ("HEURISTIC", "EXHAUSTIVE"):
        def make(path: str, providers: list[Any], threads: int, optimize: bool = True, _s: str = search) -> Any:
            providers = [(p[0], {**p[1], "cudnn_conv_algo_search": _s}) if isinstance(p, tuple) else p
                         for p in providers]
            return real(path, providers, threads, optimize)

        vs._make_session = make
        try:
            t0 = time.perf_counter()
            s = ModelSession(m, device, batch_size=BATCH)
            t_create = time.perf_counter() - t0
            s.run(x)
            out[f"first result {search} (create+warm-up+run)"] = time.perf_counter() - t0
            out[f"  of which create+warm-up {search}"] = t_create
            t0 = time.perf_counter()
            s.run(np.zeros((BATCH, *chw), dtype=np.float32))
            out[f"  warmed batch {BATCH} {search}"] = time.perf_counter() - t0
            if s.message:
                print(f"  ModelSession message: {s.message}")
        finally:
            vs._make_session = real
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx-dir", type=Path, help="pre-exported <net>.onnx (+ <net>.pt) files")
    ap.add_argument("--export", type=Path, metavar="DIR", help="only export the ONNX files into DIR and exit")
    ap.add_argument("--no-weights", action="store_true", help="with --export: skip the <net>.pt state dicts")
    ap.add_argument("--nets", default="resnet18,small_cnn")
    ap.add_argument("--seconds", type=float, default=1.0, help="length of one timing window")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--smoke-cpu", action="store_true", help="CPU only, tiny counts: check the script runs")
    args = ap.parse_args()
    nets = [n for n in args.nets.split(",") if n]
    if args.export:
        args.export.mkdir(parents=True, exist_ok=True)
        for n in nets:
            print("exported", export(n, args.export, weights=not args.no_weights))
        return 0

    import onnxruntime as ort
    import torch

    device = "cpu" if args.smoke_cpu else "cuda"
    if args.smoke_cpu:
        args.seconds, args.repeats = min(args.seconds, 0.2), min(args.repeats, 2)
    print(f"onnxruntime {ort.__version__} providers {ort.get_available_providers()}; torch {torch.__version__}"
          + (f" on {torch.cuda.get_device_name(0)}" if device == "cuda" and torch.cuda.is_available() else ""))
    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        print("this onnxruntime has no CUDA provider: install onnxruntime-gpu (../shared/device/README.md)")
        return 1
    tmp = tempfile.TemporaryDirectory()
    work = Path(tmp.name)
    todo: list[tuple[str, Path, str]] = []
    for n in nets:
        src = args.onnx_dir / f"{n}.onnx" if args.onnx_dir else None
        if src is not None and src.exists():
            (work / src.name).write_bytes(src.read_bytes())
            pt = src.with_suffix(".pt")
            if pt.exists():
                (work / pt.name).write_bytes(pt.read_bytes())
        else:
            try:
                export(n, work)
            except Exception as exc:
                print(f"{n}: cannot export ({exc}); pass --onnx-dir with files made by --export")
                continue
        todo.append((n, work / f"{n}.onnx", n))
    for model_dir in sorted(p.parent for p in (REPO / "models").glob("*/model.onnx")):
        todo.append((f"shipped {model_dir.name}", model_dir / "model.onnx", "small_cnn"))

    rng = np.random.default_rng(0)
    for label, onnx_path, arch in todo:
        _, chw, k = NETS[arch]
        if label.startswith("shipped"):
            import onnxruntime as _ort
            k = int(_ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_outputs()[0].shape[1])
            NETS[arch] = (lambda k=k: small_cnn(k), chw, k)
        x = rng.standard_normal((BATCH, *chw)).astype(np.float32)
        print(f"\n== {label}: input {BATCH}x{'x'.join(map(str, chw))}, {device}")
        try:
            t, tref = torch_rates(arch, x, device, args.seconds, args.repeats,
                                  None if label.startswith("shipped") else onnx_path.with_suffix(".pt"))
        except Exception:
            traceback.print_exc()
            continue
        o, oref = ort_rates(onnx_path, x, k, device, args.seconds, args.repeats)
        base = t["torch resident"]
        for name, v in {**t, **o}.items():
            print(f"  {name:34s} {v:10.0f} images/s   {v / base:6.2f}x torch resident")
        if oref is not None and not label.startswith("shipped"):
            print(f"  max |ort - torch| on 4 images: {float(np.max(np.abs(oref - tref))):.2e} (TF32 allowed in torch)")
        for name, v in first_run_latency(onnx_path, chw, k, device, work).items():
            print(f"  {name:44s} {v * 1e3:8.1f} ms" + ("   (target < 1000 ms)" if name.startswith("first") else ""))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
