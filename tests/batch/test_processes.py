"""``batch infer`` as separate processes: the whole job killed and resumed; a cluster of ``dask scheduler`` and
two ``dask worker`` processes on loopback used through ``--scheduler``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.batch.conftest import MODEL, assert_matches_reference, ok_rows
from viewer.cli import main

pytest.importorskip("distributed")
pytest.importorskip("pyarrow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _batch_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "viewer", "batch", "infer", *args]


def test_resume_after_killing_the_whole_job_redoes_only_unfinished(data_dir: Path, tmp_path: Path) -> None:
    from viewer.batch.results import read_results

    out = tmp_path / "results.parquet"
    # 30 small MR series run with --force: many tasks, little work each (the CT comparison is elsewhere)
    srcs = [str(data_dir / "dcm_qa")]
    argv = _batch_cmd(*srcs, "--model", MODEL, "--out", str(out), "--workers", "2", "--force", "--device", "cpu",
                      "--chunk-rows", "1", "--no-progress")
    job = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while len(list(out.glob("part-*.parquet"))) < 3:
            assert job.poll() is None, job.stderr.read().decode() if job.stderr else ""
            time.sleep(0.02)
        os.killpg(job.pid, signal.SIGKILL)  # the driver and its whole local cluster, mid-job
    finally:
        job.wait(60)
        if job.stderr:
            job.stderr.close()
    first = read_results(out).to_pydict()
    first_units = set(first["unit_key"])
    first_job = set(first["job_id"])
    assert len(first_job) == 1 and 3 <= len(first_units)

    done = subprocess.run(_batch_cmd(*srcs, "--model", MODEL, "--out", str(out), "--workers", "2", "--force",
                                     "--device", "cpu", "--resume", "--json", "--no-progress"),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    t = read_results(out).to_pydict()
    all_units = set(t["unit_key"])
    assert summary["series_skipped"] == len(first_units)
    assert summary["series_done"] == len(all_units) - len(first_units) == summary["series_total"] - len(first_units)
    second = {k for k, j in zip(t["unit_key"], t["job_id"]) if j not in first_job}
    assert second == all_units - first_units, "the resumed job redid a finished series"
    assert max(Counter(zip(t["unit_key"], t["slice"])).values()) == 1
    assert len(all_units) == summary["series_total"]


def test_multi_process_cluster_via_scheduler(ct_dirs: list[Path], reference: dict[tuple[str, int], dict[str, float]],
                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nthreads", "2",
                                           "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard",
                                           "--local-directory", str(tmp_path / "workers")],
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=60) as c:
            c.wait_for_workers(2, timeout=120)
        out = tmp_path / "results.parquet"
        rc = main(["batch", "infer", *[str(d) for d in ct_dirs[1:]], "--model", MODEL, "--out", str(out),
                   "--scheduler", address, "--device", "cpu", "--json", "--no-progress"])
        doc = json.loads(capsys.readouterr().out)
        assert rc == 0 and doc["scheduler"] == address and doc["workers"] == 2 and doc["series_done"] == 2
        assert doc["series_failed"] == 0 and doc["slices"] == 120
        rows = ok_rows(out)
        assert_matches_reference(rows, {k: v for k, v in reference.items() if k[0] != str(ct_dirs[0])})
        # the rows name the worker processes that made them: the two `dask worker` processes, not this one
        workers = set(rows.column("worker").to_pylist())
        assert workers and all(not w.endswith(f":{os.getpid()}") for w in workers)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
