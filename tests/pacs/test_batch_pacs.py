"""``batch infer`` with a PACS source: the series a query finds on a real Orthanc are retrieved into the local
store and run; the rows equal the model run on the original files."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.pacs.conftest import Loaded

pytest.importorskip("distributed")


def batch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "viewer", "batch", "infer", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})


def test_batch_infer_retrieves_the_queried_series_runs_them_and_sends_the_sr(orthanc: Loaded,
                                                                           tmp_path: Path) -> None:
    import pydicom

    from viewer.ai import ModelRegistry, ModelSession, classify_slices
    from viewer.annotations.findings_sr import read_findings
    from viewer.batch.results import read_results
    from viewer.io import load_series

    out = tmp_path / "results.parquet"
    r = batch(orthanc.orthanc.dimse, "--query", "modality=CT patient-name=PANC*", "--model", "organ-ct",
              "--out", str(out), "--sr", str(tmp_path / "sr"), "--send", orthanc.orthanc.dicomweb,  # STOW-RS
              "--into", str(tmp_path / "store"), "--workers", "1", "--device", "cpu", "--json", "--no-progress")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["series_done"] == 1 and doc["series_failed"] == 0 and doc["slices"] == 134
    assert [x["instances_fetched"] for x in doc["retrieved"]] == [134]
    assert doc["outputs"]["written"] == 1 and doc["outputs"]["sent"] == 1, doc["outputs"]
    t = read_results(out).to_pydict()
    assert set(t["series_instance_uid"]) == {orthanc.series_uid} and set(t["status"]) == {"ok"}
    assert {Path(f) for f in t["folder"]} == {tmp_path / "store" / orthanc.study_uid / orthanc.series_uid}
    vol = load_series([str(f) for f in orthanc.files])
    want = classify_slices(ModelSession.get(ModelRegistry().get("organ-ct"), "cpu"), vol)
    by_sop = dict(zip(t["sop_instance_uid"], t["probabilities"]))
    for sop, probs in zip(vol.info.instance_uids, want.probabilities):
        np.testing.assert_allclose(by_sop[sop], probs, atol=1e-5)
    [sr_series] = set(t["output_series_uid"])
    try:
        # the SR as the PACS holds it: in the source's study, naming the source series and every image's class
        [hit] = [h for h in orthanc.orthanc.rest("/tools/lookup", sr_series.encode()) if h["Type"] == "Series"]
        [inst] = orthanc.orthanc.rest(f"/series/{hit['ID']}/instances")
        with urllib.request.urlopen(f"{orthanc.orthanc.url}/instances/{inst['ID']}/file", timeout=60) as f:
            sr = pydicom.dcmread(io.BytesIO(f.read()))
        assert sr.Modality == "SR" and sr.StudyInstanceUID == orthanc.study_uid
        [ev] = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
        assert ev.SeriesInstanceUID == orthanc.series_uid and len(ev.ReferencedSOPSequence) == 134
        assert read_findings(sr) == {(sop, 1): lab for sop, lab in zip(t["sop_instance_uid"], t["label"])}
        assert set(t["send_status"]) == {"sent"}
    finally:
        delete_from_orthanc(orthanc, sr_series)  # the other PACS tests expect the pancreas study as loaded
    # a query matching nothing runs nothing; a PACS source without a query is refused
    r = batch(orthanc.orthanc.dimse, "--query", "modality=MR", "--model", "organ-ct", "--out", str(tmp_path / "x"))
    assert r.returncode == 1 and "no loadable DICOM series" in r.stderr
    r = batch(orthanc.orthanc.dimse, "--model", "organ-ct", "--out", str(tmp_path / "y"))
    assert r.returncode == 1 and "needs --query" in r.stderr


@pytest.fixture(scope="module")
def two_studies(orthanc: Loaded, data_dir: Path) -> Iterator[Loaded]:
    """The fixture's Orthanc with a second CT study (the 100-slice CRC chest CT) for this module only: the
    other PACS tests expect the pancreas study alone, so it is deleted afterwards."""
    from tests.pacs.conftest import CRC, series_files

    files = series_files(data_dir, CRC)
    orthanc.orthanc.upload(files)
    yield orthanc
    delete_from_orthanc(orthanc, read_uid(files[0], "StudyInstanceUID"))


def read_uid(path: Path, keyword: str) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).get(keyword))


def delete_from_orthanc(o: Loaded, uid: str) -> None:
    for hit in o.orthanc.rest("/tools/lookup", uid.encode()):
        o.orthanc.rest(hit["Path"], method="DELETE")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from viewer.batch.job import local_cluster

    cluster = local_cluster(1, dashboard=False)
    c = cluster.get_client()
    yield c
    c.close()
    cluster.close()


def test_pacs_series_stream_into_the_job_and_resume_fetches_nothing(two_studies: Loaded, client: Any,
                                                                    tmp_path: Path) -> None:
    import threading

    from viewer.batch.job import run_job
    from viewer.batch.models import RunOptions, resolve_models
    from viewer.batch.outputs import OutputOptions
    from viewer.batch.pacs_feed import PacsFeed
    from viewer.batch.results import read_results
    from viewer.batch.sources import PacsOptions
    from tests.pacs.orthanc import free_port

    o = two_studies
    pacs = PacsOptions("modality=CT", port=o.scp_port, store=str(tmp_path / "store"))
    first_done = threading.Event()
    waited: list[bool] = []

    def hold_second(series_uid: str) -> None:
        # The second series is retrieved only once the first one's task has finished: the job completes
        # only if tasks start as series arrive, not after the whole cohort is downloaded.
        if feed.retrieved[0].series_instance_uid != series_uid:
            waited.append(first_done.wait(300))

    feed = PacsFeed([o.orthanc.dimse], pacs, index=str(tmp_path / "index.sqlite"), before_series=hold_second)
    assert feed.find() == 2
    models = resolve_models(["organ-ct"])
    out = tmp_path / "results.parquet"
    nobody = f"dimse://NOBODY@127.0.0.1:{free_port()}"  # nothing listens there: every send fails
    summary = run_job(client, [], models, str(out), opts=RunOptions(device="cpu"), feed=feed,
                      outputs=OutputOptions(sr_dir=str(tmp_path / "sr"), send=nobody),
                      on_progress=lambda p: first_done.set() if p.series_done >= 1 else None)
    assert waited == [True]
    assert summary.progress.series_total == 2 and summary.progress.series_done == 2
    assert summary.progress.series_failed == 0 and summary.progress.slices == 234
    assert [(r.status, r.instances_fetched, r.already_stored) for r in feed.retrieved] in (
        [("retrieved", 134, 0), ("retrieved", 100, 0)], [("retrieved", 100, 0), ("retrieved", 134, 0)])
    t = read_results(out).to_pydict()
    assert set(t["status"]) == {"ok"} and len(set(t["series_instance_uid"])) == 2
    # the SR is written for each series even though the send failed; the failure is in the rows
    assert set(t["send_status"]) == {"failed"} and all("NOBODY" in e or "127.0.0.1" in e for e in t["send_error"])
    assert all(Path(p).is_file() for p in t["output_path"])
    assert {p.parent for p in map(Path, t["folder"])} == {tmp_path / "store" / o.study_uid} | {
        tmp_path / "store" / s for s in {Path(f).parent.name for f in t["folder"]} if s != o.study_uid}

    # --resume: finished series are not even retrieved
    again = PacsFeed([o.orthanc.dimse], pacs, index=str(tmp_path / "index.sqlite"))
    again.find()
    s2 = run_job(client, [], models, str(out), opts=RunOptions(device="cpu"), feed=again, resume=True)
    assert [r.status for r in again.retrieved] == ["skipped", "skipped"] and s2.progress.series_skipped == 2
    assert read_results(out).num_rows == len(t["status"])
    # a new job over the same store: the instances are there already, nothing comes over the network
    third = PacsFeed([o.orthanc.dimse], pacs, index=str(tmp_path / "index.sqlite"))
    third.find()
    run_job(client, [], models, str(tmp_path / "again.parquet"), opts=RunOptions(device="cpu"), feed=third)
    assert sorted((r.instances_fetched, r.already_stored) for r in third.retrieved) == [(0, 100), (0, 134)]

