"""A series that grows while it arrives (ViewportModel.grow, state.arrivals): the reader's slice (by patient
position), window and zoom stay put as slices arrive before and after it; the whole volume refines it."""

from __future__ import annotations

import dataclasses

import numpy as np

from tests.state.phantoms import ramp_volume
from viewer.core.volume import Volume
from viewer.state.arrivals import Arrivals
from viewer.state.workspace import ViewportModel, slice_position


def _part(whole: Volume, lo: int, hi: int) -> Volume:
    """Slices lo..hi-1 of ``whole`` as their own volume (what has arrived so far)."""
    aff = whole.affine.copy()
    aff[:3, 3] = whole.voxel_to_patient(np.array([0.0, 0.0, float(lo)]))
    return dataclasses.replace(whole, array=whole.array[lo:hi].copy(), affine=aff)


def test_growing_keeps_the_readers_place_window_and_zoom_then_the_whole_volume_refines_it() -> None:
    whole = ramp_volume(shape=(20, 16, 12))
    vp = ViewportModel(0)
    events: list[frozenset[str]] = []
    vp.subscribe(events.append)
    vp.start_loading("1.2.3")
    vp.grow(_part(whole, 8, 10), np.ones(2, dtype=bool), 20)
    assert vp.status == "preview" and vp.view.slice_index == 0 and vp.view.slice_count == 2
    assert any("ready" in e for e in events)
    vp.view.set_slice(1)
    vp.image.set_window(55.0, 222.0)
    vp.view.set_zoom(3.0)
    here = slice_position(vp.shown, 1)
    # Slices arrive before the one shown (indices shift) and after it, with a gap not stored yet.
    ready = np.ones(12, dtype=bool)
    ready[5] = False
    vp.grow(_part(whole, 2, 14), ready, 20)
    assert vp.view.slice_count == 12 and vp.view.slice_index == 7
    np.testing.assert_allclose(slice_position(vp.shown, vp.view.slice_index), here)
    assert (vp.image.center, vp.image.width, vp.view.zoom) == (55.0, 222.0, 3.0)
    assert vp.ready is not None and not vp.ready[5] and int(vp.ready.sum()) == 11
    np.testing.assert_array_equal(vp.view.slice_array(), whole.array[9])
    vp.finish(whole)
    assert vp.status == "loaded" and vp.ready is None and vp.view.slice_index == 9
    assert (vp.image.center, vp.image.width, vp.view.zoom) == (55.0, 222.0, 3.0)


def test_an_arrival_lists_each_file_once_and_says_how_it_ended() -> None:
    arrivals = Arrivals()
    a = arrivals.start("1.2.3", "CT  Abdomen", 3)
    seen: list[frozenset[str]] = []
    a.subscribe(seen.append)
    a.stored(["a.dcm"])
    a.stored(["a.dcm", "b.dcm"], 3)
    a.finish(["a.dcm", "b.dcm", "c.dcm"], complete=True)
    assert a.files == ["a.dcm", "b.dcm", "c.dcm"] and a.done and a.complete and a.error is None
    assert seen == [frozenset({"files"})] * 3 + [frozenset({"done"})]
    assert arrivals.get("1.2.3") is a and arrivals.start("1.2.3", "again").files == []
