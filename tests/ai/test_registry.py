"""Registry: models from several folders, broken ones listed with their error; applicability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.ai.helpers import linear_model, write_model_dir
from viewer.ai import ModelError, ModelRegistry, applicability, load_manifest, user_models_dir
from viewer.ai.registry import REPO_MODELS, default_model_dirs
from viewer.core.volume import Volume

W = np.ones((16, 2), dtype=np.float32)


def _model(folder: Path, **kw) -> Path:  # type: ignore[no-untyped-def]
    return write_model_dir(folder, lambda p: linear_model(p, W, np.zeros(2), (1, 4, 4)), **kw)


def test_listing_survives_broken_models(tmp_path: Path) -> None:
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    _model(shipped / "good", model_id="good")
    _model(shipped / "altered", model_id="altered")
    with open(shipped / "altered" / "model.onnx", "ab") as fh:
        fh.write(b"x")
    _model(user / "typo", model_id="typo")
    (user / "typo" / "manifest.toml").write_text((user / "typo" / "manifest.toml").read_text() + "colour = 1\n")
    _model(user / "again", model_id="good")  # same id as a shipped model
    _model(user / "wrongname", model_id="wrongname", out_name="probs")
    (user / "not-a-model").mkdir()
    (user / "stray.txt").write_text("")
    reg = ModelRegistry([shipped, user, tmp_path / "missing"])
    entries = {e.folder.name: e for e in reg.models()}
    assert set(entries) == {"good", "altered", "typo", "again", "wrongname"}
    assert entries["good"].ok and entries["good"].manifest is not None
    assert not entries["altered"].ok and "sha256" in (entries["altered"].error or "")
    assert "colour: unknown key" in (entries["typo"].error or "")
    assert "already provided by" in (entries["again"].error or "")
    assert "output.name" in (entries["wrongname"].error or "")
    assert reg.get("good").folder == shipped / "good"
    with pytest.raises(ModelError, match="sha256"):
        reg.get("altered")
    with pytest.raises(ModelError, match=r"usable models: good"):
        reg.get("nonexistent")


def test_user_models_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIEWER_MODELS_DIR", str(tmp_path / "mine"))
    assert user_models_dir() == tmp_path / "mine"
    assert default_model_dirs() == [REPO_MODELS, tmp_path / "mine"]
    monkeypatch.delenv("VIEWER_MODELS_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert user_models_dir() == tmp_path / "cfg" / "dicom-viewer" / "models"


def test_applicability_says_why(tmp_path: Path) -> None:
    m = load_manifest(_model(tmp_path / "ct", modalities=["CT"]))
    grey = np.zeros((2, 4, 4), dtype=np.int16)
    ct = Volume(grey, np.eye(4), modality="CT")
    assert applicability(m, ct) == (True, "")
    ok, why = applicability(m, Volume(grey, np.eye(4), modality="MR"))
    assert not ok and "for CT images" in why and "MR" in why
    ok, why = applicability(m, Volume(grey, np.eye(4), modality=""))
    assert not ok and "unknown modality" in why
    ok, why = applicability(m, Volume(np.zeros((2, 4, 4, 3), np.uint8), np.eye(4), modality="CT"))
    assert not ok and "colour" in why
