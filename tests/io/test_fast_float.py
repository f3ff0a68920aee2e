"""Native 16-bit series with a non-integer rescale are read on the byte-level path (no pydicom decode)."""

from __future__ import annotations

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from viewer.io.load import SeriesLoader  # noqa: E402


def test_non_integer_slope_is_read_fast_and_equals_pydicom(data_dir, tmp_path, monkeypatch):
    src = sorted((data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))[:12]
    for k, f in enumerate(src):
        ds = pydicom.dcmread(f)
        # PET-like rescale, different per slice, as scanners write it for each slice's own range.
        ds.RescaleSlope = f"{0.25 + 0.01 * k:.2f}"
        ds.RescaleIntercept = "-1000.5"
        ds.save_as(tmp_path / f.name)
    files = sorted(str(p) for p in tmp_path.glob("*.dcm"))
    from viewer.io import decode_pool

    decoded = []
    real = decode_pool.decode_file
    monkeypatch.setattr(decode_pool, "decode_file", lambda p: decoded.append(p) or real(p))
    vol = SeriesLoader(files).load(workers=1)
    assert decoded == []  # every slice came through the byte-level reader
    assert vol.array.dtype == np.float32
    from pydicom.pixels import apply_modality_lut

    ref = {str(f): apply_modality_lut(pydicom.dcmread(f).pixel_array, pydicom.dcmread(f)) for f in files}
    for k, path in enumerate(vol.metadata["files"]):
        np.testing.assert_allclose(vol.array[k], ref[path], rtol=1e-6, atol=1e-3)
