"""The shipped ct-denoise folder: manifest vs graph, reference tiles through the viewer's tiled engine,
the derived DICOM series ``infer --out`` writes, and the card's held-out figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from viewer.ai.image_to_image import run_tiled
from viewer.ai.manifest import load_manifest
from viewer.ai.registry import ModelRegistry
from viewer.ai.session import ModelSession
from viewer.cli import main
from viewer.io import load_series

FOLDER = Path(__file__).resolve().parents[2] / "models" / "ct-denoise"


@pytest.fixture(scope="module")
def session() -> ModelSession:
    return ModelSession(load_manifest(FOLDER), "cpu", threads=1)


def test_registry_lists_it_and_the_files_are_small() -> None:
    entry = next(e for e in ModelRegistry([FOLDER.parent]).models() if e.id == "ct-denoise")
    assert entry.ok, entry.error
    assert entry.manifest.task == "image-to-image" and entry.manifest.input.tile == (128, 128)
    assert (FOLDER / "model.onnx").stat().st_size < 1_000_000
    for name in ("manifest.toml", "reference.npz", "MODEL_CARD.md", "metrics.json"):
        assert (FOLDER / name).is_file(), name


def test_reference_tiles_give_the_training_side_outputs(session: ModelSession) -> None:
    with np.load(FOLDER / "reference.npz") as ref:
        out = run_tiled(session, ref["inputs"])
        np.testing.assert_allclose(out, ref["outputs"], atol=0.05)  # HU
        # it is a denoiser: the output is close to the input, but smoother
        assert np.abs(out - ref["inputs"]).mean() < 40.0
        assert np.abs(np.diff(out, axis=2)).mean() < np.abs(np.diff(ref["inputs"], axis=2)).mean()


def test_infer_writes_a_derived_lossless_series(tmp_path: Path, data_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    src = data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom"
    rc = main(["infer", str(src), "--model", "ct-denoise", "--slices", "8:10", "--out", str(tmp_path / "out"),
               "--json", "--threads", "1"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["written"] == 2 and summary["noise_after"] < summary["noise_before"]
    files = sorted((tmp_path / "out").glob("*.dcm"))
    ds = pydicom.dcmread(files[0])
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    original = load_series(src)
    assert ds.SeriesInstanceUID != original.series_uid and ds.SeriesInstanceUID
    assert ds.StudyInstanceUID == pydicom.dcmread(original.info.files[8]).StudyInstanceUID
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == original.info.instance_uids[8]
    # lossless: the written pixels are the engine's output rounded to whole HU
    derived = load_series(tmp_path / "out")
    expected = run_tiled(ModelSession.get(load_manifest(FOLDER), "cpu"), original.array[8:10])
    np.testing.assert_array_equal(derived.array, np.rint(expected).astype(np.int16))
    # geometry unchanged: same axes, origin at the first written slice (index 8 of the original)
    np.testing.assert_allclose(derived.affine[:3, :3], original.affine[:3, :3], atol=1e-4)
    np.testing.assert_allclose(derived.affine[:3, 3], original.affine[:3, 3] + 8 * original.affine[:3, 2], atol=1e-3)


def test_card_states_the_held_out_measurements() -> None:
    metrics = json.loads((FOLDER / "metrics.json").read_text())
    card = (FOLDER / "MODEL_CARD.md").read_text()
    h = metrics["held_out"]
    assert h["series"] == "totalseg-ct-j2k-20" and h["series"] not in metrics["training"]["train_series"]
    row = h["rows"]["ct-denoise"]
    assert f"{row['liver_sd']:.1f}" in card and f"{row['edge_10_90_px']:.2f}" in card
    assert row["liver_sd"] < h["rows"]["original"]["liver_sd"]
    assert ("is sharper at equal noise" in card) == bool(h["beats_mean_filter_on_sharpness"])
