"""applies_to from the header: body part (with scanner synonyms), view position, photometric
interpretation, minimum size; refusals name the field and value, missing fields warn. Real radiographs:
pydicom's test data RG1 (a chest PA CR) and RG3 (an extremity AP CR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.ai.helpers import linear_model, write_model_dir
from viewer.ai import load_manifest
from viewer.ai.applies import canonical_body_part, check
from viewer.ai.errors import ManifestError
from viewer.ai.registry import applicability
from viewer.io import load_series


def _cxr_model(tmp_path: Path, **applies: object) -> object:
    folder = write_model_dir(tmp_path / "cxr", lambda p: linear_model(p, np.ones((16, 2)), np.zeros(2), (1, 4, 4)),
                             modalities=["CR", "DX"])
    text = (folder / "manifest.toml").read_text()
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in applies.items())
    (folder / "manifest.toml").write_text(text.replace('scope = "image"\n', 'scope = "image"\n' + extra))
    return load_manifest(folder)


CHEST_ONLY = {"body_parts": ["CHEST"], "view_positions": ["PA", "AP"],
              "photometric": ["MONOCHROME1", "MONOCHROME2"], "min_size": [256, 256]}


@pytest.fixture(scope="module")
def chest_cr() -> object:
    return load_series(get_testdata_file("RG1_UNCR.dcm"))


def test_scanner_synonyms_map_to_the_defined_terms() -> None:
    for raw in ("CHEST", "chest", "THORAX", "CHEST_PA", "Thorax AP", "LUNG", "TORAX"):
        assert canonical_body_part(raw) == "CHEST", raw
    for raw in ("LEG", "KNEE", "EXTREMITY", "HAND"):
        assert canonical_body_part(raw) == "EXTREMITY", raw
    assert canonical_body_part("ABDOMEN") == "ABDOMEN"
    assert canonical_body_part("WHATEVER") == "WHATEVER"
    assert canonical_body_part("") == ""


def test_a_chest_pa_radiograph_is_accepted_without_warning(tmp_path: Path, chest_cr: object) -> None:
    m = _cxr_model(tmp_path, **CHEST_ONLY)
    assert chest_cr.info.body_part == "CHEST" and chest_cr.info.view_position == "PA"
    verdict = check(m, chest_cr)
    assert verdict.ok and verdict.warnings == ()
    assert applicability(m, chest_cr) == (True, "")


def test_a_radiograph_of_a_limb_is_refused_naming_field_and_value(tmp_path: Path) -> None:
    m = _cxr_model(tmp_path, **CHEST_ONLY)
    limb = load_series(get_testdata_file("RG3_UNCR.dcm"))
    verdict = check(m, limb)
    assert not verdict.ok
    assert verdict.field_name == "BodyPartExamined" and verdict.value == "EXTREMITY"
    assert "BodyPartExamined EXTREMITY" in verdict.reason and "CHEST" in verdict.reason


def _variant(tmp_path: Path, **changes: object) -> Path:
    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    for k, v in changes.items():
        if v is None:
            del ds[k]
        else:
            setattr(ds, k, v)
    out = tmp_path / "variant.dcm"
    ds.save_as(out)
    return out


def test_unknown_body_part_runs_with_a_visible_warning(tmp_path: Path) -> None:
    m = _cxr_model(tmp_path, **CHEST_ONLY)
    vol = load_series(_variant(tmp_path, BodyPartExamined=None))
    ok, why = applicability(m, vol)
    assert ok and "BodyPartExamined is empty" in why and "CHEST" in why


def test_lateral_view_small_image_and_synonym(tmp_path: Path) -> None:
    m = _cxr_model(tmp_path, **CHEST_ONLY)
    lateral = check(m, load_series(_variant(tmp_path, ViewPosition="LL")))
    assert not lateral.ok and lateral.field_name == "ViewPosition" and lateral.value == "LL"
    thorax = check(m, load_series(_variant(tmp_path, BodyPartExamined="THORAX")))
    assert thorax.ok
    big = _cxr_model(tmp_path / "big", **{**CHEST_ONLY, "min_size": [4096, 256]})
    small = check(big, load_series(get_testdata_file("RG1_UNCR.dcm")))
    assert not small.ok and small.field_name == "image size" and small.value == "1955x1841"


def test_modality_refusal_still_names_the_modality(tmp_path: Path, data_dir: Path) -> None:
    m = _cxr_model(tmp_path, **CHEST_ONLY)
    ct = load_series(data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom")
    verdict = check(m, ct)
    assert not verdict.ok and verdict.field_name == "Modality" and verdict.value == "CT"


def test_bad_applies_to_values_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="applies_to.min_size"):
        _cxr_model(tmp_path, min_size=[0, 10])
    with pytest.raises(ManifestError, match="applies_to.body_parts"):
        _cxr_model(tmp_path / "b", body_parts=[])
