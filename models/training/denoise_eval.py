"""Evaluation of ct-denoise on the held-out series against the classical display filters.

On every slice of ``totalseg-ct-j2k-20`` (never used in training), through the viewer's own engine
(:func:`viewer.ai.image_to_image.run_tiled`) and filters (:mod:`viewer.core.filters`):

- noise: the standard deviation of HU inside the liver (TotalSegmentator's reference mask, label 5,
  eroded by 3 pixels so no boundary is included) and inside subcutaneous/visceral fat (pixels whose
  4-pixel Gaussian-smoothed original is in -130..-70 HU, eroded by 2 pixels);
- sharpness: the 10-90 % width (in pixels) of the mean edge-spread function across the liver boundary:
  every pixel within 6 pixels of the boundary is binned by its signed in-plane distance to it (0.25-pixel
  bins), the mean HU per bin is the edge profile, and the width is the distance between its 10 % and 90 %
  crossings between the outside (-6..-4 px) and inside (+4..+6 px) plateaus.

The classical filters are compared at equal noise: the Gaussian's sigma is searched (bisection) until
its liver SD equals the denoiser's; the mean filter (integer box sizes only) is interpolated linearly
between 1x1 (the original), 3x3 and 5x5 at the denoiser's SD.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from denoise import CT, HELD_OUT, OUT, REPO
from real_ct import load_dicom_ct, mask_on_volume

from viewer.core import filters


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    m = mask.copy()
    for _ in range(r):
        p = np.pad(m, ((0, 0), (1, 1), (1, 1)))
        m = p[:, 1:-1, 1:-1] & p[:, :-2, 1:-1] & p[:, 2:, 1:-1] & p[:, 1:-1, :-2] & p[:, 1:-1, 2:]
    return m


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Per slice, in-plane signed distance (pixels) to the mask boundary: > 0 inside (SimpleITK)."""
    import SimpleITK as sitk

    out = np.zeros(mask.shape, np.float32)
    for k in range(mask.shape[0]):
        if mask[k].any():
            img = sitk.GetImageFromArray(mask[k].astype(np.uint8))
            d = sitk.SignedMaurerDistanceMap(img, insideIsPositive=True, squaredDistance=False, useImageSpacing=False)
            out[k] = sitk.GetArrayFromImage(d)
        else:
            out[k] = -1e9
    return out


def edge_width(img: np.ndarray, dist: np.ndarray) -> tuple[float, list[float]]:
    band = np.abs(dist) <= 6.0
    bins = np.arange(-6.0, 6.0001, 0.25)
    idx = np.digitize(dist[band], bins) - 1
    prof = np.bincount(idx, weights=img[band], minlength=len(bins)) / np.maximum(np.bincount(idx, minlength=len(bins)), 1)
    prof = prof[:len(bins) - 1]
    centres = (bins[:-1] + bins[1:]) / 2
    lo, hi = prof[centres < -4].mean(), prof[centres > 4].mean()
    norm = (prof - lo) / (hi - lo)

    def crossing(level: float) -> float:
        above = np.flatnonzero(norm >= level) if hi > lo else np.flatnonzero(norm <= level)
        i = int(above[0])
        if i == 0:
            return float(centres[0])
        x0, x1, y0, y1 = centres[i - 1], centres[i], norm[i - 1], norm[i]
        return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0))

    return crossing(0.9) - crossing(0.1), [round(float(v), 1) for v in prof]


def measure(img: np.ndarray, liver: np.ndarray, fat: np.ndarray, dist: np.ndarray) -> dict[str, Any]:
    w, _ = edge_width(img, dist)
    return {"liver_sd": float(img[liver].std()), "fat_sd": float(img[fat].std()), "liver_mean": float(img[liver].mean()),
            "edge_10_90_px": w}


def evaluate() -> dict[str, Any]:
    from viewer.ai import load_manifest
    from viewer.ai.image_to_image import run_tiled
    from viewer.ai.session import ModelSession

    folder = CT / HELD_OUT / "example_ct_dicom"
    vol = load_dicom_ct(folder if folder.is_dir() else CT / HELD_OUT)
    hu = vol.array.astype(np.float32)
    seg = mask_on_volume(vol, CT / HELD_OUT / "example_seg_dicom.nii.gz")
    liver_mask = seg == 5
    liver = _erode(liver_mask, 3)
    smooth = filters.gaussian_filter(hu, 4.0)
    fat = _erode((smooth > -130) & (smooth < -70), 2)
    dist = signed_distance(liver_mask)
    session = ModelSession.get(load_manifest(OUT), "cpu", batch_size=8)
    den = run_tiled(session, hu)
    rows: dict[str, Any] = {"original": measure(hu, liver, fat, dist), "ct-denoise": measure(den, liver, fat, dist)}
    target = rows["ct-denoise"]["liver_sd"]
    for r in (1, 2):
        rows[f"mean {2 * r + 1}x{2 * r + 1}"] = measure(filters.mean_filter(hu, r), liver, fat, dist)
    rows["median 3x3"] = measure(filters.median_filter(hu, 1), liver, fat, dist)
    rows["bilateral 1.5 px / 40 HU"] = measure(filters.bilateral_filter(hu, 1.5, 40.0), liver, fat, dist)
    lo, hi = 0.05, 4.0
    for _ in range(20):  # Gaussian sigma giving the denoiser's liver SD
        mid = (lo + hi) / 2
        sd = float(filters.gaussian_filter(hu, mid)[liver].std())
        lo, hi = (mid, hi) if sd > target else (lo, mid)
    sigma = round((lo + hi) / 2, 3)
    rows[f"Gaussian sigma {sigma} (equal liver SD)"] = measure(filters.gaussian_filter(hu, sigma), liver, fat, dist)
    # the mean filter at the denoiser's SD, interpolated between box sizes 1, 3, 5
    pts = [(rows["original"]["liver_sd"], rows["original"]["edge_10_90_px"])] + \
        [(rows[k]["liver_sd"], rows[k]["edge_10_90_px"]) for k in ("mean 3x3", "mean 5x5")]
    sds, widths = zip(*sorted(pts))
    mean_at = float(np.interp(target, sds, widths)) if min(sds) <= target <= max(sds) else None
    result = {"series": HELD_OUT, "slices": int(hu.shape[0]), "liver_pixels": int(liver.sum()), "fat_pixels": int(fat.sum()),
              "rows": rows, "mean_filter_edge_at_equal_sd": mean_at,
              "beats_mean_filter_on_sharpness": None if mean_at is None else bool(rows["ct-denoise"]["edge_10_90_px"] < mean_at)}
    metrics_path = OUT / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    metrics["held_out"] = result
    metrics_path.write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    evaluate()
