"""The organ-ct class-map agreement figures, reproduced: sliding windows on TotalSegmentator's example CT.

For each window size (20, 60, 80, 100 mm; 20 mm is about the 28-pixel default on this 0.78 mm series)
and every slice of ``ct/totalseg-ct-j2k-20``, :func:`viewer.ai.runner.sliding_window_map` classifies
windows every half window (the viewer's default stride); a window "agrees" when its centre pixel lies in
one of our 11 organs in TotalSegmentator's reference segmentation (aligned as in :mod:`real_ct`) and it
got that organ's label. The figure is agreeing windows / windows whose centre lies in an organ.

``python models/training/class_map_agreement.py`` prints the table and stores it in ``models/organ-ct/
metrics.json`` (key ``class_map_agreement``). No torch needed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from real_ct import REPO, TOTALSEG_TO_ORGAN, load_dicom_ct, mask_on_volume  # noqa: E402

SIZES_MM = (20.0, 60.0, 80.0, 100.0)


def agreement(data_dir: Path, model_dir: Path, sizes_mm: tuple[float, ...] = SIZES_MM) -> dict[str, Any]:
    from viewer.ai.manifest import load_manifest
    from viewer.ai.runner import sliding_window_map
    from viewer.ai.session import ModelSession

    folder = data_dir / "ct" / "totalseg-ct-j2k-20"
    volume = load_dicom_ct(folder / "example_ct_dicom")
    mask = mask_on_volume(volume, folder / "example_seg_dicom.nii.gz")
    session = ModelSession.get(load_manifest(model_dir), "cpu")
    organ_of = np.full(256, "", dtype=object)
    for code, organ in TOTALSEG_TO_ORGAN.items():
        organ_of[code] = organ
    out: dict[str, Any] = {}
    for mm in sizes_mm:
        inside = agree = 0
        per: dict[str, list[int]] = {}
        for k in range(volume.shape[0]):
            cm = sliding_window_map(session, volume, k, window_mm=(mm, mm))
            labels = cm.class_map
            for i, r in enumerate(cm.rows):
                for j, c in enumerate(cm.cols):
                    truth = organ_of[mask[k, r + cm.window[0] // 2, c + cm.window[1] // 2]]
                    if not truth:
                        continue
                    hit = cm.labels[labels[i, j]] == truth
                    inside += 1
                    agree += int(hit)
                    per.setdefault(truth, [0, 0])[0] += int(hit)
                    per[truth][1] += 1
        out[f"{mm:g}"] = {"window_px": list(cm.window), "windows_in_organ": inside, "agree": agree,
                          "fraction": agree / inside if inside else float("nan"),
                          "per_organ": {o: {"agree": a, "n": n} for o, (a, n) in sorted(per.items())}}
        print(f"{mm:5.0f} mm ({cm.window[0]} px): {agree}/{inside} = {out[f'{mm:g}']['fraction']:.3f}", flush=True)
    return out


def main() -> int:
    data = Path(os.environ.get("VIEWER_TEST_DATA", REPO.parent / "shared" / "data"))
    model_dir = REPO / "models" / "organ-ct"
    result = agreement(data, model_dir)
    metrics_path = model_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["class_map_agreement"] = result
    metrics_path.write_text(json.dumps(metrics, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
