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



def test_c_move_feed_gives_the_rows_of_the_c_get_feed(two_studies: Loaded, client: Any, tmp_path: Path) -> None:
    """The PACS sends each series to our storage SCP (C-MOVE, our AE known to Orthanc at ``scp_port``)
    instead of answering our C-GET: the same series arrive, and the job's rows are those of the C-GET path."""
    from viewer.batch.job import run_job
    from viewer.batch.models import RunOptions, resolve_models
    from viewer.batch.pacs_feed import PacsFeed
    from viewer.batch.results import read_results
    from viewer.batch.sources import PacsOptions

    o = two_studies
    by_get = PacsFeed([o.orthanc.dimse], PacsOptions("modality=CT", port=o.scp_port, store=str(tmp_path / "get"),
                                                     retrieve="get"), index=str(tmp_path / "index.sqlite"))
    assert by_get.find() == 2
    run_job(client, [], resolve_models(["organ-ct"]), str(tmp_path / "get.parquet"), opts=RunOptions(device="cpu"),
            feed=by_get)
    assert sorted((r.method, r.instances_fetched) for r in by_get.retrieved) == [("C-GET", 100), ("C-GET", 134)]

    # C-MOVE from the command line, as a user forces it for a PACS that offers no C-GET: each series is moved
    # on its own association while the previous one is inferred (our SCP on --port for each series in turn)
    r = batch(o.orthanc.dimse, "--query", "modality=CT", "--model", "organ-ct", "--out", str(tmp_path / "move.parquet"),
              "--into", str(tmp_path / "move"), "--retrieve", "move", "--port", str(o.scp_port), "--workers", "1",
              "--device", "cpu", "--json", "--no-progress")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["series_done"] == 2 and doc["series_failed"] == 0 and doc["slices"] == 234, doc
    assert sorted((x["method"], x["instances_fetched"], x["already_stored"]) for x in doc["retrieved"]) == [
        ("C-MOVE", 100, 0), ("C-MOVE", 134, 0)]

    def rows(out: Path, store: Path) -> list[tuple[Any, ...]]:
        t = read_results(out).to_pydict()
        same = ("unit_key", "series_instance_uid", "study_instance_uid", "modality", "model_id", "model_sha256",
                "status", "slice", "sop_instance_uid", "frame", "label", "class_names", "n_slices")
        keyed = [(*(t[c][i] for c in same), str(Path(t["folder"][i]).relative_to(store)),
                  np.asarray(t["probabilities"][i])) for i in range(len(t["slice"]))]
        return sorted(keyed, key=lambda k: (k[1], k[7]))

    def assert_same(x: list[tuple[Any, ...]], y: list[tuple[Any, ...]]) -> None:
        assert len(x) == len(y) == 234
        for a, b in zip(x, y):
            assert a[:-1] == b[:-1]
            np.testing.assert_allclose(a[-1], b[-1], atol=1e-6)

    moved = rows(tmp_path / "move.parquet", tmp_path / "move")
    assert_same(rows(tmp_path / "get.parquet", tmp_path / "get"), moved)

    # a store missing some instances: C-MOVE asks for those alone (a UID list), and the job runs on all
    folder = tmp_path / "move" / o.study_uid / o.series_uid
    gone = sorted(folder.glob("*.dcm"))[::10]
    for f in gone:
        f.unlink()
    again = PacsFeed([o.orthanc.dimse], PacsOptions("modality=CT", port=o.scp_port, store=str(tmp_path / "move"),
                                                    retrieve="move"), index=str(tmp_path / "index.sqlite"))
    again.find()
    s = run_job(client, [], resolve_models(["organ-ct"]), str(tmp_path / "again.parquet"),
                opts=RunOptions(device="cpu"), feed=again)
    assert s.progress.series_failed == 0 and s.progress.slices == 234
    assert sorted((r.series_instance_uid == o.series_uid, r.method, r.instances_fetched, r.already_stored)
                  for r in again.retrieved) == [(False, "none (already stored)", 0, 100),
                                                (True, "C-MOVE", len(gone), 134 - len(gone))]
    assert_same(rows(tmp_path / "again.parquet", tmp_path / "move"), moved)

    # our storage SCP cannot listen (another program holds --port): each series is recorded with the
    # reason, and the job completes
    import socket

    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the last move's connections linger
        holder.bind(("", o.scp_port))
        holder.listen()
        blocked = PacsFeed([o.orthanc.dimse], PacsOptions("modality=CT", port=o.scp_port,
                                                          store=str(tmp_path / "blocked"), retrieve="move"),
                           index=str(tmp_path / "index.sqlite"))
        blocked.find()
        s = run_job(client, [], resolve_models(["organ-ct"]), str(tmp_path / "blocked.parquet"),
                    opts=RunOptions(device="cpu"), feed=blocked)
    assert [r.status for r in blocked.retrieved] == ["failed", "failed"]
    p = s.progress
    assert (p.series_total, p.series_done, p.series_failed, p.slices) == (2, 2, 2, 0)
    assert sorted(f["series_instance_uid"] for f in s.failures) == sorted(
        r.series_instance_uid for r in blocked.retrieved)
    assert all(f"port {o.scp_port}" in f["reason"] and "--resume" in f["reason"] for f in s.failures), s.failures
    # --resume once the port is free: the series not retrieved are asked for again and run
    again = PacsFeed([o.orthanc.dimse], PacsOptions("modality=CT", port=o.scp_port, store=str(tmp_path / "blocked"),
                                                    retrieve="move"), index=str(tmp_path / "index.sqlite"))
    again.find()
    s = run_job(client, [], resolve_models(["organ-ct"]), str(tmp_path / "blocked.parquet"),
                opts=RunOptions(device="cpu"), feed=again, resume=True)
    assert (s.progress.series_done, s.progress.series_failed, s.progress.slices) == (2, 0, 234)
    assert_same(rows(tmp_path / "blocked.parquet", tmp_path / "blocked"), moved)
