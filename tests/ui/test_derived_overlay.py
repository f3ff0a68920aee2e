"""A DICOM SEG opened from disk (or found with the study) is drawn over its source series, matched by the
images it references, in every viewport showing that series; never as an image of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom

from tests.ui.conftest import open_and_wait
from viewer.annotations.seg import Segment, write_seg
from viewer.core.derived import image_ref


def _seg_for(files: list[str], volume, out: Path, slices: list[int]) -> np.ndarray:
    """A SEG with one disc on ``slices`` of the loaded volume, referencing the series' own files."""
    by_uid = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in files}
    sources = [pydicom.dcmread(by_uid[s.sop_instance_uid], stop_before_pixels=True) for s in volume.info.slices]
    z, y, x = volume.shape
    mask = np.zeros((z, y, x), dtype=bool)
    rr, cc = np.ogrid[:y, :x]
    for k in slices:
        mask[k] = (rr - 250) ** 2 + (cc - 300) ** 2 <= 30 ** 2
    write_seg(out, sources, [Segment("liver", mask, "#00ff00")], series_description="test seg")
    return mask


def test_a_seg_opened_from_disk_is_drawn_over_its_series(qtbot, main_window, pancreas_dir: Path, tmp_path: Path) -> None:
    open_and_wait(qtbot, main_window, [pancreas_dir])
    slot = main_window.grid.slots[0]
    vol = slot.volume
    files = sorted(str(p) for p in pancreas_dir.glob("*.dcm"))
    seg_path = tmp_path / "seg.dcm"
    mask = _seg_for(files, vol, seg_path, [60, 61])
    with qtbot.waitSignal(main_window.derived_opened, timeout=60000):
        main_window.open_derived(str(seg_path))
    layer = slot.derived
    slot.view.set_slice(60)
    assert [o.kind for o in layer.drawn] == ["SEG"] and layer.mask_item.isVisible()
    drawn = np.asarray(layer.mask_item.image)
    # The overlay's pixels are the mask of the image shown (display transform is identity here).
    np.testing.assert_array_equal(drawn[..., 3] > 0, slot.view.state.transform.apply(mask[60]))
    assert tuple(drawn[mask[60]][0][:3]) == (0, 255, 0)
    assert "liver" in layer.legend.text()
    slot.view.set_slice(10)  # an image the SEG does not cover: nothing drawn
    assert layer.drawn == [] and not layer.mask_item.isVisible()
    # The same series in a second viewport shows it too; an unrelated series does not.
    main_window.set_layout("1x2")
    key = next(iter(main_window.browser.stacks))
    with qtbot.waitSignal(main_window.series_loaded, timeout=60000):
        main_window.load_stack(key, 1)
    second = main_window.grid.slots[1]
    second.view.set_slice(61)
    assert [o.kind for o in second.derived.drawn] == ["SEG"]
    assert image_ref(second.volume.info, 61) in second.derived.drawn[0].images()


def test_an_sr_opened_from_disk_outlines_its_regions(qtbot, main_window, pancreas_dir: Path, tmp_path: Path) -> None:
    from viewer.annotations.model import ImageKey, Roi
    from viewer.annotations.sr import write_sr

    open_and_wait(qtbot, main_window, [pancreas_dir])
    slot = main_window.grid.slots[0]
    vol = slot.volume
    s = vol.info.slices[70]
    source = pydicom.dcmread(s.file, stop_before_pixels=True)
    roi = Roi(ImageKey(vol.info.study_uid, vol.series_uid, s.sop_instance_uid, 1), "box", ((100, 120), (180, 200)),
              label="lesion", annotator="dr-test")
    write_sr(tmp_path / "sr.dcm", [source], [roi])
    with qtbot.waitSignal(main_window.derived_opened, timeout=60000):
        main_window.open_derived(str(tmp_path / "sr.dcm"))
    slot.view.set_slice(70)
    layer = slot.derived
    assert [o.kind for o in layer.drawn] == ["SR"]
    box = layer.path_item.path().boundingRect()
    a, b = slot.view.slice_to_view(120, 100), slot.view.slice_to_view(200, 180)
    assert abs(box.left() - min(a.x(), b.x())) < 1e-6 and abs(box.bottom() - max(a.y(), b.y())) < 1e-6
    slot.view.set_slice(71)
    assert layer.drawn == [] and layer.path_item.path().isEmpty()


def test_a_seg_in_the_scanned_folder_becomes_an_overlay_not_a_series(qtbot, main_window, pancreas_dir: Path,
                                                                     tmp_path: Path, io_services) -> None:
    study = tmp_path / "study"
    study.mkdir()
    files = sorted(pancreas_dir.glob("*.dcm"))[:30]
    for f in files:
        shutil.copy(f, study / f.name)
    vol = io_services.load_series([str(study / f.name) for f in files])
    _seg_for([str(study / f.name) for f in files], vol, study / "zz_seg.dcm", [5])
    with qtbot.waitSignal(main_window.derived_opened, timeout=60000):
        open_and_wait(qtbot, main_window, [study])
    slot = main_window.grid.slots[0]
    assert slot.volume is not None and slot.volume.modality == "CT"  # the CT opened, not the SEG
    slot.view.set_slice(5)
    assert [o.description for o in slot.derived.drawn] == ["test seg"]
