"""The study browser lists what a real folder holds: patients -> studies -> series, counts, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PySide6.QtGui import QImage

from tests.ui.conftest import open_and_wait
from viewer.ui.browser import IMAGES_COL, WARN_MARK


def _series_rows(window) -> list[tuple[str, str, int]]:
    rows = []
    for item in window.browser.items.values():
        rows.append((item.text(0), item.text(1).replace(WARN_MARK, ""), int(item.text(IMAGES_COL))))
    return sorted(rows, key=lambda r: -r[2])


def test_open_ct_folder_lists_every_series_with_counts(qtbot, main_window, ct_root: Path) -> None:
    open_and_wait(qtbot, main_window, [ct_root], load=False)
    rows = _series_rows(main_window)
    assert [r[2] for r in rows] == [134, 100, 20]
    assert {r[1] for r in rows} == {"CT"}
    tree = main_window.browser.tree
    # Every series item hangs under a study under a patient.
    for item in main_window.browser.items.values():
        assert item.parent() is not None and item.parent().parent() is not None
        assert item.parent().parent().parent() is None
    # The licence and citation files are not DICOM images: listed with a reason, not silently dropped.
    bad_top = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
               if "Files not loaded" in tree.topLevelItem(i).text(0)]
    assert len(bad_top) == 1
    assert bad_top[0].childCount() == len(main_window.browser.bad_files) > 0
    assert all(bad_top[0].child(i).toolTip(0).count("\n") >= 1 for i in range(bad_top[0].childCount()))


def test_thumbnails_are_windowed_middle_slices(qtbot, main_window, crc_dir: Path) -> None:
    with qtbot.waitSignal(main_window.browser.thumbnails_finished, timeout=60000):
        open_and_wait(qtbot, main_window, [crc_dir], load=False)
    (item,) = main_window.browser.items.values()
    icon = item.icon(0)
    assert not icon.isNull()
    img = icon.pixmap(64, 64).toImage().convertToFormat(QImage.Format.Format_Grayscale8)
    ptr = img.constBits()
    arr = np.frombuffer(ptr, dtype=np.uint8, count=img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    arr = arr[:, : img.width()].copy()  # the bytes belong to ``img``
    # A windowed chest CT: black air outside, bright body and bone inside.
    assert arr.min() < 30 and arr.max() > 200 and arr.std() > 30


def test_broken_files_are_listed_with_reasons(qtbot, main_window, tmp_path: Path, crc_dir: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = sorted(crc_dir.glob("*.dcm"))[:3]
    for f in good:
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    open_and_wait(qtbot, main_window, [folder], load=False)
    assert [int(i.text(IMAGES_COL)) for i in main_window.browser.items.values()] == [3]
    bad = {Path(p).name: reason for p, reason in main_window.browser.bad_files}
    assert {"empty.dcm", "notes.txt"} <= set(bad)
    assert all(reason for reason in bad.values())


def test_cancel_stops_indexing_and_keeps_the_window_usable(qtbot, main_window, ct_root: Path) -> None:
    main_window.auto_open = False
    main_window.open_paths([str(ct_root)])
    main_window.browser.cancel()
    assert not main_window.browser.is_busy()
    assert "cancelled" in main_window.browser.status.text()
    qtbot.waitUntil(lambda: main_window.background.pending("scan") == 0, timeout=30000)
    # A later scan works normally.
    open_and_wait(qtbot, main_window, [ct_root], load=False)
    assert len(main_window.browser.stacks) == 3


def test_series_appear_while_indexing_and_regrouped_ones_are_replaced(qtbot, main_window, data_dir: Path,
                                                                     tmp_path: Path, monkeypatch) -> None:
    from viewer.io import series

    monkeypatch.setattr(series, "BATCH", 8)  # small batches: folders finish one after another
    src = sorted((data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))
    for i, f in enumerate(src):  # one series spread over two folders, plus a second series of its own
        d = tmp_path / ("a" if i % 2 else "b")
        d.mkdir(exist_ok=True)
        os.symlink(f, d / f.name)
    (tmp_path / "c").mkdir()
    for f in sorted((data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir()):
        os.symlink(f, tmp_path / "c" / f.name)
    seen: list[int] = []
    original = main_window.browser._on_stack_found
    monkeypatch.setattr(main_window.browser, "_on_stack_found",
                        lambda s: (seen.append(len(s.files)), original(s)))
    open_and_wait(qtbot, main_window, [tmp_path], load=False)
    assert sorted(seen) == [20, 50, 50]  # listed as each folder finished
    rows = _series_rows(main_window)
    assert sorted(r[2] for r in rows) == [20, 100]  # the spread series replaced by the whole one
    tree = main_window.browser.tree
    patients = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
                if "Files not loaded" not in tree.topLevelItem(i).text(0)]
    assert all(p.childCount() >= 1 for p in patients)  # no empty study or patient left behind
