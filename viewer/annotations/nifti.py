"""Masks to and from NIfTI-1 label maps (nibabel), with the LPS -> RAS affine conversion.

DICOM patient coordinates are LPS; NIfTI's qform/sform world is RAS (x to the patient's Right is
negative, i.e. +x = Left in LPS becomes -x in RAS). So ``affine_ras = diag(-1, -1, 1, 1) @ affine_lps``.
Array order: the viewer's volumes are (z, y, x); NIfTI data is indexed (i, j, k) = (x, y, z), so the
array is transposed, and the voxel->world mapping of index (i=column, j=row, k=slice) stays the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from viewer.core.atomic import write_atomically

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class NiftiError(ValueError):
    """The NIfTI file does not fit the series (shape, geometry) or cannot be read."""


def write_label_map(path: str | Path, labels: np.ndarray, affine_lps: np.ndarray,
                    names: dict[int, str] | None = None) -> None:
    """Save a (z, y, x) integer label map (0 = background) as NIfTI (``.nii`` or ``.nii.gz``).

    Parameters
    ----------
    affine_lps
        The series' 4x4 voxel (i=column, j=row, k=slice) -> LPS mm affine (``Volume.affine``).
    names
        Value -> label name, stored in the header's description (80 bytes) when it fits, and
        always in a JSON sidecar ``<path>.labels.json`` (the NIfTI header has no room for a table).
    """
    import json

    import nibabel as nib

    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise NiftiError(f"label map must be (z, y, x), got shape {labels.shape}")
    dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
    data = np.ascontiguousarray(labels.transpose(2, 1, 0)).astype(dtype)
    affine_ras = LPS_TO_RAS @ np.asarray(affine_lps, dtype=np.float64)
    img: Any = nib.Nifti1Image(data, affine_ras)  # type: ignore[no-untyped-call]
    img.header.set_xyzt_units("mm", "sec")
    # Both qform and sform, code 1 (scanner anatomical): what dcm2niix writes, what ITK-SNAP/Slicer read.
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    sidecar = Path(str(path) + ".labels.json")
    if names and sidecar.exists() and not _is_names_sidecar(sidecar):
        raise NiftiError(f"refusing to write {sidecar}: a file of that name exists and is not a label-names "
                         "sidecar; move it or choose another output name")
    if names:
        text = ";".join(f"{v}={n}" for v, n in sorted(names.items()))
        if len(text) <= 79:
            img.header["descrip"] = text.encode()
    # Temporary file + fsync + rename for both files: a failure leaves earlier files whole.
    write_atomically(path, lambda tmp: nib.save(img, str(tmp)))
    if names:
        doc = json.dumps({str(k): v for k, v in sorted(names.items())})
        write_atomically(sidecar, lambda tmp: tmp.write_text(doc))


def _is_names_sidecar(path: Path) -> bool:
    """True for a JSON object of label value -> name (what :func:`write_label_map` writes)."""
    import json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and all(k.isdigit() and isinstance(v, str) for k, v in doc.items())


def read_label_map(path: str | Path, affine_lps: np.ndarray | None = None,
                   shape: tuple[int, int, int] | None = None, *, tolerance_mm: float = 0.01
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI label map as (z, y, x) integers and its LPS affine.

    With the series' ``affine_lps`` and ``shape`` (z, y, x), the map is put on the series' voxel grid:
    files that store the same voxels with axes flipped or permuted (dcm2niix and TotalSegmentator flip
    the row axis) are reoriented, and the returned affine is the series'.

    Raises
    ------
    NiftiError
        Unreadable file, not 3D, non-integer values, or a grid that is not the series' (beyond
        ``tolerance_mm`` at any voxel, or another voxel size or extent).
    """
    import nibabel as nib

    try:
        img: Any = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds; one clear message
        raise NiftiError(f"{path}: not a readable NIfTI file: {exc}") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise NiftiError(f"{path}: a label map must be 3D, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise NiftiError(f"{path}: label values must be whole numbers")
        data = data.astype(np.int32)
    lps = LPS_TO_RAS @ np.asarray(img.affine, dtype=np.float64)  # LPS_TO_RAS is its own inverse
    if affine_lps is None:
        return np.ascontiguousarray(data.transpose(2, 1, 0)), lps
    affine_lps = np.asarray(affine_lps, dtype=np.float64)
    # file voxel index -> series voxel index; on the same grid this is a signed permutation plus an
    # integer offset.
    m = np.linalg.inv(affine_lps) @ lps
    perm = np.round(m[:3, :3])
    off = m[:3, 3]
    spacing = np.linalg.norm(affine_lps[:3, :3], axis=0)
    tol_vox = tolerance_mm / spacing.min()
    n_src = np.array(data.shape)
    want = np.array(shape[::-1]) if shape is not None else n_src
    ok = (np.abs(m[:3, :3] - perm).max() <= tol_vox and np.all(np.abs(perm).sum(axis=0) == 1)
          and np.all(np.abs(perm).sum(axis=1) == 1))
    if ok:
        order = [int(np.nonzero(perm[a])[0][0]) for a in range(3)]  # series axis a <- file axis order[a]
        signs = [perm[a, order[a]] for a in range(3)]
        ok = all(n_src[order[a]] == want[a] for a in range(3)) and all(
            abs(off[a] - (0.0 if signs[a] > 0 else want[a] - 1)) <= tol_vox for a in range(3))
    if not ok:
        raise NiftiError(f"{path}: its voxel grid (shape {tuple(int(n) for n in n_src)}) is not the series' "
                         f"(shape {tuple(int(n) for n in want)}) within {tolerance_mm} mm; resample it first")
    out = data.transpose(order)
    for a in range(3):
        if signs[a] < 0:
            out = np.flip(out, axis=a)
    return np.ascontiguousarray(out.transpose(2, 1, 0)), affine_lps
