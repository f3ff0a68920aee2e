"""The PACS dock in the real main window, against the Orthanc fixture: query, retrieve, open while arriving."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.pacs.conftest import Loaded

pytest.importorskip("pytestqt")


@pytest.fixture
def window_with_pacs(qtbot, tmp_path: Path, orthanc: Loaded):
    from viewer.app import build_main_window, pacs_services
    from viewer.ui.pacs_dialog import attach_pacs_dock

    window = build_main_window(settings_file=str(tmp_path / "settings.ini"))
    qtbot.addWidget(window)
    services = pacs_services()
    gate = threading.Event()
    stored: list[str] = []

    def retrieve(*args, on_stored=None, **kwargs):
        def hold_after_first(path, progress):
            stored.append(str(path))
            on_stored(path, progress)
            # The test holds every writer thread (and so, once the queue is full, the transfer) until the
            # viewport shows the first instance: "first image before the last instance" is checked
            # without relying on timing.
            gate.wait(120)
        return services.retrieve(*args, on_stored=hold_after_first, **kwargs)

    from dataclasses import replace

    dock = attach_pacs_dock(window, replace(services, retrieve=retrieve))
    window.resize(1400, 900)
    window.show()
    dock.show()
    yield window, gate, stored
    gate.set()
    window.background.cancel_all()
    window.background.wait_idle(20000)


def test_dock_queries_and_opens_a_series_while_it_arrives(qtbot, window_with_pacs, orthanc: Loaded,
                                                          tmp_path: Path) -> None:
    window, gate, stored = window_with_pacs
    panel = window.pacs_panel
    assert window.act_pacs.text() == "&PACS…"
    panel.node.setEditText(orthanc.orthanc.dimse)
    panel.port.setValue(orthanc.scp_port)
    panel.patient_name.setText("Pancreas*")
    with qtbot.waitSignal(panel.query_finished, timeout=60000) as found:
        qtbot.mouseClick(panel.search_button, qtbot_button())
    assert found.args == [1]
    assert panel.studies.rowCount() == 1
    assert panel.studies.item(0, 1).text() == "Pancreas-CT-CB_001" and panel.studies.item(0, 2).text() == "2012-07-06"
    panel.studies.selectRow(0)
    qtbot.waitUntil(lambda: panel.series.rowCount() == 1, timeout=60000)
    assert panel.series.item(0, 0).data(panel_uid_role()) == orthanc.series_uid
    panel.series.selectRow(0)

    first_shown_at: list[int] = []
    window.first_image_shown.connect(lambda _i: first_shown_at.append(len(stored)))
    with qtbot.waitSignal(window.first_image_shown, timeout=60000):
        qtbot.mouseClick(panel.open_button, qtbot_button())
    from viewer.io.pacs.retrieve import WRITERS

    assert 1 <= first_shown_at[0] <= WRITERS  # on screen while at least 130 instances were still to come
    slot = window.grid.slots[window.grid.active]
    assert slot.view.volume is not None and slot.view.volume.shape[0] == 1
    gate.set()
    with qtbot.waitSignal(panel.series_retrieved, timeout=120000) as done:
        pass
    assert done.args == [orthanc.series_uid, True]
    qtbot.waitUntil(lambda: slot.view.volume is not None and slot.view.volume.shape == (134, 512, 512),
                    timeout=120000)
    assert panel.series.item(0, 4).text() == "134/134 by C-GET"
    assert len(stored) == 134
    # What was retrieved is indexed in the local store; the Studies browser lists it on request.
    with qtbot.waitSignal(window.browser.scan_finished, timeout=120000):
        qtbot.mouseClick(panel.browse_button, qtbot_button())
    assert [s.series_uid for s in window.browser.stacks.values()] == [orthanc.series_uid]
    if os.environ.get("VIEWER_PACS_SCREENSHOT"):
        window.pacs_dock.grab().save(os.environ["VIEWER_PACS_SCREENSHOT"])
        window.grab().save(os.environ["VIEWER_PACS_SCREENSHOT"].replace(".png", "-window.png"))


def test_dock_says_plainly_when_the_node_is_wrong(qtbot, window_with_pacs, orthanc: Loaded) -> None:
    window, _gate, _ = window_with_pacs
    panel = window.pacs_panel
    panel.node.setEditText(orthanc.orthanc.dimse)
    panel.ae.setText("STRANGER")
    with qtbot.waitSignal(panel.failed, timeout=60000):
        panel.search()
    assert "does not know our AE title" in panel.status.text() and "STRANGER" in panel.status.text()


def qtbot_button():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton


def panel_uid_role():
    from viewer.ui.pacs_dialog import UID_ROLE

    return UID_ROLE


def test_unreadable_saved_nodes_are_reported_not_fatal(qtbot, tmp_path: Path, monkeypatch) -> None:
    from viewer.app import build_main_window, pacs_services
    from viewer.ui.pacs_dialog import attach_pacs_dock

    monkeypatch.setenv("VIEWER_CONFIG_DIR", str(tmp_path))
    (tmp_path / "pacs-nodes.json").write_text("{broken")
    window = build_main_window(settings_file=str(tmp_path / "settings.ini"))
    qtbot.addWidget(window)
    attach_pacs_dock(window, pacs_services())
    assert "Saved nodes unreadable" in window.pacs_panel.status.text()
    assert "pacs-nodes.json" in window.pacs_panel.status.text()
