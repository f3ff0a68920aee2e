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
