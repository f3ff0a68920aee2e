"""NIfTI label maps: LPS<->RAS checked against TotalSegmentator's own mask of the same CT series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from viewer.annotations.nifti import NiftiError, read_label_map, write_label_map


@pytest.fixture(scope="module")
def totalseg(data_dir: Path):  # type: ignore[no-untyped-def]
    from viewer.io import load_series

    folder = data_dir / "ct" / "totalseg-ct-j2k-20"
    return load_series(folder / "example_ct_dicom"), folder / "example_seg_dicom.nii.gz"


def test_reference_mask_lands_on_the_series_grid(totalseg) -> None:  # type: ignore[no-untyped-def]
    import nibabel as nib

    volume, seg_path = totalseg
    labels, affine = read_label_map(seg_path, volume.affine, volume.shape)
    assert labels.shape == volume.shape and np.array_equal(affine, volume.affine)
    # Independent check of the orientation: the file's own (RAS) world position of a labelled voxel
    # equals the series' LPS position of the same voxel with x and y negated.
    img = nib.load(seg_path)
    raw = np.asanyarray(img.dataobj)
    i, j, k = (int(v[len(v) // 2]) for v in np.nonzero(raw == 5))  # label 5 = liver in TotalSegmentator
    ras = img.affine @ [i, j, k, 1]
    lps = np.array([-ras[0], -ras[1], ras[2]])
    ijk = np.round(volume.patient_to_voxel(lps)).astype(int)
    assert labels[ijk[2], ijk[1], ijk[0]] == 5
    # Liver voxels have liver-like CT values (HU) in the series: the mask is not mirrored.
    assert 20 < float(np.median(volume.array[labels == 5])) < 200


def test_write_read_round_trip(totalseg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import nibabel as nib

    volume, seg_path = totalseg
    labels, _ = read_label_map(seg_path, volume.affine, volume.shape)
    out = tmp_path / "mask.nii.gz"
    write_label_map(out, labels, volume.affine, names={5: "liver", 1: "spleen"})
    back, affine = read_label_map(out, volume.affine, volume.shape)
    assert np.array_equal(back, labels) and np.allclose(affine, volume.affine)
    img = nib.load(out)
    # RAS world, axes along the DICOM rows/columns; slices in display order (Im 1 = the cranial end here).
    assert nib.aff2axcodes(img.affine) == ("L", "P", "I" if volume.affine[2, 2] < 0 else "S")
    assert img.header.get_xyzt_units()[0] == "mm" and int(img.header["sform_code"]) == 1
    assert (tmp_path / "mask.nii.gz.labels.json").read_text() == '{"1": "spleen", "5": "liver"}'
    # Same voxels in the world as the reference file (which stores rows flipped).
    ref = nib.load(seg_path)
    for idx in ([0, 0, 0], [511, 0, 19], [100, 200, 7]):
        ours = img.affine @ [*idx, 1]
        theirs_idx = np.linalg.inv(ref.affine) @ ours
        assert np.allclose(theirs_idx, np.round(theirs_idx), atol=1e-4)
        assert np.asanyarray(img.dataobj)[tuple(idx)] == np.asanyarray(ref.dataobj)[tuple(np.round(theirs_idx[:3])
                                                                                          .astype(int))]


def test_other_grid_is_refused(totalseg, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    volume, _ = totalseg
    with pytest.raises(NiftiError, match="not the series'"):
        read_label_map(data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct.nii.gz", volume.affine, volume.shape)
    (tmp_path / "bad.nii.gz").write_bytes(b"junk")
    with pytest.raises(NiftiError, match="not a readable NIfTI"):
        read_label_map(tmp_path / "bad.nii.gz")
    shifted = volume.affine.copy()
    shifted[0, 3] += 0.5
    write_label_map(tmp_path / "s.nii", np.zeros(volume.shape, np.uint8), shifted)
    with pytest.raises(NiftiError, match="resample it first"):
        read_label_map(tmp_path / "s.nii", volume.affine, volume.shape)
