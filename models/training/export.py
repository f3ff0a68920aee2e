"""Export a trained run to ``model.onnx`` and ``reference.npz`` (called by ``train.py --export``).

``reference.npz`` holds RAW inputs as the viewer hands them to the model's preprocessing (HU for
organ-ct; stored grey levels plus the DICOM window for pneumonia-cxr) and the softmax outputs the
shipped model must give for them. The graph is a ``SoftmaxEnsemble``: its output (still named
``logits``) is the log of the members' mean softmax, so softmax(output) is the ensemble's probability. The expected outputs are computed here from the training-side
definition of the preprocessing (independently of ``viewer.ai``), so the model-folder test catches a
viewer preprocessing that differs from what training used.
"""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from nets import SmallCNN, SoftmaxEnsemble
from train import REPO, RUNS, Recipe, load_split

from viewer.core.intensity import match_quantiles

# The abdominal window MedMNIST's OrganAMNIST crops were made with (see MODEL_CARD.md): centre 50 HU,
# width 400 HU, applied with the DICOM linear function of viewer.core.windowing.
ORGAN_WINDOW = (50.0, 400.0)


def grey_to_hu(grey: np.ndarray, center: float, width: float) -> np.ndarray:
    """Inverse of the DICOM linear window: grey levels 0..255 -> HU (float32).

    With y = grey/255, DICOM PS3.3 C.11.2.1.2.1 gives x = (y - 0.5) * (w - 1) + (c - 0.5).
    """
    y = np.asarray(grey, dtype=np.float64) / 255.0
    return ((y - 0.5) * (width - 1.0) + (center - 0.5)).astype(np.float32)


def hu_to_grey01(hu: np.ndarray, center: float, width: float) -> np.ndarray:
    """The DICOM linear window, written out again here on purpose (training-side definition)."""
    low = center - 0.5 - (width - 1.0) / 2.0
    return np.clip((np.asarray(hu, dtype=np.float64) - low) / (width - 1.0), 0.0, 1.0)


def export(model_id: str, r: Recipe) -> None:
    torch.set_num_threads(r.threads)
    nets = [SmallCNN(len(r.labels), r.widths, r.dropout) for _ in range(r.members)]
    model = SoftmaxEnsemble(nets) if r.members > 1 else nets[0]
    model.load_state_dict(torch.load(RUNS / model_id / "final.pt"))
    model.eval()
    out = REPO / "models" / model_id
    onnx_path = out / "model.onnx"
    torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), str(onnx_path), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=17, dynamo=False, external_data=False)
    # A few test images, 2 per class, fixed choice (first ones in file order).
    x_te, y_te = load_split(r, "test")
    pick = np.concatenate([np.flatnonzero(y_te == c)[:2] for c in range(len(r.labels))])
    grey = x_te[pick].astype(np.float32)
    # A larger ROI (45x45, bilinear upsampled) so the resize op is exercised.
    big = F.interpolate(torch.from_numpy(grey)[:, None], size=(45, 45), mode="bilinear",
                        align_corners=False)[:, 0].numpy()
    if model_id == "organ-ct":
        c, w = ORGAN_WINDOW
        raw, raw_big = grey_to_hu(grey, c, w), grey_to_hu(big, c, w)   # HU
        x01, x01_big = hu_to_grey01(raw, c, w), hu_to_grey01(raw_big, c, w)
        extra: dict[str, np.ndarray] = {}
    else:
        # Radiographs: stored values with the file's window (c=128, w=256 maps 0..255 to 0..1 exactly).
        c, w = 128.0, 256.0
        raw, raw_big = grey, big
        x01, x01_big = hu_to_grey01(raw, c, w), hu_to_grey01(raw_big, c, w)
        # The same images stored MONOCHROME1 (inverted): invert_monochrome1 must undo it.
        extra = {"inputs_monochrome1": (255.0 - grey).astype(np.float32)}
    ref = json.loads((out / "metrics.json").read_text()).get("hist_reference") if r.hist_quantiles else None
    logits, logits_big = _logits(model, x01, ref), _logits(model, _area28(x01_big), ref)
    np.savez_compressed(out / "reference.npz", inputs=raw.astype(np.float32), outputs=logits,
                        inputs_45=raw_big.astype(np.float32), outputs_45=logits_big,
                        labels=y_te[pick], window=np.array([c, w]), **extra)
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes) and reference.npz ({len(pick)} inputs)")
    ms = _latency_ms(onnx_path)
    print(f"onnxruntime, 1 thread, batch 1: {ms:.3f} ms per image (median of 2000)")
    metrics_path = out / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["onnx_ms_per_image"] = round(ms, 3)
    metrics_path.write_text(json.dumps(metrics, indent=1) + "\n")


def _latency_ms(onnx_path) -> float:  # type: ignore[no-untyped-def]
    """Median wall time of one batch-1 inference on one CPU thread (what the viewer does per slice)."""
    import time

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    x = np.zeros((1, 1, 28, 28), np.float32)
    for _ in range(50):
        sess.run(None, {"input": x})
    times = []
    for _ in range(2000):
        t = time.perf_counter()
        sess.run(None, {"input": x})
        times.append(time.perf_counter() - t)
    return 1000.0 * float(np.median(times))


def _area28(x01: np.ndarray) -> torch.Tensor:
    return F.interpolate(torch.from_numpy(x01.astype(np.float32))[:, None], size=(28, 28), mode="area")[:, 0]


@torch.no_grad()
def _logits(model: torch.nn.Module, x01: np.ndarray | torch.Tensor, reference: list[float] | None = None) -> np.ndarray:
    """Training-side preprocessing after the window: the histogram match (when the recipe has one), then
    (x - 0.5) / 0.5, then the network (logits)."""
    x = torch.as_tensor(x01, dtype=torch.float32)
    if reference:
        x = torch.from_numpy(match_quantiles(x.numpy(), reference))
    return model(((x - 0.5) / 0.5)[:, None]).numpy().astype(np.float32)
