"""File ▸ Send to PACS in the real main window, against the Orthanc fixture: the labels of the series shown
go out as DICOM SEG (C-STORE) and its ROIs as DICOM SR (STOW-RS), and Orthanc then holds them, referencing
the source series; a node that is not there gives a plain message."""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import pytest

from tests.pacs.conftest import PANCREAS, Loaded
from tests.pacs.orthanc import free_port
from tests.ui.conftest import paint_and_measure

pytest.importorskip("pytestqt")


def _in_orthanc(orthanc: Loaded, sop_uid: str):
    """The instance Orthanc stores under ``sop_uid`` (pydicom data set) and its Orthanc id."""
    import pydicom

    o = orthanc.orthanc
    found = [r for r in o.rest("/tools/lookup", sop_uid.encode(), method="POST") if r["Type"] == "Instance"]
    assert len(found) == 1, found
    with urllib.request.urlopen(f"{o.url}/instances/{found[0]['ID']}/file", timeout=60) as r:
        return pydicom.dcmread(io.BytesIO(r.read())), found[0]["ID"]


@pytest.fixture
def labelled(qtbot, tmp_path: Path, orthanc: Loaded, data_dir: Path, monkeypatch):
    from PySide6.QtCore import Qt

    from viewer.annotations.store import LabelStore
    from viewer.ai.inference import ModelInference
    from viewer.app import build_main_window, pacs_services
    from viewer.ui.label_panel import attach_label_panel
    from viewer.ui.pacs_dialog import attach_pacs_dock

    monkeypatch.setenv("VIEWER_DATA_DIR", str(tmp_path / "data"))
    store = LabelStore(tmp_path / "labels.sqlite")
    window = build_main_window(settings_file=str(tmp_path / "settings.ini"))
    qtbot.addWidget(window)
    window.resize(1400, 900)
    panel = attach_label_panel(window, store, ModelInference(device="cpu"))
    attach_pacs_dock(window, pacs_services())
    window.show()
    with qtbot.waitSignal(window.series_loaded, timeout=60000):
        window.open_paths([str(data_dir / PANCREAS)])
    panel.set_label_set("Normal / abnormal")
    panel.annotator_edit.setText("dr-test")
    panel.annotator_edit.editingFinished.emit()
    view = panel.view
    paint_and_measure(qtbot, panel)
    assert list(store.rois(series_uid=view.volume.series_uid)), panel.keeper.last_error
    view.setFocus(Qt.FocusReason.OtherFocusReason)
    yield window
    for background in (window.pacs_panel.background, window.background):
        background.cancel_all()
        background.wait_idle(20000)
    store.close()


def test_labels_go_to_the_pacs_as_seg_and_sr_next_to_their_series(qtbot, labelled, orthanc: Loaded) -> None:
    window = labelled
    sender = window.pacs_send
    assert sender.menu in [a.menu() for a in window.file_menu.actions() if a.menu() is not None]
    assert window.pacs_panel.send_button.menu() is sender.menu
    sender._enable()
    enabled = {kind for kind, a in sender.actions.items() if a.isEnabled()}
    assert enabled == {"series", "seg", "sr"}  # no AI results on this series yet
    source = orthanc.series_uid
    added: list[str] = []
    try:
        for kind, node, protocol in (("seg", orthanc.orthanc.dimse, "C-STORE"),
                                     ("sr", orthanc.orthanc.dicomweb, "STOW-RS")):
            with qtbot.waitSignal(sender.sent, timeout=120000) as done:
                assert sender.send(kind, node) is not None
            got_kind, report = done.args
            assert got_kind == kind and report.ok and report.sent == 1, (protocol, report)
            assert "Sent" in window.pacs_panel.status.text()
            ds, oid = _in_orthanc(orthanc, report.sop_uids[0])
            added.append(oid)
            assert ds.StudyInstanceUID == orthanc.study_uid and ds.SeriesInstanceUID != source
            if kind == "seg":
                assert ds.Modality == "SEG"
                assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == source
            else:
                assert ds.Modality == "SR"
                evidence = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
                assert [s.SeriesInstanceUID for s in evidence] == [source]
    finally:
        for oid in added:  # the session's Orthanc holds the pancreas study as it was, for the other tests
            orthanc.orthanc.rest(f"/instances/{oid}", method="DELETE")
    study = orthanc.orthanc.rest("/tools/lookup", orthanc.study_uid.encode(), method="POST")
    assert len(orthanc.orthanc.rest(f"/studies/{study[0]['ID']}")["Series"]) == 1


def test_a_node_that_is_not_there_is_named_in_a_plain_message(qtbot, labelled) -> None:
    window = labelled
    sender = window.pacs_send
    node = f"dimse://NOBODY@127.0.0.1:{free_port()}"
    with qtbot.waitSignal(sender.failed, timeout=120000) as failed:
        sender.send("series", node)
    kind, message = failed.args
    assert kind == "series" and message.startswith(f"Cannot send series to {node}: ")
    assert "Traceback" not in message and message == window.pacs_panel.status.text(), message
    assert "NOBODY" in message and "connection refused" in message


def test_ai_results_go_to_the_pacs_as_the_findings_sr(qtbot, labelled, orthanc: Loaded) -> None:
    import numpy as np

    pytest.importorskip("viewer.annotations.findings_sr", reason="the findings SR writer (batch outputs) is not here")
    from viewer.ai.results import Predictions
    from viewer.annotations.findings_sr import read_findings

    window = labelled
    sender = window.pacs_send
    vol = window.grid.active_slot.model.volume
    ks = np.arange(10, 20)
    p_abnormal = np.linspace(0.1, 0.9, len(ks), dtype=np.float32)
    probabilities = np.stack([1 - p_abnormal, p_abnormal], axis=1)
    # What the AI dock keeps after classifying slices 10..19 (the application model, not a widget).
    window.workspace.ai.set_predictions(vol.series_uid, Predictions(
        probabilities, probabilities, ("normal", "abnormal"), ks, "test-model", "1.0", "Test model", threshold=0.5))
    sender._enable()
    assert sender.actions["ai-sr"].isEnabled()
    with qtbot.waitSignal(sender.sent, timeout=120000) as done:
        assert sender.send("ai-sr", orthanc.orthanc.dimse) is not None
    kind, report = done.args
    assert kind == "ai-sr" and report.ok, report
    ds, oid = _in_orthanc(orthanc, report.sop_uids[0])
    try:
        assert ds.Modality == "SR" and ds.StudyInstanceUID == orthanc.study_uid
        evidence = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
        assert [s.SeriesInstanceUID for s in evidence] == [orthanc.series_uid]
        expected = {(vol.info.slices[k].sop_instance_uid, 1): ("abnormal" if p >= 0.5 else "normal")
                    for k, p in zip(ks, p_abnormal)}
        assert read_findings(ds) == expected
    finally:
        orthanc.orthanc.rest(f"/instances/{oid}", method="DELETE")
