"""A batch results file opened in the viewer: the browser marks the series with its stored label, and the
opened series shows the stored predictions in the AI dock (plot and overlay) without running the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.ui.conftest import open_and_wait

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def results(crc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A results folder written by the batch writer with organ-ct's real predictions on the chest CT."""
    from viewer.ai import ModelRegistry, ModelSession, classify_slices
    from viewer.batch.models import spec_of
    from viewer.batch.results import ResultsWriter, rows_of
    from viewer.batch.work import ModelRows, UnitResult
    from viewer.io import load_series

    m = ModelRegistry().get("organ-ct")
    vol = load_series(str(crc_dir))
    pred = classify_slices(ModelSession.get(m, "cpu"), vol)
    res = UnitResult(vol.series_uid, vol.series_uid, vol.info.study_uid, "CT", str(crc_dir), vol.shape[0],
                     vol.info.instance_uids, [1] * vol.shape[0], 0.1,
                     [ModelRows(spec_of(m), "ok", provider=pred.provider, labels=pred.labels,
                                slices=np.asarray(pred.indices, np.int32), probabilities=pred.probabilities)], "h:1")
    out = tmp_path_factory.mktemp("batch") / "results.parquet"
    w = ResultsWriter(out)
    w.add(rows_of(res, forced=False, job_id="test"))
    w.close()
    return out, pred


def test_browser_marks_and_opened_series_shows_stored_predictions(qtbot, main_window, crc_dir: Path,
                                                                  results: tuple[Path, object]) -> None:
    from viewer.batch.stored import read_stored
    from viewer.ui.ai_panel import attach_ai_panel
    from viewer.ui.batch_results import attach_batch_results

    path, pred = results
    from viewer.ai.inference import ModelInference

    panel = attach_ai_panel(main_window, ModelInference(device="cpu"))
    runs: list[str] = []
    panel.result_ready.connect(lambda kind, _r: runs.append(kind))
    attach_batch_results(main_window, str(path), read_stored, panel)
    qtbot.waitUntil(lambda: main_window.batch_results is not None, timeout=30000)
    open_and_wait(qtbot, main_window, [crc_dir])
    mean = pred.probabilities.mean(axis=0)
    label = pred.labels[int(mean.argmax())]
    (item,) = main_window.browser.items.values()
    qtbot.waitUntil(lambda: f"AI: {label} {mean.max():.2f}" in item.text(0), timeout=10000)
    from viewer.ai import load_manifest
    from viewer.ai.registry import REPO_MODELS

    assert f"Stored prediction (organ-ct {load_manifest(REPO_MODELS / 'organ-ct').version}" in item.toolTip(0)
    # the AI dock shows the stored per-slice predictions of the opened series, and nothing was run
    qtbot.waitUntil(lambda: panel.plot.predictions is not None, timeout=10000)
    shown = panel.plot.predictions
    np.testing.assert_allclose(shown.probabilities, pred.probabilities, atol=1e-6)
    np.testing.assert_array_equal(shown.indices, pred.indices)
    assert "not re-run" in panel.status.text() and runs == []
    k = panel.vp.slice_index
    top = pred.labels[int(pred.probabilities[k].argmax())]
    assert top in panel.overlay.text() and "batch results" in panel.overlay.text()
    # the stored predictions are state's AI results of that series too
    assert main_window.workspace.ai.of(pred_uid(main_window)).predictions is not None


def pred_uid(window) -> str:
    (key,) = window.browser.items
    return str(window.workspace.series[key].series_uid)
