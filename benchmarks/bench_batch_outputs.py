"""Batch jobs with a PACS source and DICOM outputs: streaming against retrieve-then-run, and the SR's cost.

    nice python benchmarks/bench_batch_outputs.py [--copies 3] [--repeats 2] [--workers 2]

Run as root: it moves itself into a private network namespace (loopback only), like the tests, and starts a
real Orthanc there holding the pancreas (134) and CRC (100) CTs, each ``--copies`` times under new UIDs.

1. PACS source, organ-ct, a LocalCluster of ``--workers`` processes, a fresh store each run; alternated:
   - baseline: retrieve every matching series first, then run the job (what ``batch infer`` did before:
     :func:`viewer.batch.sources.scan_sources` with the PACS source, then ``run_job``);
   - streamed: :class:`viewer.batch.pacs_feed.PacsFeed` (series retrieved on a thread, tasks start as each
     is stored).
   Both timed from the query to the last row, and to the first finished series. Ratios: baseline / streamed.
2. The SR per series (``--sr``): the same local series with and without ``--sr`` on the same warm cluster;
   the job time ratio and, from the rows, the SR's own time per series against load + inference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import data_root, machine

from tests.netns import enter_private_netns

AE = "DICOMVIEWER"
CT = ("ct/pancreas-ct-philips-134", "ct/crc-chest-ct-ge-100")


def upload_copies(o: Any, copies: int) -> int:
    """Each CT series ``copies`` times under new Study/Series/SOP UIDs; returns the slices uploaded."""
    import io

    import pydicom
    from pydicom.uid import generate_uid

    n = 0
    for rel in CT:
        files = sorted((data_root() / rel).glob("*.dcm"))
        for _ in range(copies):
            study, series = generate_uid(), generate_uid()
            for f in files:
                ds = pydicom.dcmread(f)
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                buf = io.BytesIO()
                ds.save_as(buf, enforce_file_format=True)
                o.rest("/instances", buf.getvalue())
                n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    why = enter_private_netns()
    if why:
        sys.exit(f"bench_batch_outputs: {why}")
    from tests.pacs.orthanc import Orthanc, free_port
    from viewer.batch.job import local_cluster, run_job
    from viewer.batch.models import RunOptions, resolve_models
    from viewer.batch.outputs import OutputOptions
    from viewer.batch.pacs_feed import PacsFeed
    from viewer.batch.results import read_results
    from viewer.batch.sources import PacsOptions, scan_sources

    print(machine())
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-out-"))
    o = Orthanc(tmp / "orthanc", {AE: free_port()}).start()
    cluster = local_cluster(args.workers, dashboard=False)
    client = cluster.get_client()
    models = resolve_models(["organ-ct"])
    opts = RunOptions(device="cpu")
    try:
        slices = upload_copies(o, args.copies)
        print(f"Orthanc: {2 * args.copies} series, {slices} slices; {args.workers} workers")
        runs = 0

        def one(streamed: bool) -> tuple[float, float]:
            nonlocal runs
            runs += 1
            d = tmp / f"run{runs}"
            pacs = PacsOptions("modality=CT", port=o.modalities[AE], store=str(d / "store"))
            first: list[float] = []
            t0 = time.perf_counter()

            def seen(p: Any) -> None:
                if p.series_done >= 1 and not first:
                    first.append(time.perf_counter() - t0)

            if streamed:
                feed = PacsFeed([o.dimse], pacs, index=str(d / "index.sqlite"))
                feed.find()
                s = run_job(client, [], models, str(d / "r.parquet"), opts=opts, feed=feed, on_progress=seen)
            else:
                scan = scan_sources([o.dimse], pacs=pacs, index=str(d / "index.sqlite"))
                s = run_job(client, scan.units, models, str(d / "r.parquet"), opts=opts, on_progress=seen)
            assert s.progress.slices == slices and s.progress.series_failed == 0
            return time.perf_counter() - t0, first[0]

        one(True)  # warm: sessions, Orthanc's cache
        base: list[tuple[float, float]] = []
        stream: list[tuple[float, float]] = []
        for _ in range(args.repeats):
            base.append(one(False))
            stream.append(one(True))
        bt, bf = statistics.median(t for t, _ in base), statistics.median(f for _, f in base)
        st, sf = statistics.median(t for t, _ in stream), statistics.median(f for _, f in stream)
        print(f"PACS job, retrieve then run: {bt:.2f} s, first series done at {bf:.2f} s")
        print(f"PACS job, streamed:          {st:.2f} s, first series done at {sf:.2f} s")
        print(f"  streamed vs retrieve-then-run: whole job {bt / st:.2f}x faster, first result {bf / sf:.2f}x sooner")

        local = [str(data_root() / rel) for rel in CT]
        scan = scan_sources(local, index=str(tmp / "index.sqlite"))
        # warm: every worker imports highdicom for its first SR (about 1 s, once per worker process)
        run_job(client, scan.units, models, str(tmp / "warm.parquet"), opts=opts,
                outputs=OutputOptions(sr_dir=str(tmp / "warm-sr")))
        plain: list[float] = []
        with_sr: list[float] = []
        sr_ms: list[float] = []
        work_ms: list[float] = []
        for i in range(args.repeats):
            t = time.perf_counter()
            run_job(client, scan.units, models, str(tmp / f"plain{i}.parquet"), opts=opts)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            out = tmp / f"sr{i}.parquet"
            run_job(client, scan.units, models, str(out), opts=opts, outputs=OutputOptions(sr_dir=str(tmp / f"sr{i}")))
            with_sr.append(time.perf_counter() - t)
            r = read_results(out, ["unit_key", "load_ms", "infer_ms", "output_ms", "output_error"]).to_pydict()
            per = {k: (lo + inf, o_ms, err) for k, lo, inf, o_ms, err in zip(r["unit_key"], r["load_ms"],
                                                                          r["infer_ms"], r["output_ms"],
                                                                          r["output_error"])}
            assert all(err is None for _, _, err in per.values())
            sr_ms += [o_ms for _, o_ms, _ in per.values()]
            work_ms += [w for w, _, _ in per.values()]
        p, w = statistics.median(plain), statistics.median(with_sr)
        print(f"local job (234 slices): rows only {p:.2f} s, with --sr {w:.2f} s: {w / p:.2f}x")
        print(f"  SR per series {statistics.median(sr_ms):.0f} ms (median) against load + inference "
              f"{statistics.median(work_ms):.0f} ms: {statistics.median(sr_ms) / statistics.median(work_ms):.2f}x")
    finally:
        client.close()
        cluster.close()
        o.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
