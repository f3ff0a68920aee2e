"""Per-slice latency of every shipped model on 2 CPU threads, through the viewer's path, against the raw
onnxruntime session call on an already preprocessed input measured in the same run.

    nice python benchmarks/bench_model_latency.py [--threads 2] [--repeats 30]

Inputs are real images: a 512x512 slice of the pancreas CT for CT models (organ-ct classifies an 80 mm
box, as the sliding window does; ct-denoise filters the whole slice tile by tile), pydicom's chest
radiograph RG1 (1955x1841) for pneumonia-cxr. "viewer" = preprocessing + session + activation/blending
(:func:`viewer.ai.classify` / :func:`viewer.ai.image_to_image.run_tiled`); "raw" = ``InferenceSession.run``
on the network input alone (for the denoiser, all tiles of the slice in one batch). The ratio is
viewer / raw: what the viewer adds around the network.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from _common import data_root, machine, median_time

from viewer.ai import ModelRegistry, ModelSession, classify  # noqa: E402
from viewer.ai.preprocess import run_ops  # noqa: E402
from viewer.ai.runner import context_of  # noqa: E402
from viewer.io import load_series  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args(argv)
    from pydicom.data import get_testdata_file

    ct = load_series(data_root() / "ct" / "pancreas-ct-philips-134")
    cxr = load_series(get_testdata_file("RG1_UNCR.dcm"))
    print(f"# {machine()}; onnxruntime intra-op threads {args.threads}; median of {args.repeats}")
    print(f"{'model':<16} {'input':<26} {'viewer ms':>10} {'raw ms':>8} {'ratio':>6}")
    for entry in ModelRegistry().models():
        m = entry.manifest
        if m is None:
            continue
        session = ModelSession.get(m, "cpu", threads=args.threads)
        vol = cxr if "CR" in m.applies_to.modalities else ct
        ctx = context_of(vol)
        if m.task == "image-to-image":
            from viewer.ai.image_to_image import affine_of, run_tiled

            img = vol.array[60:61]
            a, b = affine_of(m.preprocess)
            th, tw = m.input.tile  # type: ignore[misc]
            x = img[0].astype(np.float32) * a + b
            tiles = np.stack([x[r:r + th, c:c + tw] for r in range(0, 512 - th + 1, th - 2 * m.input.tile_overlap)
                              for c in range(0, 512 - tw + 1, tw - 2 * m.input.tile_overlap)])[:, None]
            viewer_s = median_time(lambda: run_tiled(session, img), args.repeats)
            raw_s = median_time(lambda: session._session.run(None, {m.input.name: tiles}), args.repeats)
            what = f"slice 512x512, {len(tiles)} tiles"
        else:
            if m.applies_to.scope == "roi":
                px = int(round(80.0 / vol.spacing[0]))
                img = vol.array[60:61, 200:200 + px, 200:200 + px]
                what = f"80 mm box ({px}x{px} px)"
            else:
                img = vol.array[0:1]
                what = f"radiograph {img.shape[1]}x{img.shape[2]}"
            x = run_ops(m.preprocess, img, ctx)
            viewer_s = median_time(lambda: classify(session, img, context=ctx), args.repeats)
            raw_s = median_time(lambda: session._session.run(None, {m.input.name: x}), args.repeats)
        print(f"{m.id:<16} {what:<26} {1000 * viewer_s:10.2f} {1000 * raw_s:8.2f} {viewer_s / raw_s:6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
