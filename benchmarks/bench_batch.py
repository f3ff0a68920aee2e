"""Batch inference on Dask: throughput against a plain loop, the engine's own cost, and scale.

    nice python benchmarks/bench_batch.py [--repeat 4] [--parts 1,2,3] [--pairs 5] [--scale 1000,3000,10000]

1. Throughput (slices/s) over the shared CT series (134 + 100 + 20 J2K slices, ``--repeat`` times each) with
   the shipped organ-ct model, all in one run:
   - baseline: the plain sequential loop a user would write (``load_series`` + ``classify_slices`` per
     series, one process, library defaults: ONNX Runtime on every core, the loader's read threads and its
     decoder processes for JPEG 2000), which already keeps most of 2 cores busy;
   - baseline on one core: the same loop as a user would write it to run one series per core (``workers=1``
     to the loader: no decoder processes, one read thread, OpenJPEG single-threaded; an ONNX Runtime session
     with 1 intra-op thread), the sequential work the target's "2 workers on 2 cores" parallelises;
   - ``batch`` on a LocalCluster of 1 and of 2 worker processes (2 threads each: one series decoding while
     another is in ONNX Runtime), and of 2 workers with 1 thread (no overlap), as ratios to the loop.
     Target: >= 1.8x the loop with 2 workers on 2 cores; both ratios are printed. Also printed: the cores
     each layout kept busy (CPU s / wall s) and the ceiling of 2 workers at the measured CPU per slice (all
     cores busy): a loop that already keeps both cores busy caps the ratio whatever the engine does.
2. Engine overhead: the same task function (:func:`viewer.batch.work.infer_unit`) called in a loop in this
   process vs. through a 1-worker, 1-thread cluster (scheduling, pickling, result transfer, Parquet
   writing), alternating 5 (``--pairs``) times after a warm-up loop run, medians and spread, the driver's
   CPU (client, scheduler, results writer) apart from the worker's; and inside each cluster run, free of
   the work's run-to-run noise: the cluster's CPU less each task's own thread CPU (measured in the worker),
   with and without the job's fixed cost (a job with no series); plus each worker's one-time start (model
   files + session creation and warm-up) and the cluster's start. Target: under 5% of the work.
3. Scale: a synthetic archive of N series (default 1,000, 3,000 and 10,000) in a temporary folder: one
   symlink per series to a real CT slice, indexed under new Study/Series/SOP UIDs (the header index is
   written directly, as a scan would have; the scan then reads no header), scanned, scheduled and run on
   2 workers (small series travel several to a task: viewer.batch.job.next_pack). Reports the scan time, the
   job's wall and CPU time per 1,000 series (linear growth = flat), and the RSS
   growth of the scheduler and of the driver (the results writer) per 1,000 series. Nothing is left behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import ROOT, data_root, machine

MODEL = "organ-ct"
CT = ("pancreas-ct-philips-134", "crc-chest-ct-ge-100", "totalseg-ct-j2k-20")


def repeated_units(units: list[Any], repeat: int) -> list[Any]:
    return [dataclasses.replace(u, key=f"{u.key}#r{r}") for r in range(repeat) for u in units]


def tree_cpu(pid: int | None = None) -> float:
    """User + system CPU seconds of a process and its live children (decoder pools, worker processes)."""
    import psutil

    p = psutil.Process(pid)
    total = 0.0
    for q in [p, *p.children(recursive=True)]:
        try:
            t = q.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def own_cpu() -> float:
    """User + system CPU seconds of this process alone (the driver: client, results writer and, in a
    LocalCluster, the scheduler)."""
    import psutil

    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def sequential_loop(units: list[Any]) -> dict[str, float]:
    """The baseline: load_series + classify_slices per series in this process."""
    from viewer.ai import ModelRegistry, ModelSession, classify_slices
    from viewer.io import load_series

    session = ModelSession.get(ModelRegistry().get(MODEL), "cpu")
    c0, t0 = tree_cpu(), time.perf_counter()
    n = 0
    for u in units:
        vol = load_series(u.files)
        n += len(classify_slices(session, vol).indices)
    return {"wall": time.perf_counter() - t0, "cpu": tree_cpu() - c0, "slices": n}


def single_core_loop(units: list[Any]) -> dict[str, float]:
    """The baseline on one core: the same loop with the loader and ONNX Runtime each told to use one thread
    (``workers=1``: the loader's own option for decoding in this process only; ``threads=1``: the session's)."""
    from viewer.ai import ModelRegistry, ModelSession, classify_slices
    from viewer.io.load import stack_loader

    session = ModelSession.get(ModelRegistry().get(MODEL), "cpu", threads=1)
    c0, t0 = tree_cpu(), time.perf_counter()
    n = 0
    for u in units:
        vol = stack_loader(u.files).load(workers=1)
        n += len(classify_slices(session, vol).indices)
    return {"wall": time.perf_counter() - t0, "cpu": tree_cpu() - c0, "slices": n}


def batch_run(units: list[Any], workers: int, threads: int, out: Path) -> dict[str, Any]:
    """Start a LocalCluster, run the job; wall time and CPU time of the whole process tree (driver with the
    scheduler, nannies, workers), the cluster's start measured apart."""
    from viewer.batch.job import local_cluster, run_job
    from viewer.batch.models import RunOptions, resolve_models

    manifests = resolve_models([MODEL])
    t0 = time.perf_counter()
    cluster = local_cluster(workers, threads_per_worker=threads, dashboard=False)
    client = cluster.get_client()
    client.wait_for_workers(workers)
    start_s = time.perf_counter() - t0
    try:
        # One-time costs apart: each worker imports the loader and ONNX Runtime and starts its sessions on
        # its first series. The measured job is the steady state a cohort runs in.
        c0, t0 = tree_cpu(), time.perf_counter()
        run_job(client, units[:workers * threads], manifests, str(out) + ".warm", opts=RunOptions(device="cpu"))
        warm_s, warm_cpu = time.perf_counter() - t0, tree_cpu() - c0
        shutil.rmtree(str(out) + ".warm", ignore_errors=True)
        # What the idle engine burns (heartbeats, monitors): CPU seconds per wall second
        c2, t2 = tree_cpu(), time.perf_counter()
        time.sleep(3.0)
        idle_cores = (tree_cpu() - c2) / (time.perf_counter() - t2)
        # What a job costs before and after its tasks (worker plugins registered again: the model files
        # shipped to every worker; the workers' setup times asked for): a job with no series
        c3 = tree_cpu()
        run_job(client, [], manifests, str(out) + ".empty", opts=RunOptions(device="cpu"))
        job_cpu = tree_cpu() - c3
        c1, d1, t1 = tree_cpu(), own_cpu(), time.perf_counter()
        summary = run_job(client, units, manifests, str(out), opts=RunOptions(device="cpu"))
        wall, cpu, driver_cpu = time.perf_counter() - t1, tree_cpu() - c1, own_cpu() - d1
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(out, ignore_errors=True)
    return {"wall": wall, "cpu": cpu, "driver_cpu": driver_cpu, "slices": summary.progress.slices, "cluster_start": start_s,
            "warm_s": warm_s, "warm_cpu": warm_cpu, "idle_cores": idle_cores, "job_cpu": job_cpu,
            "engine_setup": summary.engine_setup_s, "task_s": summary.task_s, "task_cpu": getattr(summary, "task_cpu_s", float("nan")), "failed": summary.progress.series_failed}


def direct_loop(units: list[Any]) -> dict[str, float]:
    """The task function itself, called in this process: the work without the engine."""
    from viewer.batch.models import RunOptions, resolve_models, spec_of, warm
    from viewer.batch.work import infer_unit

    specs = [spec_of(m) for m in resolve_models([MODEL])]
    opts = RunOptions(device="cpu")
    warm(specs, opts)
    c0, t0 = tree_cpu(), time.perf_counter()
    for u in units:
        infer_unit(u, specs, opts)
    return {"wall": time.perf_counter() - t0, "cpu": tree_cpu() - c0}


def throughput(ct_units: list[Any], repeat: int, rounds: int, tmp: Path) -> None:
    import statistics

    units = repeated_units(ct_units, repeat)
    configs = (("loop", 0, 0), ("loop1", 0, 0), ("batch", 1, 2), ("batch", 2, 2), ("batch", 2, 1))
    results: dict[tuple[str, int, int], list[dict[str, Any]]] = {c: [] for c in configs}
    # interleaved rounds: the machine is shared, so each configuration sees the same mix of other load
    for r in range(rounds):
        for kind, workers, threads in configs:
            if kind == "loop":
                res = sequential_loop(units)
            elif kind == "loop1":
                res = single_core_loop(units)
            else:
                res = batch_run(units, workers, threads, tmp / f"t{workers}{threads}.parquet")
                assert not res["failed"], res
            results[(kind, workers, threads)].append(res)
    n = results[configs[0]][0]["slices"]
    loop = statistics.median(x["wall"] for x in results[configs[0]])
    loop_cpu = statistics.median(x["cpu"] for x in results[configs[0]])
    loop1 = statistics.median(x["wall"] for x in results[configs[1]])
    names = {"loop": "baseline: sequential loop, defaults", "loop1": "baseline: sequential loop, 1 core"}
    print(f"\n1. throughput: {len(units)} series, {n} slices (shared CT x {repeat}), model {MODEL}, CPU; "
          f"median of {rounds} interleaved rounds")
    print(f"   {'run':40s} {'wall s':>7s} {'slices/s':>9s} {'vs loop':>8s} {'vs 1-core':>9s} {'CPU s':>7s} "
          f"{'CPU ms/slice':>13s} {'cores':>6s}")
    for c in configs:
        wall = statistics.median(x["wall"] for x in results[c])
        cpu = statistics.median(x["cpu"] for x in results[c])
        used = statistics.median(x["cpu"] / x["wall"] for x in results[c])
        label = names.get(c[0], f"batch, {c[1]} worker(s) x {c[2]} thread(s)")
        extra = "" if c[0] != "batch" else f"   cluster start {statistics.median(x['cluster_start'] for x in results[c]):.1f} s (not in wall)"
        print(f"   {label:40s} {wall:7.2f} {n / wall:9.1f} {loop / wall:7.2f}x {loop1 / wall:8.2f}x {cpu:7.2f} "
              f"{1000 * cpu / n:13.2f} {used:6.2f}{extra}")
    two = results[("batch", 2, 2)]
    cpu2 = statistics.median(x["cpu"] for x in two)
    wall2 = statistics.median(x["wall"] for x in two)
    cores = default_cores()
    # The most any layout of the same work can give on these cores is all of them busy with it: when the
    # loop already keeps most of them busy, that caps the ratio whatever the engine does.
    print(f"   cores: CPU s / wall s of each run (of {cores}). CPU per slice, 2 workers vs loop: {cpu2 / loop_cpu:.2f}x; "
          f"ceiling for 2 workers at this CPU per slice ({cores} cores all busy): {cores * loop / cpu2:.2f}x the loop, "
          f"{cores * loop1 / cpu2:.2f}x the 1-core loop")
    print(f"   per-series cost, 2 workers: {wall2 / len(units) * 1000:.0f} ms wall per series of {n / len(units):.0f} "
          f"slices; CPU {1000 * cpu2 / len(units):.0f} ms per series ({1000 * cpu2 / n:.2f} ms/slice)")


def overhead(ct_units: list[Any], repeat: int, n_pairs: int, tmp: Path) -> None:
    import statistics

    units = repeated_units(ct_units, repeat)
    # One run of each is within the noise of a shared machine (a task is ~0.4 s of
    # CPU, the engine's cost ~0.01 s), so loop and cluster alternate and medians are compared; the cluster's
    # CPU is split into its worker process (the task function plus Dask's worker side) and the driver.
    direct_loop(units)  # the first run in this process pays one-time costs (codecs, caches): not a pair
    pairs = [(direct_loop(units), batch_run(units, 1, 1, tmp / f"o{k}.parquet")) for k in range(n_pairs)]
    direct = {k: statistics.median(d[k] for d, _ in pairs) for k in ("wall", "cpu")}
    one = {k: statistics.median(o[k] for _, o in pairs) for k in ("wall", "cpu", "driver_cpu", "idle_cores",
                                                                    "warm_s", "warm_cpu", "cluster_start")}
    one["engine_setup"] = pairs[-1][1]["engine_setup"]
    setup = max(one["engine_setup"].values()) if one["engine_setup"] else float("nan")
    idle = one["idle_cores"] * one["wall"]
    print(f"\n2. engine overhead (same tasks, {len(units)} series; median of {len(pairs)} alternating runs)")
    print(f"   task function in a loop here: {direct['wall']:.2f} s wall, {direct['cpu']:.2f} s CPU; through a warm "
          f"1-worker 1-thread cluster: {one['wall']:.2f} s wall, {one['cpu']:.2f} s CPU (all its processes) -> engine "
          f"{100 * (one['wall'] - direct['wall']) / direct['wall']:+.1f}% wall, "
          f"{100 * (one['cpu'] - direct['cpu']) / direct['cpu']:+.1f}% CPU")
    print(f"   of which the driver (client, scheduler, results writer): {1000 * one['driver_cpu'] / len(units):.0f} ms "
          f"CPU per task; the worker process: {1000 * (one['cpu'] - one['driver_cpu'] - direct['cpu']) / len(units):+.0f} "
          f"ms CPU per task beyond the task function")
    each = sorted(100 * (o["cpu"] - d["cpu"]) / d["cpu"] for d, o in pairs)
    print("   each pair, engine CPU per task (cluster - loop): " + ", ".join(
        f"{1000 * (o['cpu'] - d['cpu']) / len(units):+.0f} ms" for d, o in pairs)
        + f"; as % of the work, sorted: {', '.join(f'{x:+.1f}' for x in each)} (median {statistics.median(each):+.1f}%, "
        f"spread {each[0]:+.1f} .. {each[-1]:+.1f})")
    per_task = 1000 * (one['cpu'] - direct['cpu']) / len(units)
    work = 1000 * direct['cpu'] / len(units)
    print(f"   of which the idle engine (heartbeats, monitors: {one['idle_cores']:.3f} cores) over this wall time: "
          f"{idle:.2f} s CPU; per task beyond that: {1000 * (one['cpu'] - direct['cpu'] - idle) / len(units):.0f} ms CPU")
    print(f"   engine per task, all included: {per_task:.0f} ms CPU on {work:.0f} ms CPU of work per task "
          f"= {100 * per_task / work:.1f}% of the work (target < 5%)")
    # The same figure without the work's own run-to-run noise: each task's thread CPU is measured in the
    # worker (UnitResult.cpu_s), so the engine is the cluster's CPU (driver, scheduler, nanny, worker) less
    # the tasks' own, in the same run.
    inside = sorted((o["cpu"] - o["task_cpu"]) / o["task_cpu"] * 100 for _, o in pairs)
    eng = statistics.median(1000 * (o["cpu"] - o["task_cpu"]) / len(units) for _, o in pairs)
    inner = statistics.median(1000 * o["task_cpu"] / len(units) for _, o in pairs)
    per_job = statistics.median(o["job_cpu"] for _, o in pairs)
    steady = sorted((o["cpu"] - o["task_cpu"] - o["job_cpu"]) / o["task_cpu"] * 100 for _, o in pairs)
    print(f"   measured inside each run (cluster CPU - the tasks' own thread CPU): {eng:.1f} ms CPU per task on "
          f"{inner:.0f} ms of work = {statistics.median(inside):.1f}% (runs sorted: "
          f"{', '.join(f'{x:.1f}' for x in inside)}; target < 5%)")
    print(f"   of which once per job (a job with no series: plugins, model files to the workers): {1000 * per_job:.0f} ms "
          f"CPU; per task without it: {statistics.median(steady):.1f}% (runs sorted: {', '.join(f'{x:.1f}' for x in steady)})")
    print(f"   per worker, once: models + sessions {setup * 1000:.0f} ms; first series with imports "
          f"{one['warm_s']:.2f} s wall, {one['warm_cpu']:.2f} s CPU; cluster start {one['cluster_start']:.2f} s")


def default_cores() -> int:
    from viewer.ai.session import default_threads

    return default_threads()


def synthetic_archive(root: Path, n: int, index_path: Path) -> None:
    """N one-slice series (symlinks to the pancreas slices) with new UIDs, written into the header index."""
    from viewer.io.index import Index
    from viewer.io.series import find_stacks

    src = data_root() / "ct" / CT[0]
    records = sorted((r for s in find_stacks(src).stacks for r in s.records), key=lambda r: r.path)
    out = []
    for i in range(n):
        rec = records[i % len(records)]
        folder = root / f"study{i // 10:05d}" / f"series{i:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / "1.dcm"
        os.symlink(rec.path, link)
        st = os.stat(link)
        out.append(dataclasses.replace(rec, path=str(link), size=st.st_size, mtime_ns=st.st_mtime_ns,
                                       study_uid=f"2.25.1{i // 10}", series_uid=f"2.25.2{i}", sop_uid=f"2.25.3{i}"))
    with Index(index_path) as idx:
        for k in range(0, len(out), 2000):
            idx.put(out[k:k + 2000])


class ProcessCluster:
    """``dask scheduler`` and ``dask worker`` as separate processes on loopback, so the scheduler's memory is
    its own (a LocalCluster's scheduler lives in the driver's process)."""

    def __init__(self, workers: int, threads: int) -> None:
        import socket
        import subprocess
        import sys

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{port}"
        # as README's "More than one machine" starts them
        env = {**os.environ, "DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH": "100"}
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
        self.procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port",
                                        str(port), "--no-dashboard"], **quiet)]
        self.procs += [subprocess.Popen([sys.executable, "-m", "dask", "worker", self.address, "--nthreads",
                                         str(threads), "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard"],
                                        **quiet) for _ in range(workers)]
        from viewer.batch.job import connect

        self.client = connect(self.address, timeout_s=60)
        self.client.wait_for_workers(workers, timeout=120)

    def scheduler_rss_mb(self) -> float:
        import psutil

        return float(psutil.Process(self.procs[0].pid).memory_info().rss) / 2**20

    def close(self) -> None:
        self.client.close()
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            p.wait(30)


class RssSampler:
    """Peak RSS (MB) of this process (the driver: job list, writer) and of the scheduler, every 0.2 s."""

    def __init__(self, cluster: ProcessCluster) -> None:
        import psutil

        self.cluster = cluster
        self.me = psutil.Process()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_driver = max(self.peak_driver, self.me.memory_info().rss / 2**20)
            self.peak_sched = max(self.peak_sched, self.cluster.scheduler_rss_mb())

    def __enter__(self) -> RssSampler:
        self.driver0 = self.peak_driver = self.me.memory_info().rss / 2**20
        self.sched0 = self.peak_sched = self.cluster.scheduler_rss_mb()
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def scale(sizes: list[int], tmp: Path) -> None:
    import psutil

    from viewer.batch.job import run_job
    from viewer.batch.models import RunOptions, resolve_models
    from viewer.batch.sources import scan_sources

    manifests = resolve_models([MODEL])
    print("\n3. scale: synthetic archive, one 512x512 CT slice per series; `dask scheduler` + 2 `dask worker` "
          "processes x 2 threads")
    print(f"   {'series':>7s} {'scan s':>7s} {'headers read':>12s} {'job s':>7s} {'s/1000':>7s} {'CPU s/1000':>10s} "
          f"{'sched MB':>9s} {'MB/1000':>8s} {'driver MB':>10s} {'MB/1000':>8s} {'job list MB':>12s}")
    cluster = ProcessCluster(2, 2)
    me = psutil.Process()
    try:
        for n in sizes:
            root = tmp / f"archive{n}"
            index_path = tmp / f"index{n}.sqlite"
            synthetic_archive(root, n, index_path)
            before_scan = me.memory_info().rss / 2**20
            t0 = time.perf_counter()
            sc = scan_sources([str(root)], index=str(index_path))
            scan_s = time.perf_counter() - t0
            units_mb = me.memory_info().rss / 2**20 - before_scan
            assert len(sc.units) == n, (len(sc.units), n)
            out = tmp / f"scale{n}.parquet"
            with RssSampler(cluster) as mem:
                c1, t1 = tree_cpu(), time.perf_counter()
                summary = run_job(cluster.client, sc.units, manifests, str(out), opts=RunOptions(device="cpu"))
                job_s, job_cpu = time.perf_counter() - t1, tree_cpu() - c1
            assert summary.progress.series_done == n and summary.progress.series_failed == 0, summary.failures[:3]
            ds = mem.peak_sched - mem.sched0
            dd = mem.peak_driver - mem.driver0
            print(f"   {n:7d} {scan_s:7.2f} {sc.headers_read:12d} {job_s:7.1f} {1000 * job_s / n:7.2f} {1000 * job_cpu / n:10.2f} "
                  f"{mem.peak_sched:9.0f} {1000 * ds / n:8.2f} {mem.peak_driver:10.0f} {1000 * dd / n:8.2f} "
                  f"{units_mb:12.1f}")
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            del sc, summary
    finally:
        cluster.close()
    print("   CPU s/1000: user + system of every process (driver, scheduler, workers) per 1,000 series; sched/driver "
          "MB: peak RSS during the job; MB/1000: growth over the job's start per 1,000 series; job list MB: the "
          "scanned series (with their header records) the driver holds")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="times each CT series is run in part 1")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of part 1 (medians reported)")
    ap.add_argument("--scale", default="1000,3000,10000", help="synthetic archive sizes (comma separated)")
    ap.add_argument("--pairs", type=int, default=5, help="alternating loop/cluster pairs of part 2 (medians reported)")
    ap.add_argument("--parts", default="1,2,3", help="which parts to run (comma separated)")
    ap.add_argument("--skip-scale", action="store_true", help="as --parts 1,2")
    ap.add_argument("--skip-throughput", action="store_true", help="as --parts 3")
    args = ap.parse_args()
    print(f"bench_batch: {machine()}; load average {os.getloadavg()[0]:.1f}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    os.environ.setdefault("VIEWER_CACHE_DIR", str(tmp / "cache"))
    # worker processes import this checkout, not an installed copy
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    try:
        parts = {p.strip() for p in args.parts.split(",")} - ({"3"} if args.skip_scale else set()) - (
            {"1", "2"} if args.skip_throughput else set())
        if parts & {"1", "2"}:
            from viewer.batch.sources import scan_sources

            ct_units = scan_sources([str(data_root() / "ct" / c) for c in CT]).units
            if "1" in parts:
                throughput(ct_units, args.repeat, args.rounds, tmp)
            if "2" in parts:
                overhead(ct_units, args.repeat, args.pairs, tmp)
        if "3" in parts:
            scale([int(s) for s in args.scale.split(",") if s], tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
