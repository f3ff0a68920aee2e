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

from nets import SmallCNN, SoftmaxEnsemble  # noqa: E402

from viewer.core.decision import choose_threshold  # noqa: E402
from viewer.core.intensity import image_quantiles, match_quantiles  # noqa: E402
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
    aspect: float = 0.0           # anisotropic zoom: x and y scales differ by a factor 1 +- aspect
    gamma: float = 0.0            # grey ** g, log g uniform in +- gamma (window/kernel differences)
    noise: float = 0.0            # Gaussian noise, sd uniform in 0..noise (grey 0..1)
    blur: float = 0.0             # blend with a 3x3 blur, weight uniform in -blur/2 (sharpen)..blur
    label_smoothing: float = 0.0
    members: int = 1              # seeds trained and averaged (softmax) in one exported graph
    class_weights: bool = False   # inverse-frequency weights in the loss (imbalanced sets)
    swa_epochs: int = 0           # >0: weights averaged over the last N (low learning-rate) epochs, BN re-estimated;
    #                               no epoch is picked on validation (round 3)
    hist_quantiles: int = 0       # >0: each image's grey levels matched to the train split's mean quantile
    #                               function at this many levels (the manifest's histogram_match op)
    seed: int = 20260527
    threads: int = 2
    notes: list[str] = field(default_factory=list)


ORGAN_LABELS = ["bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
                "liver", "lung-left", "lung-right", "pancreas", "spleen"]

# Round 2 (aimed at the val/test gap, i.e. at unseen patients and scanners): stronger intensity
# augmentation (gamma, noise, blur/sharpen), anisotropic zoom, real weight decay (AdamW's decay is
# multiplied by the learning rate, so 5e-4 did almost nothing), label smoothing, and an ensemble of
# three seeds. Still no flips. Round 1 was: epochs 16 (organ) / 30 (pneumonia), widths (24, 48, 96),
# weight_decay 5e-4, rotate 10, shift 2, scale 0.10, contrast 0.10, brightness 0.05, one seed.
_ROUND2 = dict(weight_decay=0.05, rotate_deg=12.0, shift_px=3.0, scale=0.15, aspect=0.10, contrast=0.20,
               brightness=0.08, gamma=0.30, noise=0.04, blur=0.8, label_smoothing=0.1, members=3)

RECIPES: dict[str, Recipe] = {
    # CV uses fewer epochs and one seed per fold: 2 shared CPU cores could not fit 5 x 3 x 10 epochs.
    "organ-ct": Recipe(dataset="organamnist.npz", labels=ORGAN_LABELS, epochs=10, cv_epochs=4,
                       widths=(28, 56, 112), **_ROUND2),
    # Chest radiographs carry laterality too (heart on the left): no flips either. Still round 1: the
    # round-2 candidate (epochs=20, cv_epochs=10, threads=2, **_ROUND2) had the lower validation accuracy
    # (0.9676 vs 0.9752), so it was not shipped; it is recorded in metrics.json["rejected_candidate"].
    # Round 3 (issue 14): the round-1 recipe, but several seeds averaged in the graph, each the average of
    # its weights over the last (low learning-rate) epochs instead of the peak validation epoch, and
    # every image histogram-matched to the training appearance (also in the viewer). The decision
    # threshold comes from the out-of-fold predictions of the 5-fold CV of this same recipe.
    # Sized for 2 shared CPU cores under a load of 20-30 (an epoch took 45-330 s there): the shipped model
    # is the 5-fold CV itself, each fold a different seed trained 6 epochs on 4/5 of train+val with its
    # weights averaged over the last 3, and the 5 fold networks averaged in the graph; the pooled
    # out-of-fold predictions of those same networks choose the threshold.
    "pneumonia-cxr": Recipe(dataset="pneumoniamnist.npz", labels=["normal", "pneumonia"], epochs=6,
                            cv_epochs=6, class_weights=True, threads=1, members=5, swa_epochs=3,
                            hist_quantiles=33),
}


def hist_reference(r: Recipe) -> list[float]:
    """The reference quantile function (grey 0..1) of ``histogram_match``: the mean over the train
    split's images of each image's quantiles, rounded to 4 decimals (what the manifest states)."""
    if not r.hist_quantiles:
        return []
    x, _ = load_split(r, "train")
    q = image_quantiles(x.astype(np.float64) / 255.0, r.hist_quantiles).mean(0)
    return [round(float(v), 4) for v in q]


def load_split(recipe: Recipe, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and int64 labels (N,) of one official split."""
    with np.load(DATA / recipe.dataset) as z:
        return z[f"{split}_images"], z[f"{split}_labels"].reshape(-1).astype(np.int64)


def to_input(images: np.ndarray, reference: list[float] | None = None) -> torch.Tensor:
    """uint8 grey levels -> the network input: x/255 (what op=window gives), the histogram match when the
    recipe has one (``reference``), then (x-0.5)/0.5."""
    g = np.ascontiguousarray(images).astype(np.float32) / np.float32(255.0)
    if reference:
        g = match_quantiles(g, reference)
    x = torch.from_numpy(g)
    return x.sub_(0.5).div_(0.5).unsqueeze(1)


def augment(x: torch.Tensor, r: Recipe, gen: torch.Generator) -> torch.Tensor:
    """Random small affine (rotation, shift, zoom, aspect) and intensity jitter (contrast, brightness,
    gamma, blur/sharpen, noise); no flips unless allowed."""
    n = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    ang = u(-r.rotate_deg, r.rotate_deg) * (np.pi / 180.0)
    s = u(1.0 - r.scale, 1.0 + r.scale)
    tx, ty = u(-r.shift_px, r.shift_px) / 14.0, u(-r.shift_px, r.shift_px) / 14.0
    # Drawn only when used, so a round-1 recipe consumes the same random numbers as before.
    a = u(1.0 - r.aspect, 1.0 + r.aspect).sqrt() if r.aspect else torch.ones(n)
    sx, sy = s * a, s / a
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack([torch.stack([cos / sx, -sin / sy, tx], 1), torch.stack([sin / sx, cos / sy, ty], 1)], 1)
    if r.hflip:
        flip = (torch.rand(n, generator=gen) < 0.5).float() * -2 + 1
        theta[:, 0, 0] *= flip
        theta[:, 1, 0] *= flip
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Border padding: the crops continue into tissue, a black frame would be a new artefact.
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    grey = (x + 1.0) * 0.5
    if r.blur:
        k = torch.tensor([1.0, 2.0, 1.0]) / 4.0
        blurred = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), (k[:, None] * k[None, :])[None, None])
        grey = grey + u(-r.blur / 2, r.blur).view(n, 1, 1, 1) * (blurred - grey)
    grey = grey * u(1 - r.contrast, 1 + r.contrast).view(n, 1, 1, 1) \
        + u(-r.brightness, r.brightness).view(n, 1, 1, 1)
    if r.gamma:
        grey = grey.clamp(0.0, 1.0) ** torch.exp(u(-r.gamma, r.gamma)).view(n, 1, 1, 1)
    if r.noise:
        grey = grey + torch.randn(grey.shape, generator=gen) * u(0.0, r.noise).view(n, 1, 1, 1)
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
    swa = torch.optim.swa_utils.AveragedModel(model) if r.swa_epochs else None
    for ep in range(epochs):
        model.train()
        t0, total = time.time(), 0.0
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), r.batch_size):
            idx = perm[i:i + r.batch_size]
            xb = augment(x[idx], r, gen)
            loss = F.cross_entropy(model(xb), yt[idx], weight=weight, label_smoothing=r.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if swa is not None and ep >= epochs - r.swa_epochs:
            swa.update_parameters(model)
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
    if swa is not None:
        # The averaged weights need their own batch-norm statistics (un-augmented training images).
        torch.optim.swa_utils.update_bn([x[i:i + 512] for i in range(0, len(y), 512)], swa)
        averaged = swa.module
        if x_val is not None and y_val is not None and log is not None:
            log.append({"swa_of_last_epochs": r.swa_epochs,
                        "val_accuracy": float(np.mean(predict(averaged, x_val).argmax(1) == y_val))})
        return averaged, None
    return model, best


def run_final(model_id: str) -> None:
    """Train ``recipe.members`` seeds (each keeps its best-validation epoch), average their softmax, and
    compare the ensemble's validation accuracy with the shipped model's. Only a candidate that is better
    on validation is scored on the test split (once) and replaces ``final.pt``/``metrics.json``; a worse
    one is recorded under ``rejected_candidate`` in metrics.json and the test split is not touched."""
    r = RECIPES[model_id]
    torch.set_num_threads(r.threads)
    t0 = time.time()
    xtr, ytr = load_split(r, "train")
    xva, yva = load_split(r, "val")
    x_tr, x_va = to_input(xtr), to_input(xva)
    members, logs, chosen = [], [], []
    for m in range(r.members):
        log: list[dict] = []
        model, best = fit(r, x_tr, ytr, r.epochs, r.seed + 1000 * m, x_va, yva, log)
        assert best is not None
        model.load_state_dict(best)
        members.append(model)
        logs.append(log)
        chosen.append(max(log, key=lambda e: (e["val_accuracy"], e["epoch"]))["epoch"])
    # One member: the plain network (logits), as round 1 shipped it.
    ensemble = SoftmaxEnsemble(members) if len(members) > 1 else members[0]
    train_seconds = time.time() - t0
    val = classification_report(yva, predict(ensemble, x_va), r.labels)
    out = RUNS / model_id
    out.mkdir(parents=True, exist_ok=True)
    metrics = _read_metrics(model_id)
    old_val = metrics.get("val", {}).get("accuracy", -1.0)
    member_acc = [max(e["val_accuracy"] for e in lg) for lg in logs]
    if len(members) == 1:  # round 1's record layout: one epoch, one log
        chosen, logs = chosen[0], logs[0]
    run = {"recipe": asdict(r), "torch": torch.__version__, "chosen_epoch": chosen, "train_log": logs,
           "train_seconds": round(train_seconds, 1), "val": val,
           "member_val_accuracy": member_acc}
    if val["accuracy"] <= old_val:
        torch.save(ensemble.state_dict(), out / "rejected.pt")
        metrics["rejected_candidate"] = run
        _write_metrics(model_id, metrics)
        print(f"{model_id}: candidate val acc {val['accuracy']:.4f} <= shipped {old_val:.4f}: "
              f"kept the shipped model, test split not evaluated; {train_seconds:.0f} s")
        return
    # The test split is touched here, once, after the recipe and epochs were chosen on validation.
    xte, yte = load_split(r, "test")
    test = classification_report(yte, predict(ensemble, to_input(xte)), r.labels)
    torch.save(ensemble.state_dict(), out / "final.pt")
    previous = {k: metrics[k] for k in ("recipe", "chosen_epoch", "train_seconds", "val", "test", "cv",
                                        "real_ct") if k in metrics}
    metrics = {"model": model_id, "version": "1.1.0", **run, "test": test, "previous": previous}
    if "cv" in previous:  # kept (flagged as the previous recipe's) until run_cv replaces it
        metrics["cv"] = {**previous["cv"], "previous_recipe": True}
    _write_metrics(model_id, metrics)
    print(f"{model_id}: epochs {chosen} val acc {val['accuracy']:.4f} (shipped {old_val:.4f}); "
          f"test acc {test['accuracy']:.4f} auc {test['auc']:.4f}; {train_seconds:.0f} s")


def run_cv(model_id: str, folds: int = 5, threads: int | None = None) -> None:
    """Stratified k-fold CV on train+val pooled; each fold trains ``cv_epochs`` and is scored on its
    held-out part with the last epoch (no inner validation set to choose one)."""
    r = RECIPES[model_id]
    torch.set_num_threads(threads or r.threads)
    t0 = time.time()
    x_all, y_all, fold_of = _folds(r, folds)
    results = []
    ref = hist_reference(r)
    oof = np.full((len(y_all), len(r.labels)), np.nan)
    for f in range(folds):
        tr, te = fold_of != f, fold_of == f
        model, _ = fit(r, to_input(x_all[tr], ref), y_all[tr], r.cv_epochs, r.seed + f + 1)
        oof[te] = predict(model, to_input(x_all[te], ref))
        rep = classification_report(y_all[te], oof[te], r.labels)
        results.append({"fold": f, "n": rep["n"], "accuracy": rep["accuracy"], "auc": rep["auc"],
                        "ece": rep["ece"]})
        print(json.dumps(results[-1]), flush=True)
        # Written after every fold so a stopped run still leaves honest partial results.
        summary = {"folds": folds, "folds_completed": len(results), "epochs": r.cv_epochs, "members": 1,
                   "per_fold": results, "seconds": round(time.time() - t0, 1)}
        for key in ("accuracy", "auc", "ece"):
            v = np.array([x[key] for x in results])
            summary[key] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan")}
        if r.swa_epochs:  # round 3: the CV record lives beside the candidate until --test merges them
            _declare_from_cv(model_id, r, summary, y_all, oof, fold_of)
            continue
        metrics = _read_metrics(model_id)
        if metrics.get("rejected_candidate", {}).get("recipe") == json.loads(json.dumps(asdict(r))):
            # This recipe lost on validation and is not shipped: its CV belongs to the candidate's record.
            metrics["rejected_candidate"]["cv"] = summary
        else:
            metrics["cv"] = summary
            metrics.setdefault("recipe", asdict(r))["cv_epochs"] = r.cv_epochs
        _write_metrics(model_id, metrics)
    print(f"{model_id} CV: acc {summary['accuracy']['mean']:.4f} +- {summary['accuracy']['sd']:.4f}")


def _folds(r: Recipe, folds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, fold index) of train+val pooled: stratified folds from the recipe's seed (used by
    :func:`run_cv` and the per-fold processes alike)."""
    xs, ys = zip(*(load_split(r, s) for s in ("train", "val")))
    x_all, y_all = np.concatenate(xs), np.concatenate(ys)
    rng = np.random.default_rng(r.seed)
    fold_of = np.empty(len(y_all), dtype=np.int64)
    for c in range(len(r.labels)):
        idx = rng.permutation(np.flatnonzero(y_all == c))
        fold_of[idx] = np.arange(len(idx)) % folds
    return x_all, y_all, fold_of


def run_cv_fold(model_id: str, f: int, folds: int = 5) -> None:
    """One fold of :func:`run_cv` in its own process (folds run in parallel on a loaded machine); its
    out-of-fold probabilities go to ``runs/<id>/cv_fold<f>.npz``. ``--cv-merge`` combines them."""
    r = RECIPES[model_id]
    torch.set_num_threads(1)
    t0 = time.time()
    x_all, y_all, fold_of = _folds(r, folds)
    ref = hist_reference(r)
    tr, te = fold_of != f, fold_of == f
    model, _ = fit(r, to_input(x_all[tr], ref), y_all[tr], r.cv_epochs, r.seed + f + 1)
    p = predict(model, to_input(x_all[te], ref))
    out = RUNS / model_id
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / f"cv_fold{f}.pt")
    np.savez_compressed(out / f"cv_fold{f}.npz", p=p, seconds=time.time() - t0)
    print(f"fold {f}: acc {np.mean(p.argmax(1) == y_all[te]):.4f}; {time.time() - t0:.0f} s")


def merge_cv_folds(model_id: str, folds: int = 5) -> None:
    """Pool the per-fold out-of-fold predictions and declare the operating point (:func:`_declare_from_cv`)."""
    r = RECIPES[model_id]
    _, y_all, fold_of = _folds(r, folds)
    oof = np.full((len(y_all), len(r.labels)), np.nan)
    results, seconds = [], 0.0
    for f in range(folds):
        with np.load(RUNS / model_id / f"cv_fold{f}.npz") as z:
            oof[fold_of == f] = z["p"]
            seconds = max(seconds, float(z["seconds"]))
        rep = classification_report(y_all[fold_of == f], oof[fold_of == f], r.labels)
        results.append({"fold": f, "n": rep["n"], "accuracy": rep["accuracy"], "auc": rep["auc"], "ece": rep["ece"]})
    summary = {"folds": folds, "folds_completed": folds, "epochs": r.cv_epochs, "members": 1, "per_fold": results,
               "seconds": round(seconds, 1), "parallel_processes": folds}
    for key in ("accuracy", "auc", "ece"):
        v = np.array([x[key] for x in results])
        summary[key] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1))}
    _declare_from_cv(model_id, r, summary, y_all, oof, fold_of)
    print(json.dumps(json.loads((RUNS / model_id / "cv.json").read_text()).get("operating_point"), indent=1))
    if r.members == folds:  # the fold networks are the shipped ensemble: write it as the candidate
        nets = []
        for f in range(folds):
            net = SmallCNN(len(r.labels), r.widths, r.dropout)
            net.load_state_dict(torch.load(RUNS / model_id / f"cv_fold{f}.pt"))
            nets.append(net)
        torch.save(SoftmaxEnsemble(nets).state_dict(), RUNS / model_id / "candidate.pt")
        cand = {"recipe": asdict(r), "torch": torch.__version__, "hist_reference": hist_reference(r),
                "train_seconds": summary["seconds"], "members_are_cv_folds": True,
                "val": None, "note": "validation is inside the training folds; the CV out-of-fold figures "
                "stand in for it"}
        (RUNS / model_id / "candidate.json").write_text(json.dumps(cand, indent=1) + "\n")


def _declare_from_cv(model_id: str, r: Recipe, summary: dict, y: np.ndarray, oof: np.ndarray,
                     fold_of: np.ndarray) -> None:
    """Write ``runs/<id>/cv.json`` and ``cv_oof.npz``; once every fold is done and the task is binary,
    declare the operating point: the threshold with the best (smoothed) balanced accuracy on the pooled
    out-of-fold probabilities. Declared here, before ``--test`` reads the test split."""
    out = RUNS / model_id
    out.mkdir(parents=True, exist_ok=True)
    record = {"recipe": asdict(r), "cv": summary}
    if summary["folds_completed"] == summary["folds"]:
        np.savez_compressed(out / "cv_oof.npz", y=y, p=oof, fold=fold_of)
        record["oof"] = classification_report(y, oof, r.labels)
        if len(r.labels) == 2:
            t, ba = choose_threshold(y, oof[:, 1])
            per_fold = [choose_threshold(y[fold_of == f], oof[fold_of == f, 1])[0]
                        for f in range(summary["folds"])]
            record["operating_point"] = {
                "threshold": t, "criterion": "balanced accuracy (= Youden J), smoothed +-0.05",
                "oof_balanced_accuracy": ba, "per_fold_thresholds": per_fold,
                "oof_at_threshold": classification_report(y, oof, r.labels, threshold=t),
                "declared_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (out / "cv.json").write_text(json.dumps(record, indent=1) + "\n")


def run_final_round3(model_id: str) -> None:
    """Train ``members`` seeds, each averaged over its last ``swa_epochs`` epochs, average their softmax in
    one graph and save it as the candidate (``runs/<id>/candidate.pt`` + ``candidate.json``) with its
    validation figures. Nothing is chosen on validation and the test split is not read here."""
    r = RECIPES[model_id]
    torch.set_num_threads(r.threads)
    t0 = time.time()
    ref = hist_reference(r)
    xtr, ytr = load_split(r, "train")
    xva, yva = load_split(r, "val")
    x_tr, x_va = to_input(xtr, ref), to_input(xva, ref)
    members, logs = [], []
    for m in range(r.members):
        log: list[dict] = []
        model, _ = fit(r, x_tr, ytr, r.epochs, r.seed + 1000 * m, x_va, yva, log)
        members.append(model)
        logs.append(log)
    ensemble = SoftmaxEnsemble(members) if len(members) > 1 else members[0]
    out = RUNS / model_id
    out.mkdir(parents=True, exist_ok=True)
    torch.save(ensemble.state_dict(), out / "candidate.pt")
    run = {"recipe": asdict(r), "torch": torch.__version__, "train_log": logs, "hist_reference": ref,
           "train_seconds": round(time.time() - t0, 1),
           "val": classification_report(yva, predict(ensemble, x_va), r.labels),
           "member_val_accuracy": [lg[-1]["val_accuracy"] for lg in logs]}
    (out / "candidate.json").write_text(json.dumps(run, indent=1) + "\n")
    print(f"{model_id}: candidate val acc {run['val']['accuracy']:.4f}; {run['train_seconds']:.0f} s")


def run_test_round3(model_id: str, version: str) -> None:
    """Read the test split once for the round-3 candidate, with the operating point declared by the CV,
    and make the candidate the shipped run (``final.pt``, ``metrics.json``; old figures under
    ``previous``). Refuses when the CV has not declared a threshold or the test was already read."""
    r = RECIPES[model_id]
    out = RUNS / model_id
    cand = json.loads((out / "candidate.json").read_text())
    cv = json.loads((out / "cv.json").read_text())
    op = cv.get("operating_point")
    if len(r.labels) == 2 and op is None:
        raise SystemExit("the CV has not declared an operating point yet: run --cv to the end first")
    if "test" in cand:
        raise SystemExit(f"the test split was already read for this candidate ({out / 'candidate.json'})")
    nets = [SmallCNN(len(r.labels), r.widths, r.dropout) for _ in range(r.members)]
    model = SoftmaxEnsemble(nets) if r.members > 1 else nets[0]
    model.load_state_dict(torch.load(out / "candidate.pt"))
    xte, yte = load_split(r, "test")
    p = predict(model, to_input(xte, cand["hist_reference"]))
    threshold = op["threshold"] if op else None
    cand["test"] = classification_report(yte, p, r.labels, threshold=threshold)
    cand["test_argmax"] = classification_report(yte, p, r.labels)
    cand["test_read_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (out / "candidate.json").write_text(json.dumps(cand, indent=1) + "\n")
    torch.save(model.state_dict(), out / "final.pt")
    old = _read_metrics(model_id)
    previous = {k: old[k] for k in ("version", "recipe", "chosen_epoch", "train_seconds", "val", "test", "cv")
                if k in old}
    metrics = {"model": model_id, "version": version, **cand, "cv": cv["cv"], "oof": cv.get("oof"),
               "operating_point": op, "previous": previous}
    _write_metrics(model_id, metrics)
    print(f"{model_id}: test acc {cand['test']['accuracy']:.4f} (threshold {threshold}), argmax "
          f"{cand['test_argmax']['accuracy']:.4f}, auc {cand['test']['auc']:.4f}")


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
    g.add_argument("--test", metavar="VERSION", help="round 3: read the test split once for the candidate")
    g.add_argument("--fold", type=int, metavar="F", help="one CV fold in this process (OOF saved)")
    g.add_argument("--cv-merge", action="store_true", help="pool the --fold results, declare the threshold")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads for --cv (default: recipe)")
    args = ap.parse_args(argv)
    if args.cv:
        run_cv(args.model, threads=args.threads)
    elif args.fold is not None:
        run_cv_fold(args.model, args.fold)
    elif args.cv_merge:
        merge_cv_folds(args.model)
    elif args.test:
        run_test_round3(args.model, args.test)
    elif args.export:
        from export import export  # noqa: PLC0415  (onnx only needed here)

        export(args.model, RECIPES[args.model])
    elif RECIPES[args.model].swa_epochs:
        run_final_round3(args.model)
    else:
        run_final(args.model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
