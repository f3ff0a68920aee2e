"""The PACS dock in the real main window, against the Orthanc fixture: query, retrieve, open while arriving."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.pacs.conftest import Loaded

pytest.importorskip("pytestqt")


class Allowance:
    """Lets the retrieve store ``limit`` instances, then holds every writer thread (and so, once the queue
    is full, the transfer) until the test allows more: the states between "first image" and "complete"
    are reached in steps, without relying on timing."""

    def __init__(self) -> None:
        self.limit = 1
        self.stored: list[str] = []
        self.hide_total = False  # the retrieve's counts say "total unknown" (only the dock's table knows)
        self.held = 0  # writer threads waiting for the test now
        self._cond = threading.Condition()

    def allow(self, limit: float) -> None:
        with self._cond:
            self.limit = limit
            self._cond.notify_all()

    def counts(self, progress):
        from dataclasses import replace

        return replace(progress, total=-1) if self.hide_total else progress

    def wrap_progress(self, report):
        return None if report is None else (lambda progress: report(self.counts(progress)))

    def wrap(self, on_stored):
        def held(path, progress):
            self.stored.append(str(path))
            on_stored(path, self.counts(progress))
            with self._cond:
                self.held += 1
                self._cond.wait_for(lambda: len(self.stored) < self.limit, timeout=120)
                self.held -= 1
        return held


@pytest.fixture
def window_with_pacs(qtbot, tmp_path: Path, orthanc: Loaded, monkeypatch):
    from viewer.app import build_main_window, pacs_services
    from viewer.ui.pacs_dialog import attach_pacs_dock

    # A local store of its own: the "Open" below must find nothing stored yet.
    monkeypatch.setenv("VIEWER_DATA_DIR", str(tmp_path / "data"))
    window = build_main_window(settings_file=str(tmp_path / "settings.ini"))
    qtbot.addWidget(window)
    services = pacs_services()
    gate = Allowance()

    def retrieve(*args, on_stored=None, progress=None, **kwargs):
        return services.retrieve(*args, on_stored=gate.wrap(on_stored), progress=gate.wrap_progress(progress),
                                 **kwargs)

    from dataclasses import replace

    dock = attach_pacs_dock(window, replace(services, retrieve=retrieve))
    window.resize(1400, 900)
    window.show()
    dock.show()
    yield window, gate
    gate.allow(float("inf"))
    for background in (window.pacs_panel.background, window.background):
        background.cancel_all()
        background.wait_idle(20000)


def test_dock_queries_and_opens_a_series_that_fills_in_as_it_arrives(qtbot, window_with_pacs, orthanc: Loaded,
                                                                     tmp_path: Path) -> None:
    import numpy as np

    from viewer.io import load_series
    from viewer.io.pacs.retrieve import WRITERS
    from viewer.state.workspace import slice_position

    window, gate = window_with_pacs
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

    slot = window.grid.slots[window.grid.active]
    model = slot.model
    states: list[tuple[int, int]] = []  # (slices shown, slices holding values) at each growth
    model.subscribe(lambda changes: "ready" in changes and model.ready is not None
                    and states.append((model.preview.shape[0], int(model.ready.sum()))))
    first_shown_at: list[int] = []
    window.first_image_shown.connect(lambda _i: first_shown_at.append(len(gate.stored)))
    with qtbot.waitSignal(window.first_image_shown, timeout=60000):
        qtbot.mouseClick(panel.open_button, qtbot_button())
    # On screen while >= 130 instances were still to come (the writers hold after the first).
    assert 1 <= first_shown_at[0] <= WRITERS, (first_shown_at, panel.status.text(), gate.stored[:2])
    assert model.status == "preview" and 1 <= slot.view.volume.shape[0] <= WRITERS
    assert window.workspace.arrivals.get(orthanc.series_uid).total == 134  # from the series query

    # The reader sets a window and a zoom on the first image: growing must not undo them.
    slot.view.set_window(60.0, 350.0)
    model.view.set_zoom(2.0)
    here = slice_position(slot.view.volume, model.view.slice_index)

    gate.allow(40)
    qtbot.waitUntil(lambda: model.ready is not None and int(model.ready.sum()) >= 40, timeout=60000)
    assert model.status == "preview" and len(gate.stored) < 134
    assert slot.view.volume.shape[0] >= 40 and model.view.slice_count == slot.view.volume.shape[0]
    assert (model.image.center, model.image.width, model.view.zoom) == (60.0, 350.0, 2.0)
    np.testing.assert_allclose(slice_position(slot.view.volume, model.view.slice_index), here, atol=1e-3)
    if os.environ.get("VIEWER_PACS_SCREENSHOT"):  # the dock during the retrieve, the viewport half filled
        window.grab().save(os.environ["VIEWER_PACS_SCREENSHOT"].replace(".png", "-arriving.png"))
    # The reader scrolls through what has arrived.
    model.view.set_slice(30)
    assert model.view.slice_index == 30
    here = slice_position(slot.view.volume, 30)

    gate.allow(float("inf"))
    with qtbot.waitSignal(panel.series_retrieved, timeout=120000) as done:
        pass
    assert done.args == [orthanc.series_uid, True]
    qtbot.waitUntil(lambda: model.status == "loaded", timeout=120000)
    shown = [n for n, _ready in states]
    assert shown == sorted(shown) and len(set(shown)) >= 3, states  # intermediate states, growing
    # The whole load refined it in place: same position, window and zoom; the same volume as the folder.
    assert (model.image.center, model.image.width, model.view.zoom) == (60.0, 350.0, 2.0)
    np.testing.assert_allclose(slice_position(model.volume, model.view.slice_index), here, atol=1e-3)
    folder = sorted(Path(gate.stored[0]).parent.glob("*.dcm"))
    assert len(folder) == 134 and len(gate.stored) == 134
    reference = load_series([str(f) for f in folder])
    assert model.volume.array.dtype == reference.array.dtype
    assert np.array_equal(model.volume.array, reference.array)
    assert np.array_equal(model.volume.affine, reference.affine)
    assert panel.series.item(0, 4).text() == "134/134 by C-GET"
    # What was retrieved is indexed in the local store; the Studies browser lists it on request.
    with qtbot.waitSignal(window.browser.scan_finished, timeout=120000):
        qtbot.mouseClick(panel.browse_button, qtbot_button())
    assert [s.series_uid for s in window.browser.stacks.values()] == [orthanc.series_uid]
    if os.environ.get("VIEWER_PACS_SCREENSHOT"):
        window.pacs_dock.grab().save(os.environ["VIEWER_PACS_SCREENSHOT"])
        window.grab().save(os.environ["VIEWER_PACS_SCREENSHOT"].replace(".png", "-window.png"))


def _folder_volume(gate: Allowance):
    from viewer.io import load_series

    return load_series(sorted(str(f) for f in Path(gate.stored[0]).parent.glob("*.dcm")))


def test_the_whole_series_is_on_screen_once_every_instance_is_stored(qtbot, window_with_pacs,
                                                                     orthanc: Loaded) -> None:
    """No query first: the retrieve's own instance list gives the count. Every instance stored, the writer
    threads then held: the retrieve has not ended (not indexed, no result), yet the viewport shows the whole
    volume, the same as loading the folder; the retrieve's end changes nothing on screen."""
    from dataclasses import replace

    import numpy as np

    window, gate = window_with_pacs
    panel = window.pacs_panel
    panel.node.setEditText(orthanc.orthanc.dimse)
    panel.port.setValue(orthanc.scp_port)
    model = window.grid.slots[window.grid.active].model
    ended: list[bool] = []
    panel.series_retrieved.connect(lambda _uid, ok: ended.append(ok))
    gate.allow(134)
    panel.retrieve(orthanc.study_uid, orthanc.series_uid, open_it=True)
    qtbot.waitUntil(lambda: model.status == "loaded", timeout=120000)
    arrival = window.workspace.arrivals.get(orthanc.series_uid)
    assert arrival.total == 134 and len(gate.stored) == 134
    assert not arrival.done and not ended  # the retrieve is still held after its last instance
    shown = model.volume
    reference = _folder_volume(gate)
    assert shown.array.dtype == reference.array.dtype and np.array_equal(shown.array, reference.array)
    assert np.array_equal(shown.affine, reference.affine)
    # The same description (the per-slice VOI window is read for a sample of slices, which depends on the
    # order the files are given in: arrival order here, sorted there).
    assert replace(shown.info, slices=()) == replace(reference.info, slices=())
    assert [replace(s, window=None) for s in shown.info.slices] == [replace(s, window=None)
                                                                     for s in reference.info.slices]
    gate.allow(float("inf"))
    qtbot.waitUntil(lambda: ended == [True], timeout=120000)
    qtbot.waitUntil(lambda: window.background.pending() == 0, timeout=60000)
    assert model.volume is shown and model.status == "loaded"
    assert panel.series.rowCount() == 0 and panel.status.text().startswith("134 new + 0 present of 134")


def test_a_stale_count_is_corrected_when_the_retrieve_ends(qtbot, window_with_pacs, orthanc: Loaded) -> None:
    """The series table says 100 images and the retrieve gives no count of its own: the whole volume of the
    first 100 is shown, and when the retrieve ends with 134 stored, all of them replace it in place."""
    import numpy as np

    window, gate = window_with_pacs
    panel = window.pacs_panel
    panel.node.setEditText(orthanc.orthanc.dimse)
    panel.port.setValue(orthanc.scp_port)
    panel.patient_name.setText("Pancreas*")
    with qtbot.waitSignal(panel.query_finished, timeout=60000):
        panel.search()
    panel.studies.selectRow(0)
    qtbot.waitUntil(lambda: panel.series.rowCount() == 1, timeout=60000)
    panel.series.item(0, 3).setData(0, 100)  # what a PACS with a stale count would answer
    panel.series.selectRow(0)
    gate.hide_total = True
    gate.allow(100)
    model = window.grid.slots[window.grid.active].model
    panel.retrieve_selected(open_it=True)
    qtbot.waitUntil(lambda: model.status == "loaded", timeout=120000)
    assert 100 <= model.volume.shape[0] <= len(gate.stored) < 134  # writers already busy finish theirs
    gate.allow(float("inf"))
    qtbot.waitUntil(lambda: model.volume is not None and model.volume.shape[0] == 134, timeout=120000)
    reference = _folder_volume(gate)
    assert np.array_equal(model.volume.array, reference.array) and np.array_equal(model.volume.affine,
                                                                                  reference.affine)
    assert window.grid.slots[window.grid.active].title.text().endswith("134×512×512")


def test_the_counts_are_written_at_most_every_100_ms_and_end_on_the_last(qtbot, window_with_pacs,
                                                                       orthanc: Loaded) -> None:
    """Each stored instance is reported to the dock, but the status line and the table are not rewritten
    for each: held after 40 instances, the dock still ends showing 40 (the last counts are not lost)."""
    from viewer.io.pacs.retrieve import WRITERS
    from viewer.ui.pacs_dialog import PROGRESS_TEXT_MS

    window, gate = window_with_pacs
    panel = window.pacs_panel
    panel.node.setEditText(orthanc.orthanc.dimse)
    panel.port.setValue(orthanc.scp_port)
    texts: list[str] = []
    show = panel.status_message
    panel.status_message = lambda text: (texts.append(text), show(text))
    gate.allow(40)
    panel.retrieve(orthanc.study_uid, orthanc.series_uid, open_it=False)
    # Held after 40 (a writer already busy finishes its instance: up to WRITERS - 1 more), every writer waiting.
    qtbot.waitUntil(lambda: gate.held == WRITERS, timeout=60000)
    held = len(gate.stored)
    qtbot.waitUntil(lambda: f"{held}/134 images" in panel.status.text(), timeout=60000)
    counts = [t for t in texts if " images, " in t]
    assert 40 <= held < 134 and counts[-1].split(": ")[-1].startswith(f"{held}/134 images")
    assert len(counts) < 40, counts  # not one per instance
    qtbot.wait(3 * PROGRESS_TEXT_MS)
    assert f"{held}/134 images" in panel.status.text() and len(gate.stored) == held  # nothing overwrote it
    gate.allow(float("inf"))
    with qtbot.waitSignal(panel.series_retrieved, timeout=120000):
        pass
    qtbot.wait(3 * PROGRESS_TEXT_MS)
    assert panel.status.text().startswith("134 new + 0 present of 134 by C-GET (complete)")


def test_cancelling_an_open_keeps_what_arrived_on_screen(qtbot, window_with_pacs, orthanc: Loaded) -> None:
    window, gate = window_with_pacs
    panel = window.pacs_panel
    panel.node.setEditText(orthanc.orthanc.dimse)
    model = window.grid.slots[window.grid.active].model
    with qtbot.waitSignal(window.first_image_shown, timeout=60000):
        panel.retrieve(orthanc.study_uid, orthanc.series_uid, open_it=True)
    qtbot.mouseClick(panel.cancel_button, qtbot_button())
    gate.allow(float("inf"))
    qtbot.waitUntil(lambda: model.status == "loaded", timeout=60000)
    arrival = window.workspace.arrivals.get(orthanc.series_uid)
    assert arrival.done and not arrival.complete and arrival.error == "retrieve cancelled"
    assert model.volume.shape[0] == len(arrival.files) < 134
    qtbot.waitUntil(lambda: window.background.pending() == 0, timeout=60000)  # no decoder left waiting


def test_dock_says_plainly_when_the_node_is_wrong(qtbot, window_with_pacs, orthanc: Loaded) -> None:
    window, _gate = window_with_pacs
    panel = window.pacs_panel
    panel.node.setEditText(orthanc.orthanc.dimse)
    panel.ae.setText("STRANGER")
    with qtbot.waitSignal(panel.failed, timeout=60000):
        panel.search()
    assert "does not know our AE title" in panel.status.text() and "STRANGER" in panel.status.text()


def test_dock_explains_a_c_move_that_never_comes_back(qtbot, window_with_pacs, orthanc: Loaded, tmp_path: Path,
                                                     monkeypatch) -> None:
    # The node retrieves by C-MOVE; Orthanc sends to its entry for us (orthanc.scp_port), but we listen on
    # another port: the dock says what the PACS answered and that it never reached us.
    from tests.pacs.orthanc import free_port
    from viewer.io.pacs.nodes import DimseNode, save_nodes

    window, _gate = window_with_pacs
    monkeypatch.setenv("VIEWER_CONFIG_DIR", str(tmp_path / "config"))
    save_nodes([DimseNode("ORTHANC", "127.0.0.1", orthanc.orthanc.dicom_port, name="lab", retrieve="move")])
    panel = window.pacs_panel
    panel.node.setEditText("lab")
    ours = free_port()
    panel.port.setValue(ours)
    with qtbot.waitSignal(panel.series_retrieved, timeout=60000) as done:
        panel.retrieve(orthanc.study_uid, orthanc.series_uid)
    assert done.args == [orthanc.series_uid, False]
    text = panel.status.text()
    assert "answered the C-MOVE with status 0xC000" in text, text
    assert f"never connected back to DICOMVIEWER on port {ours}" in text and "did not arrive" not in text


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
