"""Temperature scaling fitted on validation, folded into the shipped ONNX graph, with reliability diagrams.

Usage (from the repository root; needs onnx, onnxruntime, PySide6 for the PNG; no torch)::

    python models/training/calibrate.py organ-ct          # fit T on val, fold it in, write the figures
    python models/training/calibrate.py pneumonia-cxr --report-only   # diagram + ECE, graph untouched

The graph's output (``logits``; for an ensemble the log of the members' mean softmax) is divided by one
temperature T, chosen to minimise the validation negative log-likelihood (Guo et al. 2017). Dividing by T
never changes the arg-max, so accuracy and AUC stay exactly as they were; only the confidence moves. The
test split is scored with the calibrated graph for the card (its accuracy was already reported; T is not
chosen on it). Writes ``models/<id>/reliability.png`` (before/after, validation and test), the
``calibration`` entry of ``metrics.json``, and rescales ``reference.npz``'s outputs by 1/T (the
training-side outputs of the new graph). Run ``package.py <id>`` afterwards for the sha256 and card.

A binary model's operating point (``[output] threshold``, a probability of the second label) is mapped
through the temperature exactly: P' = sigmoid(logit(P) / T) is increasing in P, so
threshold' = sigmoid(logit(threshold) / T) takes the same decisions; the script checks that on every image
of train, validation and test before it writes anything. ``--version`` bumps the model's version.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from viewer.core.intensity import match_quantiles  # noqa: E402
from viewer.core.metrics import expected_calibration_error  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "labeled"
DATASETS = {"organ-ct": "organamnist.npz", "pneumonia-cxr": "pneumoniamnist.npz"}


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def nll(z: np.ndarray, y: np.ndarray) -> float:
    p = softmax(z)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))


def fit_temperature(z: np.ndarray, y: np.ndarray) -> float:
    """The T in [0.05, 20] minimising NLL(softmax(z / T)): golden-section search on log T (NLL is
    convex in 1/T, so unimodal here)."""
    lo, hi = math.log(0.05), math.log(20.0)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(z / math.exp(a), y), nll(z / math.exp(b), y)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(z / math.exp(a), y)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(z / math.exp(b), y)
    return round(math.exp((lo + hi) / 2), 4)


def graph_scores(model_id: str, split: str, onnx_path: Path, reference: list[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Raw graph outputs and labels of a MedMNIST split, with training's preprocessing (x/255, the
    histogram match when the model has one, (x - 0.5) / 0.5)."""
    import onnxruntime as ort

    with np.load(DATA / DATASETS[model_id]) as z:
        x, y = z[f"{split}_images"], z[f"{split}_labels"].reshape(-1).astype(np.int64)
    g = x.astype(np.float32) / np.float32(255.0)
    if reference:
        g = match_quantiles(g, reference)
    inp = ((g - 0.5) / 0.5)[:, None].astype(np.float32)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    out = np.concatenate([sess.run(None, {"input": inp[i:i + 1024]})[0] for i in range(0, len(inp), 1024)])
    return out.astype(np.float64), y


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """Per equal-width confidence bin: (mean confidence, accuracy, count) of the top-1 prediction."""
    conf, correct = p.max(1), (p.argmax(1) == y)
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    return [(float(conf[idx == b].mean()) if (idx == b).any() else (b + 0.5) / bins,
             float(correct[idx == b].mean()) if (idx == b).any() else 0.0, int((idx == b).sum())) for b in range(bins)]


def draw_reliability(path: Path, panels: list[tuple[str, list[tuple[float, float, int]], float]]) -> None:
    """A small PNG: one reliability diagram per panel (bars = accuracy per confidence bin, the diagonal =
    perfect calibration, the gap shaded), titled with its ECE."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter, QPen

    _app = QGuiApplication.instance() or QGuiApplication([])
    w_panel, h, m = 200, 220, 28
    img = QImage(w_panel * len(panels), h, QImage.Format.Format_RGB32)
    img.fill(QColor("white"))
    qp = QPainter(img)
    qp.setRenderHint(QPainter.RenderHint.Antialiasing)
    qp.setFont(QFont("DejaVu Sans", 7))
    for i, (title, rel, ece) in enumerate(panels):
        x0, side = i * w_panel + m, w_panel - m - 8
        y0 = 24
        qp.setPen(QPen(QColor("black")))
        qp.drawText(QRectF(i * w_panel, 2, w_panel, 20), Qt.AlignmentFlag.AlignCenter, f"{title}  ECE {ece:.3f}")
        qp.drawRect(QRectF(x0, y0, side, side))
        bins = len(rel)
        for b, (c, acc, n) in enumerate(rel):
            if n == 0:
                continue
            bx = x0 + side * b / bins
            qp.fillRect(QRectF(bx + 1, y0 + side * (1 - acc), side / bins - 2, side * acc), QColor(70, 110, 200))
            gap_top, gap_bot = sorted((1 - acc, 1 - c))
            qp.fillRect(QRectF(bx + 1, y0 + side * gap_top, side / bins - 2, side * (gap_bot - gap_top)),
                        QColor(230, 80, 60, 120))
        qp.setPen(QPen(QColor(120, 120, 120), 1, Qt.PenStyle.DashLine))
        qp.drawLine(int(x0), int(y0 + side), int(x0 + side), int(y0))
        qp.setPen(QPen(QColor("black")))
        qp.drawText(QRectF(x0, y0 + side + 2, side, 14), Qt.AlignmentFlag.AlignCenter, "confidence (top-1)")
        qp.save()
        qp.translate(i * w_panel + 10, y0 + side / 2)
        qp.rotate(-90)
        qp.drawText(QRectF(-40, -8, 80, 14), Qt.AlignmentFlag.AlignCenter, "accuracy")
        qp.restore()
    qp.end()
    img.save(str(path), "PNG")


def fold_temperature(onnx_path: Path, t: float) -> None:
    """Rename the graph's output to ``<name>_uncalibrated`` and append ``<name> = that * (1/T)``."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    g = model.graph
    out = g.output[0]
    name, raw = out.name, out.name + "_uncalibrated"
    for node in g.node:
        node.output[:] = [raw if o == name else o for o in node.output]
    g.initializer.append(numpy_helper.from_array(np.array(1.0 / t, dtype=np.float32), "inverse_temperature"))
    g.node.append(helper.make_node("Mul", [raw, "inverse_temperature"], [name], name="temperature_scaling"))
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))


def map_threshold(threshold: float, t: float) -> float:
    """The probability threshold after dividing the logits by ``t`` that decides as ``threshold`` did
    before: sigmoid(logit(threshold) / t), rounded to 6 significant digits (the manifest's ``%g``)."""
    z = math.log(threshold / (1.0 - threshold)) / t
    return float(f"{1.0 / (1.0 + math.exp(-z)):.6g}")


def same_decisions(model_id: str, split: str, onnx_path: Path, reference: list[float] | None, before: float,
                   after: float, t: float) -> bool:
    """P(second label) >= ``before`` from the graph's outputs equals P' >= ``after`` from the outputs
    divided by ``t`` (float32, as the graph computes them), on every image of ``split``."""
    z, _ = graph_scores(model_id, split, onnx_path, reference)
    p = softmax(z)[:, 1]
    p_cal = softmax((z.astype(np.float32) * np.float32(1.0 / t)).astype(np.float64))[:, 1]
    return bool(np.array_equal(p >= before, p_cal >= after))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=sorted(DATASETS))
    ap.add_argument("--report-only", action="store_true", help="diagram and ECE only; do not change the graph")
    ap.add_argument("--version", help="the model's new version when the temperature is folded in")
    args = ap.parse_args(argv)
    folder = REPO / "models" / args.model
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    if "calibration" in metrics and not args.report_only:
        raise SystemExit(f"{args.model} is already calibrated (T = {metrics['calibration']['temperature']})")
    ref = metrics.get("hist_reference")
    zv, yv = graph_scores(args.model, "val", folder / "model.onnx", ref)
    zt, yt = graph_scores(args.model, "test", folder / "model.onnx", ref)
    t = fit_temperature(zv, yv)
    res = {"temperature": t, "fitted_on": "validation (NLL)", "folded_into_graph": False}
    if metrics.get("members_are_cv_folds"):  # the CV folds cover train+val: validation is not held out
        res["fitted_on"] += (f"; each validation image was in the training folds of {metrics['recipe']['members'] - 1} "
                             f"of the {metrics['recipe']['members']} members (members_are_cv_folds)")
    for split, z, y in (("val", zv, yv), ("test", zt, yt)):
        res[split] = {"ece_before": expected_calibration_error(y, softmax(z)),
                      "ece_after": expected_calibration_error(y, softmax(z / t)),
                      "nll_before": nll(z, y), "nll_after": nll(z / t, y),
                      "mean_top_probability_before": float(softmax(z).max(1).mean()),
                      "mean_top_probability_after": float(softmax(z / t).max(1).mean())}
    # Fold only a temperature fitted on predictions the networks did not train on: where the members are
    # the CV folds, each validation image trained 4 of 5 members, so the ensemble is surer there than on
    # new images; the T fitted there (pneumonia-cxr: 0.747 < 1) made test more confident than accurate.
    held_out = not metrics.get("members_are_cv_folds")
    helps = held_out and res["val"]["ece_after"] < res["val"]["ece_before"] - 0.005
    res["folded_because" if helps else "not_folded_because"] = (
        "validation ECE fell by more than 0.005 on held-out predictions" if helps else
        "validation is not held out from the ensemble (members_are_cv_folds)" if not held_out else
        "validation ECE did not fall by more than 0.005")
    draw_reliability(folder / "reliability.png", [
        ("val, as trained", reliability(softmax(zv), yv), res["val"]["ece_before"]),
        (f"val, T = {t:g}", reliability(softmax(zv / t), yv), res["val"]["ece_after"]),
        ("test, as trained", reliability(softmax(zt), yt), res["test"]["ece_before"]),
        (f"test, T = {t:g}", reliability(softmax(zt / t), yt), res["test"]["ece_after"])])
    op = metrics.get("operating_point")
    if helps and not args.report_only and op:
        mapped = map_threshold(float(op["threshold"]), t)
        same = {split: same_decisions(args.model, split, folder / "model.onnx", ref, float(op["threshold"]), mapped, t)
                for split in ("train", "val", "test")}
        if not all(same.values()):
            raise SystemExit(f"threshold {op['threshold']} -> {mapped} changes decisions: {same}")
        if metrics.get("test", {}).get("decision") == f"threshold {op['threshold']:g}":
            metrics["test"] = {**metrics["test"], "decision": f"threshold {mapped:g}"}  # the same decisions
        metrics["operating_point"] = {**op, "threshold": mapped, "threshold_before_calibration": op["threshold"],
                                      "mapped_through_temperature": "sigmoid(logit(threshold) / T), same "
                                      "decisions on every train, validation and test image"}
    if helps and not args.report_only:
        fold_temperature(folder / "model.onnx", t)
        for split in ("test", "test_argmax"):  # the shipped graph's calibration error
            if metrics.get(split):
                metrics[split] = {**metrics[split], "ece_before_calibration": metrics[split]["ece"],
                                  "ece": res["test"]["ece_after"]}
        if args.version:
            metrics["version"] = args.version
        ref_path = folder / "reference.npz"
        with np.load(ref_path) as z:
            arrays = {k: z[k] for k in z.files}
        for k in list(arrays):
            if k.startswith("outputs"):
                arrays[k] = (arrays[k] * np.float32(1.0 / t)).astype(np.float32)
        np.savez_compressed(ref_path, **arrays)
        res["folded_into_graph"] = True
    metrics["calibration"] = res
    metrics_path.write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
