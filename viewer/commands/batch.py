"""``python -m viewer batch infer|evaluate``: run models over an archive on Dask; score the results.

``batch infer SOURCE... --model ID [--model ID2] --out RESULTS.parquet [--scheduler ADDRESS | --workers N]
[--resume] [--force] [--json] [--csv FILE] [--sr FOLDER] [--dicom-out FOLDER] [--send NODE]``: every series under the SOURCEs (folders, files, DICOMDIRs,
text files listing paths, PACS nodes with ``--query``) through every model, one Dask task per series, on a local cluster of worker
processes (default: one per core) or on the cluster at ``--scheduler``. Results go to the Parquet folder
``--out`` chunk by chunk (see :mod:`viewer.batch.results`). A live progress bar (rich) on a terminal; a
summary at the end (``--json``: as JSON on stdout). ``--sr``/``--dicom-out``/``--send``: DICOM per series,
written by the tasks and sent as series finish (:mod:`viewer.batch.outputs`).

``batch evaluate RESULTS --labels LABELS.csv [--model ID] [--json]``: accuracy, AUC, confusion matrix, per
class, and the disagreements (see :mod:`viewer.batch.evaluate`).

Exit status of ``infer``: 0 every series done (failures recorded are not errors of the job: see the
summary), 1 the job could not run (no model, no series, no scheduler, results folder already used), 130
interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from viewer.commands.evaluate import _text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="batch_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("infer", help="run models over every series of an archive (Dask)",
                       description="Run models over every series of an archive on a Dask cluster; "
                       "one Parquet row per slice and model.")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="a folder, DICOM file, DICOMDIR, a text file listing paths (one per line), or a PACS node "
                   "(dimse://AE@host:port, DICOMweb URL) with --query")
    p.add_argument("--model", action="append", required=True, metavar="ID", help="model id (repeatable)")
    p.add_argument("--out", required=True, metavar="RESULTS.parquet",
                   help="results folder of Parquet part files (created; see --resume)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="use the Dask cluster at ADDRESS (tcp://host:8786) instead of a local one")
    where.add_argument("--workers", type=int, metavar="N", help="local cluster: N worker processes (default: cores)")
    p.add_argument("--query", default="", metavar="'KEY=VALUE ...'",
                   help="with a PACS SOURCE (dimse://AE@host:port or a DICOMweb URL): the series to retrieve and "
                   "run, e.g. 'modality=CT study-date=20240101-20241231' (keys: modality, study-date, patient-id, "
                   "patient-name, accession, description, study-uid)")
    p.add_argument("--ae", default="DICOMVIEWER", help="our AE title towards a PACS (default DICOMVIEWER)")
    p.add_argument("--port", type=int, default=11112, help="our C-MOVE destination port (default 11112)")
    p.add_argument("--retrieve", choices=("auto", "get", "move"), default=None,
                   help="with a DIMSE PACS SOURCE: C-GET, C-MOVE (the PACS sends to our AE at --port), or auto: "
                   "C-GET when offered, else C-MOVE (default: the node's setting, auto)")
    p.add_argument("--into", metavar="FOLDER",
                   help="with a PACS SOURCE: the store the series are retrieved into (default: the local store, "
                   "as pacs get); series already there are not fetched again")
    p.add_argument("--resume", action="store_true", help="continue a job: skip series already in --out")
    p.add_argument("--force", action="store_true",
                   help="run a model on series outside its declared scope (recorded in every row)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--csv", metavar="FILE", help="also write every result row to this CSV file")
    p.add_argument("--sr", metavar="FOLDER",
                   help="classifiers: write one DICOM SR of the findings per series and model into FOLDER "
                   "(<model>/<series>.dcm; the decided class of every image, referencing the source series)")
    p.add_argument("--dicom-out", metavar="FOLDER",
                   help="image-to-image models (ct-denoise): write each output as a derived DICOM series into "
                   "FOLDER (<model>/<series>/; new Series UID, ImageType DERIVED, lossless), as infer --out does")
    p.add_argument("--send", metavar="NODE",
                   help="send each series' SR / derived series to this PACS node as it is written "
                   "(dimse://AE@host:port, a DICOMweb URL or a saved node's name); a failed send is recorded "
                   "in that series' rows and the job goes on")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="where workers run the models (default auto: CUDA when the worker has it)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="ONNX Runtime threads per session (default 1: the cluster parallelises over series)")
    p.add_argument("--batch", type=int, default=None, metavar="N", help="images per network run")
    p.add_argument("--models-dir", action="append", metavar="DIR",
                   help="look for models here (repeatable; default: models/ and the user models folder)")
    p.add_argument("--chunk-rows", type=int, default=20000, metavar="N",
                   help="rows per results part file (also written every 10 s); a killed job loses at most one chunk")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (also off when not on a terminal)")

    e = sub.add_parser("evaluate", help="score batch results against labels",
                       description="Accuracy, AUC, confusion matrix, per class and disagreements of batch "
                       "results against a labels CSV.")
    e.add_argument("results", metavar="RESULTS", help="a batch results folder (or one of its Parquet files)")
    e.add_argument("--labels", required=True, metavar="LABELS.csv",
                   help="CSV with a label column and sop_instance_uid (per slice) or series_instance_uid "
                   "(per series) columns; the viewer's label export works as is")
    e.add_argument("--model", metavar="ID", help="score only this model (default: each model in the results)")
    e.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    try:
        import viewer.batch  # noqa: F401 - Dask and its stack
    except ImportError as exc:
        # The desktop build (packaging/dicom-viewer.spec) leaves the cluster stack out.
        print(f"batch: this build has no batch support ({exc}); run it from a Python install of the package "
              "(pip install dicom-viewer)", file=sys.stderr)
        return 2
    if args.batch_command == "evaluate":
        return _evaluate(args)
    return _infer(args)


def _infer(args: argparse.Namespace) -> int:
    from viewer.ai.errors import ModelError
    from viewer.batch.job import connect, local_cluster, run_job
    from viewer.batch.models import RunOptions, resolve_models
    from viewer.batch.pacs_feed import PacsFeed
    from viewer.batch.sources import PACS_PREFIXES, PacsOptions, Scan, SourceError, scan_sources

    err = sys.stderr
    try:
        manifests = resolve_models(args.model, args.models_dir)
        outputs = _outputs(args, manifests)
        if isinstance(outputs, str):
            print(f"batch infer: {outputs}", file=err)
            return 1
        # PACS sources stream into the job (retrieved while it runs); local ones are scanned now
        remote = [s for s in args.sources if s.lower().startswith(PACS_PREFIXES)]
        local = [s for s in args.sources if s not in remote]
        scan = scan_sources(local) if local else Scan([], [], 0, 0, [])
        pacs = PacsOptions(args.query, args.ae, args.port, args.into, args.retrieve)
        feed = PacsFeed(remote, pacs) if remote else None
        if feed is not None:
            feed.find()
    except (ModelError, SourceError) as exc:
        print(f"batch infer: {exc}", file=err)
        return 1
    if not scan.units and not (feed is not None and feed.series):
        print(f"batch infer: no loadable DICOM series in {', '.join(args.sources)}"
              + (f" ({len(scan.bad_files)} file(s) not loadable; first: {scan.bad_files[0][0]}: {scan.bad_files[0][1]})"
                 if scan.bad_files else ""), file=err)
        return 1
    if scan.bad_files:
        path, reason = scan.bad_files[0]
        print(f"{len(scan.bad_files)} file(s) are not loadable DICOM images and were left out (first: {path}: "
              f"{reason})", file=err)
    for m in manifests:
        if m.applies_to.scope == "roi":
            print(f"note: {m.id} is trained on regions (scope roi); whole slices are classified", file=err)
    opts = RunOptions(device=args.device, threads=args.threads, batch_size=args.batch, force=args.force)
    cluster = None
    try:
        if args.scheduler:
            client = connect(args.scheduler)
        else:
            cluster = local_cluster(args.workers)
            client = cluster.get_client()
    except (OSError, TimeoutError) as exc:
        print(f"batch infer: cannot reach the Dask scheduler {args.scheduler}: {exc}", file=err)
        return 1
    try:
        link = str(getattr(client, "dashboard_link", "") or "")
        if link:
            print(f"Dask dashboard: {link}", file=err)
        bar = _progress_bar(not args.no_progress and err.isatty())
        try:
            summary = run_job(client, scan.units, manifests, args.out, opts=opts, resume=args.resume,
                              on_progress=bar.update if bar else None, chunk_rows=max(1, args.chunk_rows),
                              outputs=outputs, feed=feed)
        finally:
            if bar:
                bar.stop()
    except ValueError as exc:
        print(f"batch infer: {exc}", file=err)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: every finished chunk is in {args.out}; continue with --resume", file=err)
        return 130
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if args.csv:
        from viewer.batch.export import write_csv
        from viewer.batch.results import read_results

        write_csv(read_results(args.out), args.csv)
    if feed is not None:
        scan.bad_files += feed.bad
    doc = _summary_doc(summary, scan, manifests, args)
    if feed is not None:
        doc["retrieved"] = [r.to_json() for r in feed.retrieved]
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print_summary(doc)
    return 0


class _Bar:
    """rich's progress bar for a job: series done/total, slices/s, failures, elapsed and ETA."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self._progress = Progress(TextColumn("series"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[rate]:.0f} slices/s"),
                                  TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                                  TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True))
        self._task: Any = None
        self._progress.start()

    def update(self, p: Any) -> None:
        total = p.series_total - p.series_skipped
        if self._task is None:
            self._task = self._progress.add_task("batch", total=total, rate=0.0, failed=0)
        # the total grows while PACS series are found to split into several stacks
        self._progress.update(self._task, completed=p.series_done, total=total, rate=p.slices_per_s,
                              failed=p.series_failed)

    def stop(self) -> None:
        self._progress.stop()


def _progress_bar(enabled: bool) -> _Bar | None:
    return _Bar() if enabled else None


def _outputs(args: argparse.Namespace, manifests: Any) -> Any:
    """The job's OutputOptions (None: rows only), or the sentence why the flags cannot be used."""
    from viewer.batch.outputs import IMAGE_TO_IMAGE, OutputOptions

    derivers = [m.id for m in manifests if m.task == IMAGE_TO_IMAGE]
    if derivers and not args.dicom_out:
        return (f"{', '.join(derivers)}: an image-to-image model writes a derived series per series: give "
                "--dicom-out FOLDER")
    if args.sr and len(derivers) == len(manifests):
        return "--sr writes a classifier's findings; the models given are all image-to-image (use --dicom-out)"
    if args.send and not (args.sr or args.dicom_out):
        return "--send sends the SRs (--sr FOLDER) or derived series (--dicom-out FOLDER): give one of them"
    if args.send:
        from viewer.io.pacs import PacsError, parse_node

        try:
            parse_node(args.send)
        except PacsError as exc:
            return f"--send {args.send}: {exc}"
    if not (args.sr or args.dicom_out):
        return None
    import os

    return OutputOptions(sr_dir=os.path.abspath(args.sr) if args.sr else None,
                         dicom_dir=os.path.abspath(args.dicom_out) if args.dicom_out else None, send=args.send,
                         ae_title=args.ae)


def _outputs_doc(out: str) -> dict[str, Any]:
    """Counts of the DICOM outputs recorded in the results folder, and each one not written or not sent."""
    from viewer.batch.results import read_results

    t = read_results(out, ["unit_key", "series_instance_uid", "model_id", "output_kind", "output_path",
                           "output_error", "send_status", "send_error"]).to_pydict()
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for i, (key, model, kind) in enumerate(zip(t["unit_key"], t["model_id"], t["output_kind"])):
        if kind:
            seen[(key, model)] = {c: t[c][i] for c in t}
    rows = list(seen.values())
    return {"written": sum(1 for r in rows if r["output_path"] and not r["output_error"]),
            "sent": sum(1 for r in rows if r["send_status"] == "sent"),
            "not_written": [{"series_instance_uid": r["series_instance_uid"], "model": r["model_id"],
                             "reason": r["output_error"]} for r in rows if r["output_error"]],
            "not_sent": [{"series_instance_uid": r["series_instance_uid"], "model": r["model_id"],
                          "path": r["output_path"], "reason": r["send_error"]}
                         for r in rows if r["send_status"] == "failed"]}


def _summary_doc(summary: Any, scan: Any, manifests: Any, args: argparse.Namespace) -> dict[str, Any]:
    p = summary.progress
    extra = {"outputs": _outputs_doc(summary.out)} if (args.sr or args.dicom_out) else {}
    return {
        "out": summary.out, "models": [{"id": m.id, "version": m.version, "sha256": m.sha256} for m in manifests],
        "forced": bool(args.force), "scheduler": args.scheduler or "local", "workers": summary.workers,
        "threads": summary.threads, "dashboard": summary.dashboard,
        "series_total": p.series_total, "series_done": p.series_done, "series_skipped": p.series_skipped,
        "series_failed": p.series_failed, "slices": p.slices, "seconds": round(p.elapsed_s, 3),
        "slices_per_s": round(p.slices_per_s, 1), "rows_written": summary.rows_written,
        "parts_written": summary.parts_written, "engine_setup_s": summary.engine_setup_s,
        "failures": summary.failures,
        "files_not_loadable": [{"path": path, "reason": reason} for path, reason in scan.bad_files],
        **extra,
    }


def _print_summary(doc: dict[str, Any]) -> None:
    print(f"{doc['series_done']} series done ({doc['series_skipped']} done before), {doc['series_failed']} failed, "
          f"{doc['slices']} slices in {doc['seconds']:.1f} s ({doc['slices_per_s']:.0f} slices/s) on "
          f"{doc['workers']} worker(s); {doc['rows_written']} rows written to {doc['out']}")
    # Grouped by reason: a cohort's 5,000 MR series that a CT model skips are one line, not 5,000.
    groups: dict[str, list[dict[str, str]]] = {}
    for f in doc["failures"]:
        groups.setdefault(f"{f['status']}: {f['reason']}", []).append(f)
    for reason, fs in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:15]:
        first = fs[0]
        where = f"{first['series_instance_uid'] or '(no UID)'} in {first['folder']}"
        print(f"  {len(fs)} series, {reason} (e.g. {where})" if len(fs) > 1 else f"  {reason} ({where})")
    if len(groups) > 15:
        print(f"  ... and {len(groups) - 15} other reasons (--json lists every series; the results hold each reason)")
    if "outputs" in doc:
        o = doc["outputs"]
        print(f"DICOM outputs: {o['written']} written, {o['sent']} sent"
              + (f", {len(o['not_written'])} not written (first: {o['not_written'][0]['reason']})"
                 if o["not_written"] else "")
              + (f", {len(o['not_sent'])} not sent (first: {o['not_sent'][0]['reason']}; send them later with "
                 "`pacs send NODE FOLDER`)" if o["not_sent"] else ""))
    if doc["files_not_loadable"]:
        print(f"{len(doc['files_not_loadable'])} file(s) were not loadable DICOM images (--json lists them)")


def _evaluate(args: argparse.Namespace) -> int:
    from viewer.batch.evaluate import evaluate_results

    try:
        reports = evaluate_results(args.results, args.labels, model=args.model)
    except (FileNotFoundError, ValueError) as exc:
        print(f"batch evaluate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        json.dump({"results": args.results, "labels": args.labels, "reports": reports}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print("\n\n".join(text_report(r) for r in reports))
    return 0


def text_report(r: dict[str, Any]) -> str:
    """Plain text: ``evaluate``'s report, the label counts and the disagreements."""
    lines = [_text(r | {"dataset": r["labels"], "split": "labels", "provider": "batch results"}),
             "", f"{r['slice_labels']} slice and {r['series_labels']} series labels matched; "
             f"{r['skipped_labels']} of classes the model lacks, {r['unmatched']} of images not in the results",
             f"disagreements ({len(r['disagreements'])}):"]
    for d in r["disagreements"]:
        where = (f"slice {d['slice']} sop={d['sop_instance_uid']} frame={d['frame']}" if d["sop_instance_uid"]
                 else "series")
        lines.append(f"  {d['series_instance_uid']} {where}: label {d['label']}, model {d['predicted']} "
                     f"({d['probability']:.3f})")
    return "\n".join(lines)
