"""organ-ct on real CT, not MedMNIST: TotalSegmentator's example series and its reference segmentation.

``ct/totalseg-ct-j2k-20`` is a 20-slice abdominal CT (JPEG 2000); ``example_seg_dicom.nii.gz`` is
TotalSegmentator's own segmentation of it (v2 "total" label numbering: 1 spleen, 2 kidney_right,
3 kidney_left, 5 liver, 7 pancreas, 10-14 lung lobes, 21 urinary_bladder, 51 heart, 75 femur_left,
76 femur_right). The mask is brought onto the DICOM voxel grid through both affines (NIfTI RAS ->
LPS -> DICOM voxel indices, nearest neighbour), then, on every slice, the tight bounding box of each
of our 11 organs that covers at least ``MIN_PIXELS`` pixels is classified through the viewer's ROI path
(:func:`viewer.ai.runner.classify_box`), like a user drawing a box around the organ.

Run ``python models/training/real_ct.py`` to print the result and store it in ``models/organ-ct/
metrics.json`` (key ``real_ct``); ``tests/models/test_real_ct.py`` runs the same code. No torch needed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from viewer.core.volume import Volume  # noqa: E402

# TotalSegmentator v2 "total" label -> OrganAMNIST class name. Left/right are the patient's.
TOTALSEG_TO_ORGAN = {
    1: "spleen", 2: "kidney-right", 3: "kidney-left", 5: "liver", 7: "pancreas",
    10: "lung-left", 11: "lung-left", 12: "lung-right", 13: "lung-right", 14: "lung-right",
    21: "bladder", 51: "heart", 75: "femur-left", 76: "femur-right",
}
MIN_PIXELS = 200  # smaller cross-sections (an organ's tip) are not what a user would box


def load_dicom_ct(folder: Path) -> Volume:
    """The series as a Volume in HU (z, y, x) with its LPS affine; slices sorted along the normal.

    Written here with pydicom because the viewer's series loader is another engineer's work in progress;
    the geometry follows the same definition (PS3.3 C.7.6.2.1.1).
    """
    import pydicom

    dss = [pydicom.dcmread(p) for p in sorted(folder.iterdir()) if p.is_file()]
    orient = np.array(dss[0].ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(orient[:3], orient[3:])
    dss.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, dtype=np.float64))))
    pos = np.array([d.ImagePositionPatient for d in dss], dtype=np.float64)
    row_mm, col_mm = (float(v) for v in dss[0].PixelSpacing)
    hu = np.stack([d.pixel_array.astype(np.float32) * float(getattr(d, "RescaleSlope", 1))
                   + float(getattr(d, "RescaleIntercept", 0)) for d in dss])
    affine = np.eye(4)
    affine[:3, 0] = orient[:3] * col_mm   # i (column index) moves along the row direction
    affine[:3, 1] = orient[3:] * row_mm   # j (row index) moves along the column direction
    affine[:3, 2] = (pos[-1] - pos[0]) / max(len(dss) - 1, 1)
    affine[:3, 3] = pos[0]
    return Volume(hu.astype(np.int16), affine, modality="CT")


def mask_on_volume(volume: Volume, seg_path: Path) -> np.ndarray:
    """The segmentation's labels resampled (nearest) onto ``volume``'s voxels, (z, y, x) uint8."""
    import nibabel as nib

    seg = nib.load(str(seg_path))
    labels = np.asarray(seg.dataobj)
    z, y, x = volume.shape
    k, j, i = np.meshgrid(np.arange(z), np.arange(y), np.arange(x), indexing="ij")
    lps = volume.voxel_to_patient(np.stack([i, j, k], axis=-1).reshape(-1, 3))
    ras = lps * np.array([-1.0, -1.0, 1.0])  # NIfTI world is RAS, DICOM is LPS
    inv = np.linalg.inv(seg.affine)
    vox = np.rint(ras @ inv[:3, :3].T + inv[:3, 3]).astype(np.int64)
    inside = np.all((vox >= 0) & (vox < np.array(labels.shape[:3])), axis=1)
    out = np.zeros(vox.shape[0], dtype=np.uint8)
    out[inside] = labels[vox[inside, 0], vox[inside, 1], vox[inside, 2]]
    return out.reshape(z, y, x)


def organ_boxes(mask: np.ndarray) -> list[tuple[int, tuple[int, int, int, int], str]]:
    """(slice k, box (row0, col0, row1, col1) half-open, true organ) for every organ cross-section."""
    found = []
    for k in range(mask.shape[0]):
        for organ in sorted(set(TOTALSEG_TO_ORGAN.values())):
            codes = [c for c, o in TOTALSEG_TO_ORGAN.items() if o == organ]
            m = np.isin(mask[k], codes)
            if m.sum() < MIN_PIXELS:
                continue
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            found.append((k, (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1), organ))
    return found


def evaluate_real_ct(data_dir: Path, model_dir: Path) -> dict[str, Any]:
    """Classify every organ box; returns accuracy, counts per organ and each box's prediction."""
    from viewer.ai.manifest import load_manifest
    from viewer.ai.runner import classify_box
    from viewer.ai.session import ModelSession

    folder = data_dir / "ct" / "totalseg-ct-j2k-20"
    volume = load_dicom_ct(folder / "example_ct_dicom")
    mask = mask_on_volume(volume, folder / "example_seg_dicom.nii.gz")
    session = ModelSession.get(load_manifest(model_dir), "cpu")
    rows = []
    for k, box, organ in organ_boxes(mask):
        p = classify_box(session, volume, k, box)
        rows.append({"slice": k, "box": list(box), "true": organ, "predicted": p.top_label[0],
                     "probability": round(float(p.top_probability[0]), 4)})
    per: dict[str, dict[str, int]] = {}
    for r in rows:
        d = per.setdefault(r["true"], {"n": 0, "correct": 0})
        d["n"] += 1
        d["correct"] += int(r["true"] == r["predicted"])
    acc = float(np.mean([r["true"] == r["predicted"] for r in rows])) if rows else float("nan")
    summary = (f"On TotalSegmentator's example CT (20 axial slices, Siemens, JPEG 2000; Apache-2.0) with its "
               f"reference segmentation aligned through the affines, {len(rows)} organ boxes (tight 2D "
               f"bounding box of an organ on a slice, >= {MIN_PIXELS} pixels) were classified through the "
               f"viewer's ROI path: accuracy {acc:.3f}. Per organ (correct/boxes): "
               + ", ".join(f"{o} {d['correct']}/{d['n']}" for o, d in sorted(per.items()))
               + ". Only liver, spleen and pancreas are in this series, so this is a small sanity check "
               "of the HU window and resize on real data, not a benchmark.")
    return {"accuracy": acc, "n": len(rows), "per_organ": per, "boxes": rows, "summary": summary}


def main() -> int:
    data = Path(os.environ.get("VIEWER_TEST_DATA", REPO.parent / "shared" / "data"))
    model_dir = REPO / "models" / "organ-ct"
    result = evaluate_real_ct(data, model_dir)
    metrics_path = model_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["real_ct"] = result
    metrics_path.write_text(json.dumps(metrics, indent=1) + "\n")
    print(result["summary"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
