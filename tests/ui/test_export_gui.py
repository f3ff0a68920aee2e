"""File > Export Series: the dialog's choices and the background export of the active series."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.ui.conftest import open_and_wait


def test_export_dialog_offers_every_codec_and_reads_its_choices(qtbot) -> None:
    from viewer.commands.export import CODEC_NAMES
    from viewer.ui.export_dialog import ExportDialog

    dialog = ExportDialog(None, "CT  chest — 100 file(s)", "/tmp/x")
    qtbot.addWidget(dialog)
    codes = [dialog.codec.itemData(i) for i in range(dialog.codec.count())]
    assert sorted(codes) == sorted(CODEC_NAMES)
    dialog.codec.setCurrentIndex(codes.index("rle"))
    dialog.deidentify.setChecked(True)
    assert dialog.choice() == ("/tmp/x", "rle", True)
    dialog.folder.setText("")
    dialog.buttons.accepted.emit()
    assert not dialog.result()  # no folder: the dialog stays open


def test_file_menu_exports_the_active_series(qtbot, main_window, crc_dir: Path, tmp_path: Path) -> None:
    open_and_wait(qtbot, main_window, [crc_dir])
    assert "Export Series…" in [a.text().replace("&", "") for a in main_window.menuBar().actions()[0].menu().actions()]
    slot = main_window.grid.slots[main_window.grid.active]
    out = tmp_path / "export"
    with qtbot.waitSignal(main_window.export_finished, timeout=120000) as sig:
        main_window.export_stack(slot.stack_key, str(out), "rle")
    assert "100 file(s) written as rle" in sig.args[0] and "verified bit-exact" in sig.args[0]
    assert "ratio" in main_window.statusBar().currentMessage()
    from viewer.io import load_series

    np.testing.assert_array_equal(load_series(str(out)).array, slot.volume.array)
    with qtbot.waitSignal(main_window.export_finished, timeout=60000) as sig:
        main_window.export_stack(slot.stack_key, str(out), "rle")  # files exist: refused, nothing lost
    assert sig.args[0].startswith("failed:") and "exists already" in sig.args[0]
