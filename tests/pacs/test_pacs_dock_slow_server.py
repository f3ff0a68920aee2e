"""A PACS that stops answering, seen from the dock: the query times out with a message and the window keeps
working while it waits (the query runs on the dock's network pool, never on the UI thread)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pacs.test_orthanc import small_orthanc  # noqa: F401 - the fixture, used by name below

pytest.importorskip("pytestqt")

TIMEOUT_S = 3.0


@pytest.mark.parametrize("kind", ["dimse", "dicomweb"])
def test_query_to_a_frozen_pacs_times_out_and_the_window_stays_live(qtbot, tmp_path: Path, monkeypatch,
                                                                     small_orthanc, kind: str) -> None:  # noqa: F811
    import dataclasses

    from PySide6.QtCore import QTimer

    from viewer.app import build_main_window, pacs_services
    from viewer.io.pacs.nodes import parse_node, save_nodes
    from viewer.ui.pacs_dialog import attach_pacs_dock

    o, _files, _ids = small_orthanc
    # The node as a user saves it, with a short timeout (the default is 30 s).
    monkeypatch.setenv("VIEWER_CONFIG_DIR", str(tmp_path / "config"))
    url = o.dimse if kind == "dimse" else o.dicomweb
    save_nodes([dataclasses.replace(parse_node(url), name="frozen", timeout_s=TIMEOUT_S)])
    window = build_main_window(settings_file=str(tmp_path / "settings.ini"))
    qtbot.addWidget(window)
    attach_pacs_dock(window, pacs_services())
    panel = window.pacs_panel
    panel.node.setCurrentIndex(panel.node.findData("frozen"))
    assert panel.node_text() == "frozen"

    ticks: list[int] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    o.pause()  # SIGSTOP: the kernel still accepts the connection, nobody answers
    try:
        with qtbot.waitSignal(panel.failed, timeout=int(TIMEOUT_S * 1000) + 60000) as failed:
            panel.search()
            # search() returned at once: the UI thread is free while the query waits for the PACS.
            assert "Searching" in panel.status.text()
            qtbot.keyClicks(panel.patient_name, "DOE*")
            assert panel.patient_name.text() == "DOE*"
    finally:
        o.resume()
        timer.stop()
    message = panel.status.text()
    assert message and message in failed.args[0]
    assert f"within {TIMEOUT_S:g} s" in message, message
    # The event loop ran all along: a 20 ms timer fired while the query was waiting for its timeout.
    assert len(ticks) >= 5, len(ticks)
    # The PACS answers again once it runs: the same node queries fine from the same dock.
    with qtbot.waitSignal(panel.query_finished, timeout=60000) as done:
        panel.patient_name.clear()
        panel.search()
    assert done.args[0] >= 1
