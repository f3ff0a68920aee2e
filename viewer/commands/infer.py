"""``python -m viewer infer PATH --model ID``: a model's predictions per slice (or image), headless.

Text output: one line per slice with the top label and its probability. ``--json``: an object with the
model, the provider that ran it (and why CUDA fell back, if it did) and per series the per-slice top label,
probability and every class's probability. ``--csv OUT``: every series found under PATH (a folder of
studies), one row per slice. A model that does not apply to a series (modality, grey/colour, body part, view, photometric
interpretation, size: :mod:`viewer.ai.applies`) is an error for a single series and a skipped series
with ``--csv``, unless ``--force``; a warning (e.g. a radiograph without BodyPartExamined) is printed and
stored with the results. The label per slice is the one the manifest's operating point decides
(``[output] threshold`` or ``bias``, else the most probable class). An image-to-image model (a denoiser)
writes the filtered series as DICOM instead (``--out``; :mod:`viewer.commands.infer_image`).

Exit status: 0 success, 1 nothing could be classified (load error, no usable model), 2 usage: the model
does not apply (without ``--force``), ``--slices`` selects nothing, ``--batch``/``--threads``/``--top`` < 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import Any

from viewer.commands.argtypes import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="a series folder, DICOM files' folder, file or DICOMDIR")
    parser.add_argument("--model", required=True, metavar="ID", help="model id (see models/README.md)")
    parser.add_argument("--json", action="store_true", help="print JSON with every class's probability")
    parser.add_argument("--csv", metavar="OUT", help="classify every series under PATH; one CSV row per slice")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="where to run (default auto: CUDA when available, else CPU)")
    parser.add_argument("--batch", type=positive_int, default=None, metavar="N",
                        help="images per network run (fixed; the last batch is padded)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads (default: all cores)")
    parser.add_argument("--series", metavar="UID_OR_N",
                        help="which series of PATH: its SeriesInstanceUID, or its number N counted from 1 in "
                        "the scan's order, as the viewer, `scan` and `info` number them (default: the largest)")
    parser.add_argument("--slices", metavar="A:B", help="slice range (Python slice syntax, e.g. 10:20 or 5)")
    parser.add_argument("--box", type=int, nargs=4, metavar=("ROW0", "COL0", "ROW1", "COL1"),
                        help="classify this box (pixels, half-open) of each slice instead of the whole slice")
    parser.add_argument("--sliding", action="store_true",
                        help="slide a window over each slice and report the class map (scope roi models)")
    parser.add_argument("--window-mm", type=float, nargs=2, metavar=("ROWS", "COLS"),
                        help="sliding window size in mm (default: the model's roi_size_mm, else its input size in "
                        "pixels)")
    parser.add_argument("--stride-mm", type=float, nargs=2, metavar=("ROWS", "COLS"),
                        help="sliding window step in mm (default: half the window)")
    parser.add_argument("--out", metavar="DIR",
                        help="image-to-image models (a denoiser): write the output series here as DICOM")
    parser.add_argument("--top", type=positive_int, default=1, metavar="K", help="labels per slice in text output")
    parser.add_argument("--force", action="store_true", help="run even if the model does not apply to the series")
    parser.add_argument("--models-dir", action="append", metavar="DIR",
                        help="look for models here (repeatable; default: models/ and the user models folder)")


def _slice_indices(spec: str | None, n: int) -> list[int]:
    """The slices ``--slices`` names (A:B, A:B:STEP or one index) of an n-slice series; ValueError with a
    sentence when it is malformed or selects nothing."""
    if not spec:
        return list(range(n))
    try:
        parts = [int(p) if p.strip() else None for p in spec.split(":")] if ":" in spec else None
        k = int(spec) if parts is None else 0
    except ValueError:
        raise ValueError(f"--slices {spec!r}: expected A:B, A:B:STEP or one index") from None
    if parts is not None:
        if len(parts) > 3 or parts[2:3] == [0]:
            raise ValueError(f"--slices {spec!r}: expected A:B or A:B:STEP with STEP not 0")
        picked = list(range(n))[slice(*parts)]
        if not picked:
            raise ValueError(f"--slices {spec}: selects no slice; the series has {n} slices (0..{n - 1})")
        return picked
    if not -n <= k < n:
        raise ValueError(f"--slices {k}: the series has {n} slices")
    return [k % n]


def _classify_volume(session: Any, volume: Any, args: argparse.Namespace) -> Any:
    from viewer.ai import classify, classify_slices
    from viewer.ai.runner import context_of
    from viewer.core.crop import crop_box

    idx = _slice_indices(args.slices, volume.shape[0])
    if args.box:
        p = classify(session, crop_box(volume.array[idx], args.box), context=context_of(volume))
        import numpy as np

        p.indices = np.asarray(idx)
        return p
    return classify_slices(session, volume, idx)


def _series_record(volume: Any, preds: Any, note: str | None) -> dict[str, Any]:
    uids = volume.info.instance_uids
    rows = []
    decided = preds.predicted_index  # the manifest's operating point (threshold/bias), else the arg-max
    for i, k in enumerate(preds.indices):
        probs = preds.probabilities[i]
        top = int(decided[i])
        rows.append({"slice": int(k), "instance_uid": uids[int(k)] if int(k) < len(uids) else "",
                     "label": preds.labels[top], "probability": round(float(probs[top]), 6),
                     "probabilities": {lab: round(float(v), 6) for lab, v in zip(preds.labels, probs)}})
    rec: dict[str, Any] = {"series_uid": volume.series_uid, "modality": volume.modality,
                           "study_uid": volume.info.study_uid,
                           "series_description": volume.info.series_description,
                           "shape": list(volume.shape), "predictions": rows}
    if note:
        rec["note"] = note
    return rec


def run(args: argparse.Namespace) -> int:
    from viewer.ai import ModelError, ModelRegistry, ModelSession, applicability
    from viewer.io import LoadError, load_series

    try:
        manifest = ModelRegistry(args.models_dir).get(args.model)
        session = ModelSession.get(manifest, args.device, batch_size=args.batch, threads=args.threads)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if session.message:
        print(f"note: {session.message}", file=sys.stderr)
    scope_note = None
    if manifest.applies_to.scope == "roi" and not args.box and not args.sliding:
        scope_note = (f"{manifest.id} is trained on regions (scope roi); whole slices were classified. Give --box "
                      "for a region or --sliding for a class map")
        print(f"note: {scope_note}", file=sys.stderr)
    header = {"model": {"id": manifest.id, "name": manifest.name, "version": manifest.version,
                        "intended_use": manifest.intended_use, "decision": manifest.output.decision,
                        "threshold": manifest.output.threshold},
              "provider": session.provider, "device": session.device, "message": session.message}

    if args.csv:
        return _run_csv(args, manifest, session, header, scope_note)

    try:
        volume = load_series(args.path, series=args.series)
    except LoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ok, why = applicability(manifest, volume)
    if not ok and not args.force:
        print(f"error: {why} (use --force to run it anyway)", file=sys.stderr)
        return 2
    try:
        _slice_indices(args.slices, volume.shape[0])
    except ValueError as exc:  # a usage error, found once the series' length is known
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if why:  # refused but forced, or applicable with a warning (e.g. no BodyPartExamined)
        print(f"warning: {why}", file=sys.stderr)
    if manifest.task == "image-to-image":
        from viewer.commands.infer_image import run_image_to_image

        return run_image_to_image(args, session, volume, header)
    if args.sliding:
        return _run_sliding(args, session, volume, header, why or None)
    try:
        preds = _classify_volume(session, volume, args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rec = _series_record(volume, preds, why or None)
    if args.json:
        json.dump({**header, "series": [rec]}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print(f"{manifest.title} ({manifest.intended_use}) on {session.device} ({session.provider})")
    print(f"series {volume.series_uid or '(no UID)'} {volume.modality} {volume.shape[0]} slices; decision: "
          f"{manifest.output.decision}")
    decided = preds.predicted_label
    for i, k in enumerate(preds.indices):
        tops = preds.top(max(1, args.top))[i]
        print(f"slice {int(k):4d}: {decided[i]} (" + ", ".join(f"{lab} {p:.3f}" for lab, p in tops) + ")")
    return 0


def _run_csv(args: argparse.Namespace, manifest: Any, session: Any, header: dict[str, Any],
             scope_note: str | None) -> int:
    from viewer.ai import applicability
    from viewer.io import LoadError, load_stack
    from viewer.io.series import find_stacks

    result = find_stacks(args.path)
    if result.bad_files:
        path, reason = result.bad_files[0]
        print(f"skipped {len(result.bad_files)} file(s) that are not loadable DICOM images (first: {path}: "
              f"{reason})", file=sys.stderr)
    labels = list(manifest.output.labels)
    written = 0
    done: list[dict[str, Any]] = []
    with open(args.csv, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["folder", "study_uid", "series_uid", "modality", "series_description", "slice", "instance_uid",
                    "model", "model_version", "provider", "label", "probability"] + [f"p_{lab}" for lab in labels])
        for stack in result.stacks:
            modality = (stack.modality or "").upper()
            if modality not in manifest.applies_to.modalities and not args.force:
                # decided from the header already read, so inapplicable series are never decoded
                print(f"skipped series {stack.series_uid or '(no UID)'} ({modality or 'no modality'}): "
                      f"{manifest.id} is for {', '.join(manifest.applies_to.modalities)}", file=sys.stderr)
                continue
            try:
                volume = load_stack(stack)
            except LoadError as exc:
                print(f"skipped series {stack.series_uid}: {exc}", file=sys.stderr)
                continue
            ok, why = applicability(manifest, volume)
            if not ok and not args.force:
                print(f"skipped series {stack.series_uid}: {why}", file=sys.stderr)
                continue
            if why:
                print(f"warning: series {stack.series_uid}: {why}", file=sys.stderr)
            try:
                preds = _classify_volume(session, volume, args)
            except ValueError as exc:
                print(f"skipped series {stack.series_uid}: {exc}", file=sys.stderr)
                continue
            rec = _series_record(volume, preds, why or None)
            for row in rec["predictions"]:
                folder = os.path.dirname(stack.files[0]) if stack.files else ""
                w.writerow([folder, rec["study_uid"], rec["series_uid"], rec["modality"], rec["series_description"],
                            row["slice"], row["instance_uid"], manifest.id, manifest.version, session.provider,
                            row["label"], f"{row['probability']:.6f}"]
                           + [f"{row['probabilities'][lab]:.6f}" for lab in labels])
                written += 1
            done.append({k: rec[k] for k in ("series_uid", "modality", "shape")})
    summary = {**header, "csv": args.csv, "rows": written, "series": done}
    if args.json:
        json.dump(summary, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"{written} rows from {len(done)} series written to {args.csv} ({session.device})")
    return 0 if done else 1


def _run_sliding(args: argparse.Namespace, session: Any, volume: Any, header: dict[str, Any],
                 note: str | None) -> int:
    """Per slice, the sliding-window class map: JSON grid of class indices, or label counts as text."""
    import numpy as np

    from viewer.ai import sliding_window_map

    try:
        idx = _slice_indices(args.slices, volume.shape[0])
        maps = [(k, sliding_window_map(session, volume, k, window_mm=args.window_mm, stride_mm=args.stride_mm))
                for k in idx]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    labels = list(session.manifest.output.labels)
    if args.json:
        slices = [{"slice": int(k), "window_px": list(cm.window), "stride_px": list(cm.stride),
                   "rows": cm.rows.tolist(), "cols": cm.cols.tolist(), "class_map": cm.class_map.tolist(),
                   "max_probability": np.round(cm.probabilities.max(axis=2), 6).tolist()} for k, cm in maps]
        rec: dict[str, Any] = {"series_uid": volume.series_uid, "modality": volume.modality,
                               "shape": list(volume.shape), "labels": labels, "sliding": slices}
        if note:
            rec["note"] = note
        json.dump({**header, "series": [rec]}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"{session.manifest.title} on {session.device} ({session.provider}); sliding window")
    for k, cm in maps:
        counts = np.bincount(cm.class_map.ravel(), minlength=len(labels))
        order = np.argsort(-counts, kind="stable")
        text = ", ".join(f"{labels[i]} {int(counts[i])}" for i in order if counts[i])
        print(f"slice {k:4d}: {cm.window[0]}x{cm.window[1]} px windows every {cm.stride[0]}x{cm.stride[1]} px "
              f"({cm.class_map.size}): {text}")
    return 0
