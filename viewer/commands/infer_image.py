"""``infer --model ct-denoise PATH --out DIR``: an image-to-image model over a series, written as DICOM.

The model runs tile by tile (:mod:`viewer.ai.image_to_image`) on every slice (or ``--slices``); the
output, in modality units, is written as a derived series (:func:`viewer.io.derived.write_derived_series`:
new Series UID, ImageType DERIVED\\SECONDARY, lossless). Without ``--out`` only the summary is printed.
``--json`` prints the summary as JSON (noise estimate before/after: the median over slices of the
robust standard deviation of the difference between each pixel and its 3x3 mean).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _noise(x: Any) -> float:
    import numpy as np

    from viewer.core.filters import mean_filter

    d = x - mean_filter(x, 1)
    mad = np.median(np.abs(d - np.median(d, axis=(-2, -1), keepdims=True)), axis=(-2, -1))
    return float(np.median(1.4826 * mad))


def run_image_to_image(args: argparse.Namespace, session: Any, volume: Any, header: dict[str, Any]) -> int:
    from viewer.ai.image_to_image import run_on_volume
    from viewer.commands.infer import _slice_indices
    from viewer.io import LoadError
    from viewer.io.derived import write_derived_series

    try:
        idx = _slice_indices(args.slices, volume.shape[0])
        out = run_on_volume(session, volume, idx)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    m = session.manifest
    summary: dict[str, Any] = {**header, "series_uid": volume.series_uid, "slices": len(idx),
                               "noise_before": _noise(volume.array[idx].astype("float32")), "noise_after": _noise(out)}
    if getattr(args, "out", None):
        files = volume.info.files
        if len(files) != volume.shape[0] or len(set(files)) != len(files):
            print("error: the series is not one single-frame file per slice; cannot write it as DICOM",
                  file=sys.stderr)
            return 1
        desc = (volume.info.series_description or volume.modality or "series") + f" [{m.id}]"
        try:
            written = write_derived_series([files[k] for k in idx], out, args.out, description=desc,
                                           derivation=f"{m.title}: {m.intended_use}")
        except LoadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        summary["written"] = len(written)
        summary["out"] = str(args.out)
    if args.json:
        json.dump(summary, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"{m.title} ({m.intended_use}) on {session.device}: {len(idx)} slices, noise estimate "
              f"{summary['noise_before']:.1f} -> {summary['noise_after']:.1f}"
              + (f"; wrote {summary['written']} files to {args.out}" if "out" in summary else ""))
    return 0
