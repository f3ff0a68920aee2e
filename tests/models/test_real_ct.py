"""organ-ct on real CT (TotalSegmentator's example series + reference segmentation), via the ROI path."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def real_ct():  # type: ignore[no-untyped-def]
    # models/training is not a package of the app; load its torch-free module by path.
    spec = importlib.util.spec_from_file_location("real_ct", REPO / "models" / "training" / "real_ct.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_segmentation_lands_on_the_dicom_voxels(data_dir: Path, real_ct) -> None:  # type: ignore[no-untyped-def]
    folder = data_dir / "ct" / "totalseg-ct-j2k-20"
    vol = real_ct.load_dicom_ct(folder / "example_ct_dicom")
    mask = real_ct.mask_on_volume(vol, folder / "example_seg_dicom.nii.gz")
    assert mask.shape == vol.shape == (20, 512, 512)
    # Liver (5) is soft tissue and on the patient's right, i.e. low column indices (LPS: +x = left).
    liver = vol.array[mask == 5]
    assert 40 < np.median(liver) < 160
    cols = np.nonzero(mask == 5)[2]
    spleen_cols = np.nonzero(mask == 1)[2]
    assert np.median(cols) < 256 < np.median(spleen_cols)


def test_organ_boxes_are_classified_as_stored_in_the_card(data_dir: Path, real_ct) -> None:  # type: ignore[no-untyped-def]
    result = real_ct.evaluate_real_ct(data_dir, REPO / "models" / "organ-ct")
    stored = json.loads((REPO / "models" / "organ-ct" / "metrics.json").read_text())["real_ct"]
    assert result["n"] == stored["n"] > 20
    assert set(result["per_organ"]) == {"liver", "pancreas", "spleen"}
    assert result["accuracy"] == pytest.approx(stored["accuracy"], abs=1e-9)
    card = (REPO / "models" / "organ-ct" / "MODEL_CARD.md").read_text()
    assert f"accuracy {stored['accuracy']:.3f}" in card
