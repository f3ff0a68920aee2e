"""``batch infer`` with a PACS source: the series a query finds on a real Orthanc are retrieved into the local
store and run; the rows equal the model run on the original files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.pacs.conftest import Loaded

pytest.importorskip("distributed")


def batch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "viewer", "batch", "infer", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})


def test_batch_infer_retrieves_the_queried_series_and_runs_them(orthanc: Loaded, tmp_path: Path) -> None:
    from viewer.ai import ModelRegistry, ModelSession, classify_slices
    from viewer.batch.results import read_results
    from viewer.io import load_series

    out = tmp_path / "results.parquet"
    r = batch(orthanc.orthanc.dimse, "--query", "modality=CT patient-name=PANC*", "--model", "organ-ct",
              "--out", str(out), "--workers", "1", "--device", "cpu", "--json", "--no-progress")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["series_done"] == 1 and doc["series_failed"] == 0 and doc["slices"] == 134
    t = read_results(out).to_pydict()
    assert set(t["series_instance_uid"]) == {orthanc.series_uid} and set(t["status"]) == {"ok"}
    vol = load_series([str(f) for f in orthanc.files])
    want = classify_slices(ModelSession.get(ModelRegistry().get("organ-ct"), "cpu"), vol)
    by_sop = dict(zip(t["sop_instance_uid"], t["probabilities"]))
    for sop, probs in zip(vol.info.instance_uids, want.probabilities):
        np.testing.assert_allclose(by_sop[sop], probs, atol=1e-5)
    # a query matching nothing runs nothing; a PACS source without a query is refused
    r = batch(orthanc.orthanc.dimse, "--query", "modality=MR", "--model", "organ-ct", "--out", str(tmp_path / "x"))
    assert r.returncode == 1 and "no loadable DICOM series" in r.stderr
    r = batch(orthanc.orthanc.dimse, "--model", "organ-ct", "--out", str(tmp_path / "y"))
    assert r.returncode == 1 and "needs --query" in r.stderr
