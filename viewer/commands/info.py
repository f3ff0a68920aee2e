"""``python -m viewer info PATH [--series UID_OR_N] --json``: geometry and values of each series.

Series are numbered from 1 in the scan's order, as the viewer, ``scan`` and ``screenshot --series`` number
them; the JSON object of each carries that ``number`` beside its 0-based ``index`` in the scan's list.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="+", help="folder, DICOM file(s) or DICOMDIR")
    parser.add_argument("--series", metavar="UID_OR_N", help="one series: its SeriesInstanceUID, or its number N "
                        "counted from 1 in the scan's order, as the text output and the viewer number them "
                        "(default: every series)")
    parser.add_argument("--json", action="store_true", help="print a JSON list (one object per series)")


def describe(vol: Any) -> dict[str, Any]:
    """The product.md info object of a loaded Volume (plus a few extra keys)."""
    import numpy as np

    arr = vol.array
    finite = arr if arr.dtype.kind in "iu" else arr[np.isfinite(arr)]
    value_range: list[float | int | None] = [None, None]
    if finite.size:
        lo, hi = finite.min(), finite.max()
        value_range = [int(lo), int(hi)] if arr.dtype.kind in "iu" else [float(lo), float(hi)]
    return {
        "series_uid": vol.series_uid,
        "modality": vol.modality,
        "shape": list(vol.shape),
        "spacing": [round(s, 6) for s in vol.spacing],
        "affine": [[float(v) for v in row] for row in vol.affine],
        "dtype": str(arr.dtype),
        "value_range": value_range,
        "warnings": list(vol.warnings),
        "description": vol.metadata.get("series_description", ""),
        "photometric": vol.metadata.get("photometric"),
        "padding_value": vol.metadata.get("padding_value"),
        "window": [vol.metadata.get("window_center"), vol.metadata.get("window_width")],
        **slices_and_volumes(vol),
    }


def slices_and_volumes(vol: Any) -> dict[str, Any]:
    """``slices`` in display order (the file's ``instance_number``, 0 when absent, and ``position``, the
    LPS mm of the slice's first voxel, null without one), ``regular`` (every slice where the affine puts
    it) and, for a 4D series, ``volumes``: ``count``, ``kind`` (time, diffusion, echo, phase, image
    type, stack), ``index`` of the volume described, and one object of per-volume fields each."""
    import dataclasses

    slices = vol.info.slices
    numbers = [s.instance_number or 0 for s in slices] if len(slices) == vol.shape[0] else [0] * vol.shape[0]
    pos = vol.slice_positions
    out: dict[str, Any] = {
        "slices": [{"instance_number": int(n), "position": [round(float(v), 6) for v in pos[k]]
                    if pos is not None else None} for k, n in enumerate(numbers)],
        "regular": bool(vol.regular),
    }
    axis = vol.volumes
    if axis is not None:
        out["volumes"] = {"count": axis.count, "kind": axis.kind, "index": axis.index,
                          "items": [dataclasses.asdict(v) for v in axis.items]}
    return out


def run(args: argparse.Namespace) -> int:
    from viewer.core.series_number import SeriesNotFound, pick_series
    from viewer.io import LoadError
    from viewer.io.load import load_stack
    from viewer.io.series import find_stacks

    import os

    missing = [p for p in args.path if not os.path.lexists(p)]
    if missing:
        for p in missing:
            print(f"info: {p}: not found (no such file or folder)", file=sys.stderr)
        return 2
    paths = args.path if len(args.path) > 1 else args.path[0]
    result = find_stacks(paths)
    stacks = list(enumerate(result.stacks))
    if args.series is not None:
        try:
            stacks = [stacks[i] for i in pick_series([s.series_uid for s in result.stacks], args.series)]
        except SeriesNotFound as exc:
            print(f"info: {exc}", file=sys.stderr)
            return 2
    out: list[dict[str, Any]] = []
    failed = 0
    for i, stack in stacks:
        try:
            obj = describe(load_stack(stack))
        except LoadError as exc:
            failed += 1
            obj = {"series_uid": stack.series_uid, "error": str(exc)}
            print(f"series {i + 1} ({stack.series_uid or 'no UID'}): {exc}", file=sys.stderr)
        obj["index"], obj["number"] = i, i + 1
        out.append(obj)
    if not stacks:
        print(f"no loadable DICOM series in {args.path}", file=sys.stderr)
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for obj in out:
            if "error" in obj:
                print(f"[{obj['number']}] {obj['series_uid']}: ERROR {obj['error']}")
                continue
            print(f"[{obj['number']}] {obj['modality']} {obj['series_uid']} shape {obj['shape']} spacing "
                  f"{obj['spacing']} {obj['dtype']} range {obj['value_range']}")
            for w in obj["warnings"]:
                print(f"    warning: {w}")
    return 0 if stacks and not failed else (1 if failed else 2)
