"""Train, cross-validate and export the shipped classifiers (CPU, fixed seeds).

Usage (from the repository root, with the ``train`` extra installed)::

    nice python models/training/train.py organ-ct            # train on train, select on val, test once
    nice python models/training/train.py organ-ct --cv       # 5-fold CV on train+val, same recipe
    nice python models/training/train.py organ-ct --export   # ONNX + reference.npz from the saved run

The final run writes ``models/training/runs/<id>/final.pt`` (not committed) and
``models/<id>/metrics.json``; ``--export`` writes ``model.onnx`` and ``reference.npz``;
``models/training/package.py`` then writes ``manifest.toml`` (with the ONNX sha256) and the model card.
Data: MedMNIST v2 ``.npz`` files with the official ``train``/``val``/``test`` splits (uint8 28x28).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # viewer.core.metrics (numpy only) is the one metrics implementation
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nets import SmallCNN  # noqa: E402

from viewer.core.metrics import classification_report  # noqa: E402

DATA = Path(os.environ.get("VIEWER_TEST_DATA", REPO.parent / "shared" / "data")) / "labeled"
RUNS = Path(__file__).resolve().parent / "runs"


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a training run; stored next to its results."""

    dataset: str
    labels: list[str]
    epochs: int
    cv_epochs: int
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    widths: tuple[int, int, int] = (24, 48, 96)
    dropout: float = 0.2
    rotate_deg: float = 10.0      # uniform +-; small: organs keep their place in the body
    shift_px: float = 2.0         # uniform +- on the 28-pixel grid
    scale: float = 0.10           # zoom 1 +- scale
    contrast: float = 0.10        # grey * (1 +- contrast)
    brightness: float = 0.05      # grey + (+- brightness), grey in 0..1
    hflip: bool = False           # never for laterality classes (femur/kidney/lung left/right)
    class_weights: bool = False   # inverse-frequency weights in the loss (imbalanced sets)
    seed: int = 20260527
    threads: int = 2
    notes: list[str] = field(default_factory=list)


ORGAN_LABELS = ["bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
                "liver", "lung-left", "lung-right", "pancreas", "spleen"]

RECIPES: dict[str, Recipe] = {
    # CV uses fewer epochs than the final run: 2 shared CPU cores could not fit 5 x 16 epochs.
    "organ-ct": Recipe(dataset="organamnist.npz", labels=ORGAN_LABELS, epochs=16, cv_epochs=6),
    # Chest radiographs carry laterality too (heart on the left): no flips either.
    "pneumonia-cxr": Recipe(dataset="pneumoniamnist.npz", labels=["normal", "pneumonia"], epochs=30,
                            cv_epochs=30, class_weights=True, threads=1),
}


def load_split(recipe: Recipe, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and int64 labels (N,) of one official split."""
    with np.load(DATA / recipe.dataset) as z:
        return z[f"{split}_images"], z[f"{split}_labels"].reshape(-1).astype(np.int64)


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 grey levels -> the network input: x/255 (what op=window gives), then (x-0.5)/0.5."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return x.sub_(0.5).div_(0.5).unsqueeze(1)


def augment(x: torch.Tensor, r: Recipe, gen: torch.Generator) -> torch.Tensor:
    """Random small affine (rotation, shift, zoom) and intensity jitter; no flips unless allowed."""
    n = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    ang = u(-r.rotate_deg, r.rotate_deg) * (np.pi / 180.0)
    s = u(1.0 - r.scale, 1.0 + r.scale)
    tx, ty = u(-r.shift_px, r.shift_px) / 14.0, u(-r.shift_px, r.shift_px) / 14.0
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    if r.hflip:
        flip = (torch.rand(n, generator=gen) < 0.5).float() * -2 + 1
        theta[:, 0, 0] *= flip
        theta[:, 1, 0] *= flip
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Border padding: the crops continue into tissue, a black frame would be a new artefact.
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    grey = (x + 1.0) * 0.5
    grey = grey * u(1 - r.contrast, 1 + r.contrast).view(n, 1, 1, 1) \
        + u(-r.brightness, r.brightness).view(n, 1, 1, 1)
    return grey.clamp_(0.0, 1.0).sub_(0.5).div_(0.5)


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch: int = 1024) -> np.ndarray:
    """Softmax probabilities (N, K)."""
    model.eval()
    out = [torch.softmax(model(x[i:i + batch]), 1) for i in range(0, x.shape[0], batch)]
    return torch.cat(out).numpy().astype(np.float64)


def fit(r: Recipe, x: torch.Tensor, y: np.ndarray, epochs: int, seed: int,
        x_val: torch.Tensor | None = None, y_val: np.ndarray | None = None,
        log: list[dict] | None = None) -> tuple[torch.nn.Module, dict[str, torch.Tensor] | None]:
    """Train ``epochs`` epochs (AdamW, one-cycle cosine). Returns the model and, with validation data,
    the weights of the epoch with the best validation accuracy (later epoch wins ties)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    k = len(r.labels)
    model = SmallCNN(k, r.widths, r.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=r.lr, weight_decay=r.weight_decay)
    steps = epochs * ((len(y) + r.batch_size - 1) // r.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r.lr, total_steps=steps, pct_start=0.15)
    weight = None
    if r.class_weights:
        counts = np.bincount(y, minlength=k).astype(np.float64)
        weight = torch.tensor(counts.sum() / (k * counts), dtype=torch.float32)
    yt = torch.from_numpy(y)
    best, best_acc = None, -1.0
    for ep in range(epochs):
        model.train()
        t0, total = time.time(), 0.0
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), r.batch_size):
            idx = perm[i:i + r.batch_size]
            xb = augment(x[idx], r, gen)
            loss = F.cross_entropy(model(xb), yt[idx], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        entry = {"epoch": ep + 1, "train_loss": total / len(y), "seconds": round(time.time() - t0, 1)}
        if x_val is not None and y_val is not None:
            p = predict(model, x_val)
            entry["val_accuracy"] = float(np.mean(p.argmax(1) == y_val))
            entry["val_loss"] = float(-np.mean(np.log(p[np.arange(len(y_val)), y_val] + 1e-12)))
            if entry["val_accuracy"] >= best_acc:
                best_acc = entry["val_accuracy"]
                best = {n: t.detach().clone() for n, t in model.state_dict().items()}
        print(json.dumps(entry), flush=True)
        if log is not None:
            log.append(entry)
    return model, best


def run_final(model_id: str) -> None:
    r = RECIPES[model_id]
    torch.set_num_threads(r.threads)
    t0 = time.time()
    xtr, ytr = load_split(r, "train")
    xva, yva = load_split(r, "val")
    log: list[dict] = []
    model, best = fit(r, to_input(xtr), ytr, r.epochs, r.seed, to_input(xva), yva, log)
    assert best is not None
    model.load_state_dict(best)
    chosen = max(log, key=lambda e: (e["val_accuracy"], e["epoch"]))
    train_seconds = time.time() - t0
    # The test split is touched here, once, after the epoch was chosen on validation.
    xte, yte = load_split(r, "test")
    test = classification_report(yte, predict(model, to_input(xte)), r.labels)
    val = classification_report(yva, predict(model, to_input(xva)), r.labels)
    out = RUNS / model_id
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "final.pt")
    metrics = _read_metrics(model_id)
    metrics.update({
        "model": model_id, "recipe": asdict(r), "torch": torch.__version__,
        "chosen_epoch": chosen["epoch"], "train_log": log,
        "train_seconds": round(train_seconds, 1), "val": val, "test": test,
    })
    _write_metrics(model_id, metrics)
    print(f"{model_id}: epoch {chosen['epoch']} val acc {val['accuracy']:.4f}; "
          f"test acc {test['accuracy']:.4f} auc {test['auc']:.4f}; {train_seconds:.0f} s")


def run_cv(model_id: str, folds: int = 5, threads: int | None = None) -> None:
    """Stratified k-fold CV on train+val pooled; each fold trains ``cv_epochs`` and is scored on its
    held-out part with the last epoch (no inner validation set to choose one)."""
    r = RECIPES[model_id]
    torch.set_num_threads(threads or r.threads)
    t0 = time.time()
    xs, ys = zip(*(load_split(r, s) for s in ("train", "val")))
    x_all, y_all = np.concatenate(xs), np.concatenate(ys)
    rng = np.random.default_rng(r.seed)
    fold_of = np.empty(len(y_all), dtype=np.int64)
    for c in range(len(r.labels)):
        idx = rng.permutation(np.flatnonzero(y_all == c))
        fold_of[idx] = np.arange(len(idx)) % folds
    results = []
    for f in range(folds):
        tr, te = fold_of != f, fold_of == f
        model, _ = fit(r, to_input(x_all[tr]), y_all[tr], r.cv_epochs, r.seed + f + 1)
        rep = classification_report(y_all[te], predict(model, to_input(x_all[te])), r.labels)
        results.append({"fold": f, "n": rep["n"], "accuracy": rep["accuracy"], "auc": rep["auc"],
                        "ece": rep["ece"]})
        print(json.dumps(results[-1]), flush=True)
        # Written after every fold so a stopped run still leaves honest partial results.
        summary = {"folds": folds, "folds_completed": len(results), "epochs": r.cv_epochs,
                   "per_fold": results, "seconds": round(time.time() - t0, 1)}
        for key in ("accuracy", "auc", "ece"):
            v = np.array([x[key] for x in results])
            summary[key] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan")}
        metrics = _read_metrics(model_id)
        metrics["cv"] = summary
        metrics.setdefault("recipe", asdict(r))["cv_epochs"] = r.cv_epochs
        _write_metrics(model_id, metrics)
    print(f"{model_id} CV: acc {summary['accuracy']['mean']:.4f} +- {summary['accuracy']['sd']:.4f}")


def _metrics_path(model_id: str) -> Path:
    return REPO / "models" / model_id / "metrics.json"


def _read_metrics(model_id: str) -> dict:
    p = _metrics_path(model_id)
    return json.loads(p.read_text()) if p.exists() else {}


def _write_metrics(model_id: str, metrics: dict) -> None:
    p = _metrics_path(model_id)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(metrics, indent=1) + "\n")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=sorted(RECIPES))
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--cv", action="store_true", help="5-fold cross-validation on train+val")
    g.add_argument("--export", action="store_true", help="write model.onnx + reference.npz")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads for --cv (default: recipe)")
    args = ap.parse_args(argv)
    if args.cv:
        run_cv(args.model, threads=args.threads)
    elif args.export:
        from export import export  # noqa: PLC0415  (onnx only needed here)

        export(args.model, RECIPES[args.model])
    else:
        run_final(args.model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
