from __future__ import annotations

from pathlib import Path

import pytest

from viewer.annotations.labelsets import (LabelSetError, available_label_sets, get_label_set, load_label_set)

GOOD = """
name = "Mine"
scope = "series"
[[labels]]
name = "a"
color = "#FF0000"
key = "1"
[[labels]]
name = "b"
color = "#00ff00"
"""


def test_defaults_load_with_keys_and_codes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIEWER_CONFIG_DIR", str(tmp_path))
    sets, errors = available_label_sets()
    assert errors == []
    organs = sets["Abdominal organs"]
    assert organs.scope == "roi"
    # OrganAMNIST's official class order (data README): 9 pancreas, 10 spleen.
    assert organs.names[9] == "pancreas" and organs.names[10] == "spleen"
    assert organs.by_name("liver").code is not None and organs.by_name("liver").code.value == "10200004"
    assert organs.by_key("7").name == "liver"
    assert organs.index("bladder") == 1
    assert sets["Image quality"].by_key("3").name == "non-diagnostic"


def test_user_set_overrides_and_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIEWER_CONFIG_DIR", str(tmp_path))
    (tmp_path / "label_sets").mkdir()
    (tmp_path / "label_sets" / "mine.toml").write_text(GOOD)
    (tmp_path / "label_sets" / "broken.toml").write_text("name = \n")
    sets, errors = available_label_sets()
    assert sets["Mine"].scope == "series" and sets["Mine"].by_name("a").color == "#ff0000"
    assert sets["Mine"].by_name("a").rgb == (255, 0, 0)
    assert len(errors) == 1 and "broken.toml" in errors[0] and "not valid TOML" in errors[0]
    assert get_label_set("mine").name == "Mine"
    with pytest.raises(KeyError, match="no label set named 'nope'"):
        get_label_set("nope")


@pytest.mark.parametrize("text, field", [
    ('scope = "image"\n[[labels]]\nname="a"\ncolor="#000000"\n', "missing required field 'name'"),
    ('name="x"\nscope="pixel"\n[[labels]]\nname="a"\ncolor="#000000"\n', "field 'scope'"),
    ('name="x"\n', "field 'labels'"),
    ('name="x"\n[[labels]]\nname="a"\ncolor="red"\n', "labels[0].color"),
    ('name="x"\n[[labels]]\nname="a"\ncolor="#000000"\n[[labels]]\nname="a"\ncolor="#000000"\n', "labels[1].name"),
    ('name="x"\n[[labels]]\nname="a"\ncolor="#000000"\nkey="1"\n[[labels]]\nname="b"\ncolor="#000000"\nkey="1"\n',
     "labels[1].key: key '1' is already used by label 'a'"),
    ('name="x"\n[[labels]]\nname="a"\ncolor="#000000"\nkey="ab"\n', "labels[0].key"),
    ('name="x"\n[[labels]]\ncolor="#000000"\n', "labels[0]: missing required field 'name'"),
    ('name="x"\n[[labels]]\nname="a"\ncolor="#000000"\ncode={scheme="SCT"}\n', "labels[0].code: missing required"),
])
def test_bad_file_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(LabelSetError) as err:
        load_label_set(path)
    assert field in str(err.value) and str(path) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabelSetError, match="cannot read label set"):
        load_label_set(tmp_path / "none.toml")
