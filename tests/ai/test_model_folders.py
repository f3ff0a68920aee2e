"""Every model shipped in models/: sha256, manifest vs graph, and reference.npz through the viewer's own
preprocessing gives the stored outputs (this is what catches a resize or window that differs from training).

``reference.npz`` keys (see models/README.md): ``inputs`` (N, H, W) raw values in modality units and
``outputs`` (N, K) the raw network outputs they must give; optional ``window`` [center, width] (the series'
own window, for ``source = "dicom"``), ``inputs_monochrome1`` (the same images stored MONOCHROME1, giving
the same ``outputs``), and further pairs ``inputs_<tag>`` / ``outputs_<tag>``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from viewer.ai import ModelSession, load_manifest, preprocess
from viewer.ai.registry import REPO_MODELS
from viewer.ai.session import inspect_model
from viewer.core.series_info import SeriesInfo, Window

FOLDERS = sorted(p.parent for p in REPO_MODELS.glob("*/manifest.toml"))


def test_models_are_shipped() -> None:
    assert FOLDERS, "models/ holds no model folder: the application ships at least one"


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_shipped_model_reproduces_its_reference_outputs(folder: Path) -> None:
    m = load_manifest(folder)  # sha256 checked here
    assert m.id == folder.name, "a shipped model's folder is named after its id"
    inspect_model(m)
    assert (folder / "reference.npz").is_file(), f"{folder.name}/reference.npz missing"
    ref = np.load(folder / "reference.npz")
    session = ModelSession.get(m, "cpu")
    info = SeriesInfo(photometric="MONOCHROME2",
                      windows=(Window(*(float(v) for v in ref["window"])),) if "window" in ref.files else ())
    pairs = [("inputs", "outputs")] + [(k, "outputs_" + k[len("inputs_"):]) for k in ref.files
                                       if k.startswith("inputs_") and "outputs_" + k[len("inputs_"):] in ref.files]
    checked = 0
    for xin, yout in pairs:
        if m.task == "image-to-image":  # tiles through the engine; outputs in modality units (HU)
            from viewer.ai.image_to_image import run_tiled

            np.testing.assert_allclose(run_tiled(session, ref[xin]), ref[yout], rtol=1e-4, atol=0.05,
                                       err_msg=f"{folder.name}: {xin}")
            checked += 1
            continue
        got = session.run(preprocess(m, ref[xin], info=info))
        np.testing.assert_allclose(got, ref[yout], rtol=1e-4, atol=2e-4, err_msg=f"{folder.name}: {xin}")
        checked += 1
    if "inputs_monochrome1" in ref.files:
        mono1 = dataclasses.replace(info, photometric="MONOCHROME1")
        got = session.run(preprocess(m, ref["inputs_monochrome1"], info=mono1))
        np.testing.assert_allclose(got, ref["outputs"], rtol=1e-4, atol=2e-4, err_msg=f"{folder.name}: MONOCHROME1")
    assert checked >= 1
    assert (folder / "MODEL_CARD.md").is_file(), f"{folder.name}/MODEL_CARD.md missing"
    if m.task == "classification":
        assert len(m.output.labels) == ref["outputs"].shape[1]
