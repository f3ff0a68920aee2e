"""Every shipped model folder: sha256, manifest vs ONNX graph, reference.npz through the viewer's path.

This is the model-folder test of ``docs/model-manifest.md``: ``reference.npz`` holds raw inputs (before
preprocessing: HU for CT, stored values for radiographs) and the logits that training's own definition
of the preprocessing gives for them, so a viewer window/resize/normalize that differs from training fails.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from viewer.ai.manifest import load_manifest
from viewer.ai.preprocess import Context, Op
from viewer.ai.runner import classify
from viewer.ai.session import ModelSession

MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED = ["organ-ct", "pneumonia-cxr"]


@pytest.fixture(scope="module", params=SHIPPED)
def model(request: pytest.FixtureRequest) -> tuple[Path, ModelSession]:
    folder = MODELS / request.param
    m = load_manifest(folder)  # raises on a sha256 mismatch
    return folder, ModelSession(m, "cpu", threads=1)


def _context(ref: np.lib.npyio.NpzFile, modality: str, monochrome1: bool = False) -> Context:
    c, w = (float(v) for v in ref["window"])
    return Context(window=(c, w), monochrome1=monochrome1, modality=modality)


def test_folder_has_the_four_files_and_the_sha256_matches(model: tuple[Path, ModelSession]) -> None:
    folder, session = model
    for name in ("model.onnx", "manifest.toml", "reference.npz", "MODEL_CARD.md", "metrics.json"):
        assert (folder / name).is_file(), name
    digest = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    assert session.manifest.sha256 == digest
    # weights inside the file, and small enough to ship in the repository (a 3-seed ensemble is ~2.7 MB)
    assert 50_000 < (folder / "model.onnx").stat().st_size < 4_000_000
    assert not list(folder.glob("*.data"))


def test_manifest_names_shapes_dtype_match_the_session(model: tuple[Path, ModelSession]) -> None:
    _, session = model
    m = session.manifest
    (inp,) = session._session.get_inputs()
    out = {o.name: o for o in session._session.get_outputs()}[m.output.name]
    assert inp.name == m.input.name == "input"
    assert inp.type == "tensor(float)" and m.input.dtype == "float32"
    assert [d if isinstance(d, int) else -1 for d in inp.shape] == list(m.input.shape) == [-1, 1, 28, 28]
    assert out.shape[1] == len(m.output.labels)
    assert m.intended_use.lower().startswith("research")


def test_reference_inputs_give_the_stored_outputs(model: tuple[Path, ModelSession]) -> None:
    folder, session = model
    m = session.manifest
    with np.load(folder / "reference.npz") as ref:
        ctx = _context(ref, m.applies_to.modalities[0])
        for key in ("", "_45"):
            raw, expected = ref[f"inputs{key}"], ref[f"outputs{key}"]
            pred = classify(session, raw, context=ctx)
            np.testing.assert_allclose(pred.scores, expected, rtol=1e-4, atol=1e-4, err_msg=f"inputs{key}")
            # the stored inputs are correctly classified test images: a sanity check on the labels too
            assert np.mean(pred.top_index == ref["labels"]) >= 0.75
        if "inputs_monochrome1" in ref.files:
            pred = classify(session, ref["inputs_monochrome1"], context=_context(ref, "DX", monochrome1=True))
            np.testing.assert_allclose(pred.scores, ref["outputs"], rtol=1e-4, atol=1e-4)


def test_reference_catches_a_resize_that_differs_from_training(model: tuple[Path, ModelSession]) -> None:
    """The 45x45 references fail with bilinear (no anti-aliasing) instead of the trained area resize."""
    folder, session = model
    m = session.manifest
    ops = tuple(Op(o.name, {**o.params, "interpolation": "bilinear"}) if o.name == "resize" else o
                for o in m.preprocess)
    wrong = ModelSession(dataclasses.replace(m, preprocess=ops), "cpu", threads=1, warmup=False)
    with np.load(folder / "reference.npz") as ref:
        pred = classify(wrong, ref["inputs_45"], context=_context(ref, m.applies_to.modalities[0]))
        assert np.max(np.abs(pred.scores - ref["outputs_45"])) > 1e-3


def test_card_states_the_metrics_the_run_measured(model: tuple[Path, ModelSession]) -> None:
    folder, _ = model
    metrics = json.loads((folder / "metrics.json").read_text())
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"**{metrics['test']['accuracy']:.4f}**" in card
    assert f"**{metrics['test']['auc']:.4f}**" in card
    assert "CC BY 4.0" in card and "not diagnosis" in card
    assert "cv" in metrics and f"{metrics['cv']['accuracy']['mean']:.4f}" in card
    if metrics.get("operating_point"):  # the threshold the manifest applies is the one the card states
        t = metrics["operating_point"]["threshold"]
        assert load_manifest(folder).output.threshold == t and f"threshold = {t:g}" in card
        assert "read before" in card
    if metrics.get("calibration"):
        assert (folder / "reliability.png").is_file() and "reliability.png" in card
        assert (folder / "reliability.png").stat().st_size < 100_000


def test_ensemble_output_is_the_log_of_averaged_probabilities(model: tuple[Path, ModelSession]) -> None:
    """An ensemble's ``logits`` are log mean-softmax: exp() already sums to 1 and equals the softmax."""
    folder, session = model
    metrics = json.loads((folder / "metrics.json").read_text())
    if metrics["recipe"].get("members", 1) == 1:
        pytest.skip("single network, plain logits")
    # a temperature folded into the graph divides the log-probabilities by T (calibrate.py)
    cal = metrics.get("calibration", {})
    t = cal["temperature"] if cal.get("folded_into_graph") else 1.0
    with np.load(folder / "reference.npz") as ref:
        pred = classify(session, ref["inputs"], context=_context(ref, session.manifest.applies_to.modalities[0]))
    log_p = pred.scores.astype(np.float64) * t
    np.testing.assert_allclose(np.exp(log_p).sum(1), 1.0, atol=1e-4)
    if t == 1.0:
        np.testing.assert_allclose(pred.probabilities, np.exp(pred.scores), atol=1e-5)
    else:  # calibrated: same ranking, softer (T > 1) probabilities than the ensemble's own
        assert np.array_equal(pred.top_index, np.argmax(log_p, axis=1))
        assert np.all(pred.top_probability <= np.exp(log_p).max(1) + 1e-6) == (t >= 1.0)


def test_pneumonia_crops_the_centre_square_before_resizing() -> None:
    """MedMNIST cropped radiographs to the centred square of the short side: a wide image must not squeeze."""
    session = ModelSession(load_manifest(MODELS / "pneumonia-cxr"), "cpu", threads=1, warmup=False)
    names = [o.name for o in session.manifest.preprocess]
    assert names.index("crop") < names.index("resize")
    with np.load(MODELS / "pneumonia-cxr" / "reference.npz") as ref:
        square = ref["inputs_45"]  # (N, 45, 45) stored values
        # Pad 20 columns of air each side: the centre square is the original image again.
        wide = np.pad(square, ((0, 0), (0, 0), (20, 20)), constant_values=0.0)
        ctx = _context(ref, "DX")
        a = classify(session, square, context=ctx)
        b = classify(session, wide, context=ctx)
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-5)
