"""``python -m viewer evaluate``: score a shipped model on a labelled dataset, through the viewer's own path.

The images go through the model's manifest preprocessing (:func:`viewer.ai.preprocess.run_ops`) and its
ONNX Runtime session (:class:`viewer.ai.session.ModelSession`) exactly as in the viewer; only the scoring
is added (:mod:`viewer.core.metrics`).

Datasets: MedMNIST-style ``.npz`` files with ``<split>_images`` (N, H, W) uint8 and ``<split>_labels``
(N,) or (N, 1). Their images are already windowed grey levels 0..255, not modality values, so they are
handed to the preprocessing in the units its first operation expects:

- ``window`` with ``center``/``width`` (e.g. CT in HU): each grey level g is mapped back through the
  exact inverse of that DICOM linear window, x = (g/255 - 0.5)(width - 1) + center - 0.5, so the
  manifest's window returns g/255 and every later op (resize, normalize) runs unchanged.
- ``window`` with ``source = "dicom"`` (radiographs): g is given as the stored value together with the
  file window centre 128 / width 256, which the DICOM linear function maps to g/255 exactly; the images
  are MONOCHROME2.

``--labels FILE`` scores against the viewer's own labels (a CSV/JSON export or a label store) on the
slices of ``--series PATH``: see :mod:`viewer.commands.evaluate_labels`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from viewer.commands.argtypes import positive_int

# Stored-value window that the DICOM linear function maps to g/255 for 8-bit grey levels g.
EIGHT_BIT_WINDOW = (128.0, 256.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="ID",
                        help="model id (a folder under models/) or the path of a model folder")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", type=Path, metavar="PATH.npz",
                     help="MedMNIST-style .npz with <split>_images and <split>_labels")
    src.add_argument("--labels", type=Path, metavar="FILE",
                     help="viewer labels: a CSV/JSON export or a label store (.db); needs --series")
    parser.add_argument("--series", action="append", default=[], metavar="PATH",
                        help="with --labels: a folder or file of a labelled series (repeatable)")
    parser.add_argument("--label-set", default=None, metavar="NAME", help="with --labels: score only this label set")
    parser.add_argument("--split", default="test", help="which split of the .npz (default: test)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "auto", "cuda"),
                        help="where ONNX Runtime runs the model (default: cpu)")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help="score only the first N images")
    parser.add_argument("--force", action="store_true",
                        help="score even when the dataset's classes or the series' modality do not match the "
                        "model's")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def models_dir() -> Path:
    """The shipped ``models/`` folder (the checkout's, or the installed package's copy)."""
    from viewer.core.paths import MODELS

    return MODELS


def resolve_model(ref: str) -> Path:
    """A model folder from an id (``models/<id>``) or a path; raises FileNotFoundError with the choices."""
    p = Path(ref)
    if (p / "manifest.toml").is_file():
        return p
    candidate = models_dir() / ref
    if (candidate / "manifest.toml").is_file():
        return candidate
    known = sorted(d.name for d in models_dir().glob("*") if (d / "manifest.toml").is_file())
    raise FileNotFoundError(f"no model {ref!r}: not a model folder, and not one of {', '.join(known) or 'none'}")


def load_dataset(path: Path, split: str) -> tuple[Any, Any]:
    """(images (N, H, W) uint8, labels (N,) int64) of ``split``; ValueError with what the file holds."""
    import numpy as np

    if not path.is_file():
        raise FileNotFoundError(f"dataset {path} not found")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # zipfile/ValueError/OSError: not an npz
        raise ValueError(f"{path} is not a readable .npz file ({exc})") from None
    with z:
        keys = set(z.files)
        ik, lk = f"{split}_images", f"{split}_labels"
        if ik not in keys or lk not in keys:
            splits = sorted(k[: -len("_images")] for k in keys if k.endswith("_images"))
            raise ValueError(f"{path} has no split {split!r} (it has: {', '.join(splits) or 'no <split>_images arrays'})")
        images, labels = z[ik], z[lk]
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"{lk} has shape {labels.shape}; evaluate scores single-label classification only")
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{ik} must be (N, H, W) uint8 grey levels, got {images.shape} {images.dtype}")
    if len(images) != len(labels):
        raise ValueError(f"{ik} has {len(images)} images but {lk} has {len(labels)} labels")
    return images, labels.astype(np.int64)


def dataset_to_model_units(images: Any, manifest: Any) -> tuple[Any, Any]:
    """(raw values, Context) that the manifest's preprocessing turns back into grey/255 (module doc)."""
    import numpy as np

    from viewer.ai.preprocess import Context

    ops = manifest.preprocess
    first = ops[0] if ops else None
    if first is None or first.name != "window":
        raise ValueError(f"model {manifest.id!r}: evaluate feeds 8-bit windowed dataset images only to models "
                         f"whose preprocessing starts with op = \"window\" (this one starts with "
                         f"{first.name if first else 'nothing'!r})")
    g = np.asarray(images, dtype=np.float64) / 255.0
    if first.params.get("source") == "dicom":
        c, w = EIGHT_BIT_WINDOW
        return images.astype(np.float32), Context(window=(c, w), monochrome1=False,
                                                  modality=manifest.applies_to.modalities[0])
    c, w = float(first.params["center"]), float(first.params["width"])
    raw = (g - 0.5) * (w - 1.0) + (c - 0.5)
    return raw.astype(np.float32), Context(modality=manifest.applies_to.modalities[0])


def dataset_classes(path: Path, labels: Any) -> tuple[list[str] | None, int]:
    """(class names, number of classes) of a dataset: names from a ``LABELED_DATA_SUMMARY.json`` beside
    it (its entry whose ``file`` is this file), else None; the count from the names, else from the
    labels (largest value + 1)."""
    summary = path.parent / "LABELED_DATA_SUMMARY.json"
    if summary.is_file():
        try:
            doc = json.loads(summary.read_text(encoding="utf-8"))
            entry = next((e for e in doc.values() if isinstance(e, dict) and e.get("file") == path.name), None)
            if entry and isinstance(entry.get("labels"), list):
                return [str(n) for n in entry["labels"]], len(entry["labels"])
        except (OSError, ValueError):
            pass
    return None, int(labels.max()) + 1 if labels.size else 0


def evaluate(model: str | Path, dataset: Path, split: str = "test", *, device: str = "cpu",
             limit: int | None = None, force: bool = False) -> dict[str, Any]:
    """Score ``model`` on ``split`` of ``dataset``; returns :func:`viewer.core.metrics.classification_report`
    plus ``model``, ``model_version``, ``dataset``, ``split``, ``provider``."""
    from viewer.ai.manifest import load_manifest
    from viewer.ai.runner import classify
    from viewer.ai.session import ModelSession
    from viewer.core.metrics import classification_report

    manifest = load_manifest(resolve_model(str(model)))
    images, labels = load_dataset(Path(dataset), split)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    k = len(manifest.output.labels)
    names, n_classes = dataset_classes(Path(dataset), labels)
    model_names = list(manifest.output.labels)
    if not force and (names is not None and [n.lower() for n in names] != [n.lower() for n in model_names]
                      or names is None and n_classes != k):
        what = f"classes {', '.join(names)}" if names is not None else f"{n_classes} classes"
        raise ValueError(f"{Path(dataset).name} has {what}, but model {manifest.id!r} predicts {k} classes "
                         f"({', '.join(model_names)}): the scores would mean nothing (--force to score anyway)")
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"{dataset} {split} labels span {labels.min()}..{labels.max()} but model "
                         f"{manifest.id!r} has {k} classes")
    raw, ctx = dataset_to_model_units(images, manifest)
    session = ModelSession.get(manifest, device, batch_size=256)
    pred = classify(session, raw, context=ctx)
    names = list(manifest.output.labels)
    report = classification_report(labels, pred.probabilities, names, threshold=manifest.output.threshold,
                                   bias=manifest.output.bias)
    out = {"model": manifest.id, "model_version": manifest.version, "dataset": str(dataset), "split": split,
           "provider": pred.provider, "decision_rule": manifest.output.decision, **report}
    if report["decision"] != "argmax":  # what the plain arg-max would have scored, for comparison
        plain = classification_report(labels, pred.probabilities, names)
        out["argmax"] = {k: plain[k] for k in ("accuracy", "balanced_accuracy", "confusion_matrix")}
    return out


def _text(r: dict[str, Any]) -> str:
    names = r["class_names"]
    width = max(len(n) for n in names)
    lines = [f"{r['model']} {r['model_version']} on {r['dataset']} [{r['split']}], n = {r['n']} ({r['provider']})",
             f"decision  {r.get('decision_rule', 'most probable class')}",
             f"accuracy  {r['accuracy']:.4f}" + (f"  (arg-max: {r['argmax']['accuracy']:.4f})" if "argmax" in r else ""),
             f"balanced  {r['balanced_accuracy']:.4f}",
             f"AUC       {r['auc']:.4f}" if r["auc"] is not None else "AUC       n/a (the labels hold one class only)",
             f"ECE       {r['ece']:.4f}",
             "", f"{'class':<{width}}  support  recall  precision"]
    for n in names:
        pc = r["per_class"][n]
        rec = "   n/a" if pc["recall"] is None else f"{pc['recall']:.4f}"
        prec = "      n/a" if pc["precision"] is None else f"{pc['precision']:.4f}"
        lines.append(f"{n:<{width}}  {pc['support']:>7}  {rec}  {prec:>9}")
    lines += ["", "confusion matrix (rows = true, columns = predicted, in the order above):"]
    cw = max(len(str(v)) for row in r["confusion_matrix"] for v in row)
    lines += ["  " + " ".join(f"{v:>{cw}}" for v in row) for row in r["confusion_matrix"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from viewer.ai.errors import ModelError

    if args.labels is not None:
        from viewer.commands.evaluate_labels import evaluate_labels, text_report

        try:
            result = evaluate_labels(args.model, args.labels, args.series, device=args.device,
                                     label_set=args.label_set, force=args.force)
        except (FileNotFoundError, ValueError, ModelError) as exc:
            print(f"evaluate: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(result, indent=1) if args.json else text_report(result))
        return 0
    try:
        result = evaluate(args.model, args.dataset, args.split, device=args.device, limit=args.limit,
                          force=args.force)
    except (FileNotFoundError, ValueError, ModelError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1) if args.json else _text(result))
    return 0
