"""Geometry and values against dcm2niix, a converter nobody here wrote.

For every series of ``ct/*`` and ``dcm_qa/*/In``: dcm2niix converts the folder (output cached per test
session); each NIfTI is matched to our stack by SeriesNumber (+ description / acquisition for split
series). Every NIfTI voxel centre is mapped to LPS through dcm2niix's affine (RAS -> LPS flips x and y),
then into our voxel grid through the inverse of our affine: it must land on an integer voxel (within
1e-3 mm in world position) and the values there must be equal.

Values: nibabel's ``get_fdata`` applies the NIfTI scl_slope/scl_inter dcm2niix writes, which are the
DICOM RescaleSlope/Intercept, so both sides are in modality units. dcm2niix runs with ``-p n``: by default it
rescales Philips data with the private ScaleSlope (2005,100E) ("precise" values), which is not the DICOM
modality transform a viewer must show; with ``-p n`` it uses RescaleSlope/Intercept as we do. 4D NIfTIs (fMRI time points, the 4 files
of the Siemens XA10 series) are compared on the volume of the same acquisition.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_tool

import nibabel as nib  # noqa: E402 - a hard dependency

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# (folder below the data root, NIfTI base name, how to pick our stack, 4D volume index)
CASES = [
    ("ct/pancreas-ct-philips-134", None, {}, 0),
    ("ct/crc-chest-ct-ge-100", None, {}, 0),
    ("ct/totalseg-ct-j2k-20/example_ct_dicom", None, {}, 0),
    *[("dcm_qa/ts/In", f"{n}", {"series_number": n}, 0) for n in range(1, 10)],
    *[("dcm_qa/12bit/In", f"{n}", {"series_number": n}, 0) for n in (2, 3, 4)],
    ("dcm_qa/sag/In", "2_gre_field_mapping", {"description": "gre_field_mapping"}, 0),
    ("dcm_qa/sag/In", "2_fmri_SagAP", {"description": "fmri_SagAP", "acq": 1}, 0),
    ("dcm_qa/sag/In", "3_fmri_SagHF", {"description": "fmri_SagHF", "acq": 1}, 0),
    ("dcm_qa/enh/In", "Siemens_XA10", {"file": "6_1.dcm"}, 0),
    ("dcm_qa/enh/In", "Philips_B0_e1", {"file": "IM_0027_fMAP.dcm"}, 0),
]


@pytest.fixture(scope="session")
def dcm2niix_out(tmp_path_factory):
    exe = require_tool("dcm2niix", "pip install dcm2niix, part of the test extra")
    cache: dict[str, Path] = {}

    def convert(src: Path) -> Path:
        key = str(src)
        if key not in cache:
            out = tmp_path_factory.mktemp("dcm2niix")
            subprocess.run([exe, "-z", "n", "-b", "y", "-p", "n", "-f", "%s_%p_%d_%a", "-o", str(out), str(src)],
                           check=True, capture_output=True, timeout=120)
            cache[key] = out
        return cache[key]

    return convert


def _pick_nifti(out: Path, series_number: int | None, description: str | None, echo: int | None):
    found = []
    for js in sorted(out.glob("*.json")):
        try:
            meta = json.loads(js.read_text(), strict=False)  # Siemens text may hold tabs
        except json.JSONDecodeError:
            # dcm2niix writes broken JSON for totalseg's empty UIDs; matching needs no metadata there.
            meta = {}
        nii = js.with_suffix(".nii")
        if not nii.exists():
            continue
        if series_number is not None and meta.get("SeriesNumber") != series_number:
            continue
        if description is not None and description not in meta.get("SeriesDescription", ""):
            continue
        if echo is not None and meta.get("EchoNumber", 1) != echo:
            continue
        found.append((nii, meta))
    assert found, f"dcm2niix wrote no matching NIfTI in {out}: {sorted(p.name for p in out.iterdir())}"
    return found[0]


def _our_stack(folder: Path, how: dict):
    import pydicom

    from viewer.io.series import find_stacks

    stacks = find_stacks(folder).stacks
    chosen = []
    for s in stacks:
        ds = pydicom.dcmread(s.files[0], stop_before_pixels=True)
        if "series_number" in how and int(ds.get("SeriesNumber", -1)) != how["series_number"]:
            continue
        if "description" in how and how["description"] not in str(ds.get("SeriesDescription", "")):
            continue
        if "acq" in how and int(ds.get("AcquisitionNumber", -1)) != how["acq"]:
            continue
        if "file" in how and Path(s.files[0]).name != how["file"]:
            continue
        chosen.append(s)
    assert chosen, f"no stack of {folder} matches {how}"
    return max(chosen, key=lambda s: len(s.files))


@pytest.mark.parametrize("rel,name,how,vol_index", CASES, ids=[c[0].split("/")[-2] + ":" + (c[1] or c[0].split("/")[1])
                                                               for c in CASES])
def test_matches_dcm2niix(data_dir, dcm2niix_out, rel, name, how, vol_index):
    from viewer.io import load_stack

    folder = data_dir / rel
    stack = _our_stack(folder, how)
    vol = load_stack(stack)
    import pydicom

    ds0 = pydicom.dcmread(stack.files[0], stop_before_pixels=True)
    out = dcm2niix_out(folder)
    desc = how.get("description")
    echo = 1 if name and name.endswith("_e1") else None
    number = int(ds0.SeriesNumber) if ds0.get("SeriesNumber") not in (None, "") else None
    nii, _meta = _pick_nifti(out, number, desc, echo)
    img = nib.load(str(nii))
    data = np.asarray(img.dataobj, dtype=np.float64) * 1.0
    slope, inter = img.dataobj.slope, img.dataobj.inter
    data = np.asarray(img.get_fdata(dtype=np.float64)) if (slope, inter) != (1.0, 0.0) else data
    if data.ndim == 4:
        data = data[..., vol_index]
    assert data.ndim == 3
    assert sorted(data.shape) == sorted(vol.shape), (data.shape, vol.shape)

    _assert_same_voxels(vol, img.affine, data)


def _assert_same_voxels(vol, nifti_affine, data):
    """Every voxel centre of the NIfTI (3D ``data`` under ``nifti_affine``, RAS) is one of ours, with equal
    values."""
    # dcm2niix index (a0, a1, a2) -> LPS -> our continuous index: an affine map M that must be a signed
    # axis permutation plus an integer shift. Its error is linear in the index, so checking the 8 corners
    # of the grid bounds the world-position error of every voxel centre.
    nifti_lps = LPS_FROM_RAS @ nifti_affine
    m = np.linalg.inv(vol.affine) @ nifti_lps
    perm = np.rint(m[:3, :3])
    shift = np.rint(m[:3, 3])
    assert sorted(np.abs(perm).sum(axis=0)) == [1, 1, 1] and sorted(np.abs(perm).sum(axis=1)) == [1, 1, 1], \
        f"grids are not aligned axis to axis:\n{np.round(m, 4)}"
    corners = np.array([[a, b, c] for a in (0, data.shape[0] - 1) for b in (0, data.shape[1] - 1)
                        for c in (0, data.shape[2] - 1)], dtype=float)
    world_ref = corners @ nifti_lps[:3, :3].T + nifti_lps[:3, 3]
    ours_idx = corners @ perm.T + shift
    err = np.linalg.norm(vol.voxel_to_patient(ours_idx) - world_ref, axis=1)
    assert err.max() < 1e-3, f"voxel centres differ from dcm2niix by up to {err.max():.5f} mm"
    z, y, x = vol.shape
    assert (ours_idx >= 0).all() and (ours_idx <= [x - 1, y - 1, z - 1]).all(), "grids do not coincide"

    ours_ijk = vol.array.transpose(2, 1, 0)  # (i, j, k)
    axes = [int(np.flatnonzero(perm[:, a])[0]) for a in range(3)]  # our axis of each NIfTI axis
    index = [perm[axes[a], a] * np.arange(data.shape[a]) + shift[axes[a]] for a in range(3)]
    got = ours_ijk.transpose(axes)[np.ix_(*[ix.astype(int) for ix in index])].astype(np.float64)
    np.testing.assert_allclose(got, data, rtol=1e-5, atol=1e-3)


# 4D series: (folder, how to pick our stack, NIfTI base names: one 4D file, or one 3D file per volume)
CASES_4D = [
    ("dcm_qa/enh/In", {"file": "6_1.dcm"}, ["Siemens_XA10"], 4),
    ("dcm_qa/enh/In", {"file": "IM_0027_fMAP.dcm"}, ["Philips_B0_e1", "Philips_B0_e2"], 2),
    ("dcm_qa/sag/In", {"description": "fmri_SagAP"}, ["2_fmri_SagAP"], 6),
    ("dcm_qa/sag/In", {"description": "fmri_SagHF"}, ["3_fmri_SagHF"], 6),
]


@pytest.mark.parametrize("rel,how,names,count", CASES_4D, ids=[c[2][0] for c in CASES_4D])
def test_every_volume_matches_dcm2niix(data_dir, dcm2niix_out, rel, how, names, count):
    """Each volume of a 4D stack, loaded one at a time, has dcm2niix's geometry and values."""
    from viewer.io.load import stack_loader

    folder = data_dir / rel
    stack = _our_stack(folder, how)
    loader = stack_loader(stack)
    assert loader.volumes == count
    out = dcm2niix_out(folder)
    import pydicom

    ds0 = pydicom.dcmread(stack.files[0], stop_before_pixels=True)
    number = int(ds0.SeriesNumber)
    if len(names) == 1:
        nii, _ = _pick_nifti(out, number, how.get("description"), None)
        img = nib.load(str(nii))
        assert img.shape[3] == count
        frames = [(img.affine, np.asarray(img.get_fdata(dtype=np.float64))[..., v]) for v in range(count)]
    else:  # dcm2niix writes one file per echo
        frames = []
        for e in range(1, count + 1):
            nii, _ = _pick_nifti(out, number, how.get("description"), e)
            img = nib.load(str(nii))
            frames.append((img.affine, np.asarray(img.get_fdata(dtype=np.float64))))
    for v, (affine, data) in enumerate(frames):
        vol = loader.load(volume=v)
        assert vol.volumes is not None and vol.volumes.index == v and vol.volumes.count == count
        _assert_same_voxels(vol, affine, data)
