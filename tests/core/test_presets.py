"""The preset table against the published values (a viewer once swapped two presets)."""

from viewer.core.presets import find_preset, window_presets

PUBLISHED_CT = [  # (name, width, level) as in ../shared/docs/product.md, key 1..7
    ("Soft tissue", 400, 40),
    ("Lung", 1500, -600),
    ("Liver", 150, 90),
    ("Bone", 2500, 480),
    ("Brain", 80, 40),
    ("Mediastinum", 350, 50),
    ("Abdomen", 400, 50),
]


def test_ct_presets_match_published_table_in_key_order():
    got = [(p.name, p.width, p.center) for p in window_presets("CT")]
    assert got == [(n, float(w), float(c)) for n, w, c in PUBLISHED_CT]


def test_find_preset_by_loose_name():
    assert find_preset("soft-tissue").width == 400
    assert find_preset("LUNG").center == -600


def test_unknown_modality_has_no_presets():
    assert window_presets("XA") == ()


def test_a_missing_or_broken_presets_file_means_no_presets_not_a_crash(tmp_path, monkeypatch):
    """An install without its resources (or a user's broken edit): preset keys do nothing, nothing raises."""
    import pytest

    import viewer.core.presets as presets
    from viewer.core.series_info import Window
    from tests.state.phantoms import ramp_volume
    from viewer.core.series_info import Window
    from viewer.state.image import ImageState

    broken = tmp_path / "window_presets.toml"
    broken.write_text("[[CT]\nname = ", encoding="utf-8")
    assert window_presets("CT", tmp_path / "missing.toml") == ()
    assert window_presets("CT", broken) == ()
    monkeypatch.setattr(presets, "RESOURCES", tmp_path / "nowhere")
    window_presets.cache_clear()
    try:
        img = ImageState(ramp_volume(windows=(Window(-100, 20),)))
        assert not img.apply_preset(2) and (img.center, img.width) == (-100, 20)
        with pytest.raises(KeyError, match="no CT window preset named 'lung'"):
            find_preset("lung")
    finally:
        window_presets.cache_clear()
