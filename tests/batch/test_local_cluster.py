"""``batch infer`` / ``batch evaluate`` in this process, on one real LocalCluster of 2 worker processes, over
the shared CT and dcm_qa folders; the reference is the single-process ``infer --json`` of each CT series."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.batch.conftest import MODEL, assert_matches_reference, ok_rows
from viewer.cli import main

pytest.importorskip("distributed")
pc = pytest.importorskip("pyarrow.compute")


@pytest.fixture(scope="module")
def client() -> Any:
    from viewer.batch.job import local_cluster

    cluster = local_cluster(2, dashboard=False)
    c = cluster.get_client()
    yield c
    c.close()
    cluster.close()


def test_local_cluster_results_equal_single_process_infer(client: Any, ct_dirs: list[Path], data_dir: Path,
                                                          reference: dict[tuple[str, int], dict[str, float]],
                                                          tmp_path: Path) -> None:
    from viewer.batch.job import run_job
    from viewer.batch.models import RunOptions, resolve_models
    from viewer.batch.sources import scan_sources

    # the sources as a path list (one CT folder relative, comments, blank lines) plus the MR archive
    listing = tmp_path / "cohort.txt"
    listing.write_text(f"# CT cohort\n{os.path.relpath(ct_dirs[0], tmp_path)}\n\n{ct_dirs[1]}\n{ct_dirs[2]}\n")
    scan = scan_sources([str(listing), str(data_dir / "dcm_qa")])
    manifests = resolve_models([MODEL])
    out = tmp_path / "results.parquet"
    seen: list[int] = []
    summary = run_job(client, scan.units, manifests, str(out), opts=RunOptions(device="cpu"),
                      on_progress=lambda p: seen.append(p.series_done))
    assert summary.workers == 2 and summary.progress.series_done == len(scan.units)
    assert summary.progress.slices == 254 and seen[-1] == len(scan.units)
    assert_matches_reference(ok_rows(out), reference)
    # every MR series is recorded as not applicable, with the reason, one row per series
    from viewer.batch.results import read_results

    t = read_results(out).to_pydict()
    failed = {k: r for k, s, r, m in zip(t["unit_key"], t["status"], t["reason"], t["modality"]) if s == "failed"}
    mr_units = {u.key for u in scan.units if u.modality == "MR"}
    assert set(failed) == mr_units and len(mr_units) > 10
    assert all("not applicable" in r and "MR" in r for r in failed.values())
    sha = manifests[0].sha256
    ok = [i for i, s in enumerate(t["status"]) if s == "ok"]
    assert {t["model_sha256"][i] for i in ok} == {sha} and {t["model_version"][i] for i in ok} == {manifests[0].version}
    assert {t["provider"][i] for i in ok} == {"CPUExecutionProvider"} and not any(t["forced"])
    assert all(t["load_ms"][i] > 0 and t["infer_ms"][i] > 0 for i in ok)
    # sessions were made once per worker process (by the plugin), not per task
    assert len(summary.engine_setup_s) == 2 and all(v > 0 for v in summary.engine_setup_s.values())

    def worker_state() -> tuple[bool | None, int]:
        from viewer.ai.session import ModelSession
        from viewer.batch.work import TuneWorker

        return TuneWorker.malloc_restored, len(ModelSession._cache)

    # each worker process tuned once, and still holding the one session every task used
    assert sorted(client.run(worker_state).values()) == [(True, 1), (True, 1)]


def test_small_series_packed_into_one_task_keep_their_own_rows(client: Any, ct_dirs: list[Path], data_dir: Path,
                                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from viewer.batch import job
    from viewer.batch.models import RunOptions, resolve_models, spec_of
    from viewer.batch.results import read_results
    from viewer.batch.sources import scan_sources
    from viewer.batch.work import infer_unit

    scan = scan_sources([str(ct_dirs[2]), str(data_dir / "dcm_qa")])  # 13 one-file series among 18
    monkeypatch.setattr(job, "PACK_TASKS_PER_THREAD", 1)  # 18 series on 4 threads: packs of up to 4
    packs: list[list[str]] = []
    real_next_pack = job.next_pack

    def recording(todo: Any, threads: int) -> Any:
        pack = real_next_pack(todo, threads)
        packs.append([u.key for u, _ in pack])
        return pack

    monkeypatch.setattr(job, "next_pack", recording)
    manifests = resolve_models([MODEL])
    opts = RunOptions(device="cpu", force=True)
    out = tmp_path / "results.parquet"
    summary = job.run_job(client, scan.units, manifests, str(out), opts=opts)
    assert summary.progress.series_done == len(scan.units) and summary.progress.series_failed == 0
    assert max(len(p) for p in packs) > 1 and sorted(k for p in packs for k in p) == sorted(u.key for u in scan.units)
    t = read_results(out).to_pydict()
    got: dict[tuple[str, int], list[float]] = {(k, s): p for k, s, p in zip(t["unit_key"], t["slice"], t["probabilities"])}
    assert len(got) == len(t["unit_key"])  # no slice twice
    # each series' rows are its own: the same as running it alone in this process
    specs = [spec_of(m) for m in manifests]
    for unit in (u for u in scan.units if any(u.key in p for p in packs if len(p) > 1)):
        alone = infer_unit(unit, specs, opts).models[0]
        assert len(alone.slices) == sum(1 for k, _ in got if k == unit.key) > 0
        for k, probs in zip(alone.slices, alone.probabilities):
            np.testing.assert_allclose(got[(unit.key, int(k))], probs, atol=1e-5)


def test_worker_killed_mid_job_no_duplicate_or_lost_rows(client: Any, ct_dirs: list[Path], data_dir: Path,
                                                        reference: dict[tuple[str, int], dict[str, float]],
                                                        tmp_path: Path) -> None:
    from viewer.batch.job import run_job
    from viewer.batch.models import RunOptions, resolve_models
    from viewer.batch.sources import scan_sources

    scan = scan_sources([str(ct_dirs[2]), str(data_dir / "dcm_qa")])
    # --force: the MR series run too, so the job has enough tasks to kill a worker in the middle
    out = tmp_path / "results.parquet"
    pids = client.run(os.getpid)
    killed: list[tuple[str, int]] = []

    def kill_one(p: Any) -> None:
        if killed or p.series_done < 2:
            return
        busy = {w: tasks for w, tasks in client.processing().items() if tasks}
        if busy:
            worker = sorted(busy)[0]
            os.kill(pids[worker], signal.SIGKILL)
            killed.append((worker, len(busy[worker])))

    summary = run_job(client, scan.units, resolve_models([MODEL]), str(out),
                      opts=RunOptions(device="cpu", force=True), on_progress=kill_one, chunk_rows=50)
    assert killed and killed[0][1] >= 1, "no worker was busy when the job was half done"
    from viewer.batch.results import read_results

    t = read_results(out)
    d = t.select(["unit_key", "status", "slice", "n_slices", "forced"]).to_pydict()
    assert "lost" not in d["status"] and all(d["forced"])
    assert set(d["unit_key"]) == {u.key for u in scan.units}
    pairs = Counter(zip(d["unit_key"], d["slice"]))
    assert max(pairs.values()) == 1, "rows written twice"
    n_slices = {k: n for k, n in zip(d["unit_key"], d["n_slices"])}
    per_unit = Counter(k for k, s in zip(d["unit_key"], d["status"]) if s == "ok")
    assert all(per_unit[k] == n_slices[k] for k in per_unit), "a series lost rows"
    assert summary.progress.series_done == len(scan.units)
    ok = ok_rows(out)
    assert_matches_reference(ok.filter(pc.equal(ok.column("modality"), "CT")),
                              {k: v for k, v in reference.items() if k[0] == str(ct_dirs[2])})
    # the nanny restarted the killed worker: the cluster is back to two
    client.wait_for_workers(2, timeout=60)


def test_bad_series_reported_with_reason_and_job_completes(client: Any, ct_dirs: list[Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from viewer.batch.job import run_job
    from viewer.batch.models import RunOptions, resolve_models
    from viewer.batch.results import read_results
    from viewer.batch.sources import scan_sources

    src = tmp_path / "archive"
    j2k = src / "j2k"
    shutil.copytree(ct_dirs[2] / "example_ct_dicom", j2k)
    broken = sorted(j2k.iterdir())[7]
    data = bytearray(broken.read_bytes())
    at = data.rfind(b"\xff\x4f\xff\x51")  # JPEG 2000 SOC + SIZ: wipe the header after the image size
    # (a codestream whose own size differs from Rows x Columns is refused by the scan, file by file; this
    # one passes the scan and fails in the decoder, so the whole series fails)
    data[at + 20:at + 60] = bytes(40)
    broken.write_bytes(bytes(data))
    (src / "notes.txt").write_text("not an image")
    good = src / "good"
    good.mkdir()
    for f in sorted((ct_dirs[1]).glob("*.dcm"))[:5]:
        shutil.copy(f, good / f.name)
    scan = scan_sources([str(src)])
    assert any(p.endswith("notes.txt") for p, _ in scan.bad_files)
    out = tmp_path / "results.parquet"
    summary = run_job(client, scan.units, resolve_models([MODEL]), str(out), opts=RunOptions(device="cpu"))
    assert summary.progress.series_done == 2 and summary.progress.series_failed == 1
    (failure,) = summary.failures
    assert failure["folder"] == str(j2k) and broken.name in failure["reason"] and "cannot be decoded" in failure["reason"]
    t = read_results(out).to_pydict()
    status = Counter(t["status"])
    assert status == {"ok": 5, "failed": 1}
    (reason,) = [r for s, r in zip(t["status"], t["reason"]) if s == "failed"]
    assert reason.startswith("load: ") and broken.name in reason


def test_evaluate_scores_results_with_the_evaluate_metrics(client: Any, ct_dirs: list[Path],
                                                           reference: dict[tuple[str, int], dict[str, float]], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import csv

    from viewer.batch.job import run_job
    from viewer.batch.models import RunOptions, resolve_models
    from viewer.batch.sources import scan_sources
    from viewer.core.metrics import classification_report

    scan = scan_sources([str(ct_dirs[0]), str(ct_dirs[1])])
    manifest = resolve_models([MODEL])[0]
    out = tmp_path / "results.parquet"
    run_job(client, scan.units, [manifest], str(out), opts=RunOptions(device="cpu"))
    names = list(manifest.output.labels)
    rows = ok_rows(out).select(["sop_instance_uid", "series_instance_uid", "folder", "slice"]).to_pydict()
    # labels: per slice, the reference's top class except every 7th slice, which gets the next class;
    # the chest series gets one series label
    labels = tmp_path / "labels.csv"
    chest_uid = next(u.series_uid for u in scan.units if "crc-chest" in u.folder)

    def ref_probs(i: int) -> Any:
        d = next(str(d) for d in ct_dirs if rows["folder"][i].startswith(str(d)))
        return np.array([reference[(d, rows["slice"][i])][n] for n in names])

    y_true, scores, expect_disagree = [], [], 0
    with open(labels, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["series_instance_uid", "sop_instance_uid", "label"])
        for i, (sop, uid) in enumerate(zip(rows["sop_instance_uid"], rows["series_instance_uid"])):
            if uid == chest_uid:
                continue
            probs = ref_probs(i)
            k = int(probs.argmax())
            if i % 7 == 0:
                k, expect_disagree = (k + 1) % len(names), expect_disagree + 1
            w.writerow([uid, sop, names[k]])
            y_true.append(k)
            scores.append(probs)
        chest_probs = np.mean([ref_probs(i) for i, u in enumerate(rows["series_instance_uid"]) if u == chest_uid], axis=0)
        w.writerow([chest_uid, "", "liver"])
        w.writerow(["1.2.3.4", "", "liver"])  # a series not in the results
    y_true.append(names.index("liver"))
    scores.append(chest_probs)
    want = classification_report(np.array(y_true), np.stack(scores), names)

    assert main(["batch", "evaluate", str(out), "--labels", str(labels), "--json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)["reports"]
    assert r["model"] == MODEL and r["slice_labels"] == 134 and r["series_labels"] == 1 and r["unmatched"] == 1
    assert r["n"] == want["n"] == 135 and r["confusion_matrix"] == want["confusion_matrix"]
    assert r["accuracy"] == pytest.approx(want["accuracy"], abs=1e-6)
    # the reference probabilities are infer's 6-decimal JSON: with organ-ct 1.2.0's sharper (calibrated)
    # probabilities many round to 0 or 1, and the rank ties that makes move the AUC by a few 1e-4
    assert r["auc"] == pytest.approx(want["auc"], abs=1e-3)
    for n in names:
        got, exp = r["per_class"][n], want["per_class"][n]
        assert got["support"] == exp["support"]
        for k in ("recall", "precision"):
            assert (got[k] is None and exp[k] is None) or got[k] == pytest.approx(exp[k])
    expect_disagree += int(int(np.argmax(chest_probs)) != names.index("liver"))
    assert len(r["disagreements"]) == expect_disagree
    assert main(["batch", "evaluate", str(out), "--labels", str(labels)]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and f"disagreements ({expect_disagree})" in text
