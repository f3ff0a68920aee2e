from __future__ import annotations

import numpy as np
import pytest

from viewer.annotations import masks


def test_disc_pixels_match_the_circle() -> None:
    d = masks.disc((20, 30), (10.0, 5.0), 3.0)
    rr, cc = np.nonzero(d)
    assert np.all((cc - 10.0) ** 2 + (rr - 5.0) ** 2 <= 9.0)
    assert d.sum() == 29  # lattice points within radius 3: Gauss circle count N(3) = 29
    assert d[5, 10] and d[5, 13] and not d[5, 14] and d[2, 10] and not d[1, 10]


def test_disc_clipped_at_the_border_and_tiny_radius() -> None:
    assert masks.disc((10, 10), (0.0, 0.0), 2.0).sum() == 6  # quarter of N(2)=13 incl. axes: 1+2+2+1
    near = masks.disc((10, 10), (4.2, 6.9), 0.1)  # a tiny brush still paints the pixel under it
    assert near.sum() == 1 and near[7, 4]
    assert masks.disc((10, 10), (4.5, 6.5), 0.1).sum() == 0  # exactly between pixel centres: 0.707 > 0.5
    one = masks.disc((10, 10), (4.0, 7.0), 0.1)
    assert one.sum() == 1 and one[7, 4]
    assert masks.disc((10, 10), (-50.0, -50.0), 3.0).sum() == 0


def test_paint_erase_and_stroke() -> None:
    plane = np.zeros((32, 32), bool)
    painted = masks.paint(plane, (16, 16), 4)
    assert painted.sum() == masks.disc((32, 32), (16, 16), 4).sum() and not plane.any()
    erased = masks.paint(painted, (16, 16), 2, value=False)
    assert erased.sum() == painted.sum() - masks.disc((32, 32), (16, 16), 2).sum()
    line = masks.stroke(plane, [(2, 2), (29, 2)], 1.0)
    assert line[2, 2:30].all()  # no gaps along a fast drag


def test_flood_fill_fills_inside_outline_only() -> None:
    plane = np.zeros((20, 20), bool)
    plane[5, 5:15] = plane[14, 5:15] = plane[5:15, 5] = plane[5:15, 14] = True  # a square outline
    inside = masks.flood_fill(plane, (10, 10))
    assert inside[6:14, 6:14].all() and not inside[0:5].any() and inside.sum() == 100
    holes = masks.fill_holes(plane)
    assert np.array_equal(holes, inside)
    outside = masks.flood_fill(plane, (0, 0))
    assert outside.sum() == 400 - 64
    with pytest.raises(ValueError, match="outside a 20x20 slice"):
        masks.flood_fill(plane, (20, 0))


def test_polygon_mask() -> None:
    sq = masks.polygon_mask((10, 10), [(2, 2), (6, 2), (6, 6), (2, 6)])
    assert sq.sum() == 16 and sq[2:6, 2:6].all()


def _reference_fill(plane: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """Slow, obviously right: grow the region by 4-neighbour dilation until it stops changing."""
    allowed = plane == plane[seed]
    region = np.zeros_like(plane)
    region[seed] = True
    while True:
        grown = region.copy()
        grown[1:] |= region[:-1]
        grown[:-1] |= region[1:]
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown &= allowed
        if np.array_equal(grown, region):
            break
        region = grown
    out = plane.copy()
    out[region] = True
    return out


def test_flood_fill_matches_reference_on_random_masks() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        plane = rng.random((int(rng.integers(1, 25)), int(rng.integers(1, 25)))) < rng.random()
        seed = (int(rng.integers(plane.shape[0])), int(rng.integers(plane.shape[1])))
        assert np.array_equal(masks.flood_fill(plane, seed), _reference_fill(plane, seed))


def test_flood_fill_follows_a_maze() -> None:
    walls = np.zeros((64, 64), bool)
    walls[::4, :60] = True
    walls[2::4, 4:] = True  # a serpentine corridor through the whole slice
    filled = masks.flood_fill(walls, (1, 0))
    assert filled.all()
    # Erasing from a wall pixel removes exactly the walls connected to it (each wall row is separate).
    erased = masks.flood_fill(walls, (0, 0), value=False)
    assert not erased[0].any() and np.array_equal(erased[1:], walls[1:])
