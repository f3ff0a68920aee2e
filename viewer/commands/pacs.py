"""``python -m viewer pacs echo|find|get|send|listen|nodes``: the viewer as a DICOM network node.

NODE is ``dimse://CALLED_AE@host:port`` (``dimses://`` with TLS), a DICOMweb base URL, or the name of a
saved node (``pacs nodes add``). Every subcommand takes ``--ae`` (our AE title, default DICOMVIEWER) and
``--port`` (where our storage SCP listens for C-MOVE, default 11112), and the TLS options: ``--tls-ca``,
``--tls-cert``, ``--tls-key``, ``--tls-no-verify`` (any of them means DICOM TLS towards a DIMSE node;
``listen --tls-cert/--tls-key [--tls-ca]`` accepts TLS only). Exit status: 0 done, 1 the network
operation failed (the message says why), 2 bad arguments, 130 interrupted.

``get --json`` prints::

    {"node": str, "into": str, "ok": bool, "cancelled": bool, "methods": [str],
     "series": [{"study_uid", "series_uid", "folder", "method": "C-GET"|"C-MOVE"|"WADO-RS"|...,
                 "total", "stored", "skipped", "bytes", "seconds", "mb_per_s", "complete",
                 "files": [str], "problems": [str], "error": str | null}]}

``find --json`` prints one JSON array of matches (viewer/io/pacs/query.py ``Match``); without --json one
line per match is printed as it arrives.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Any

SUBCOMMANDS = ("echo", "find", "get", "send", "listen", "nodes")


def _common(p: argparse.ArgumentParser, listen: bool = False) -> None:
    from viewer.io.pacs.nodes import DEFAULT_AE, DEFAULT_PORT

    p.add_argument("--ae", default=DEFAULT_AE, help=f"our AE title (default {DEFAULT_AE})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port of our storage SCP for C-MOVE / listen (default {DEFAULT_PORT})")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait for the peer (default 30)")
    _tls(p, listen=listen)


def _tls(p: argparse.ArgumentParser, listen: bool = False) -> None:
    if listen:
        p.add_argument("--tls-cert", default="", metavar="PEM", help="accept DICOM TLS only, with this certificate")
        p.add_argument("--tls-key", default="", metavar="PEM", help="the certificate's private key")
        p.add_argument("--tls-ca", default="", metavar="PEM",
                       help="require client certificates signed by this CA (with --tls-cert)")
        return
    p.add_argument("--tls-ca", default="", metavar="PEM",
                   help="DIMSE over TLS, the node's certificate checked against this CA (dimses:// uses the system's)")
    p.add_argument("--tls-cert", default="", metavar="PEM", help="our client certificate (TLS; some PACS require one)")
    p.add_argument("--tls-key", default="", metavar="PEM", help="our client certificate's private key")
    p.add_argument("--tls-no-verify", action="store_true",
                   help="TLS without checking the node's certificate (encrypts, but anyone can pose as the PACS)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
    p = sub.add_parser("echo", help="check a node (C-ECHO or a QIDO-RS probe)")
    p.add_argument("node", metavar="NODE", help="the remote node: dimse://CALLED_AE@host:port, a DICOMweb base URL, or a saved node's name")
    _common(p)
    p = sub.add_parser("find", help="query studies or series")
    p.add_argument("node", metavar="NODE", help="the remote node: dimse://CALLED_AE@host:port, a DICOMweb base URL, or a saved node's name")
    p.add_argument("--patient-id", default="", help="PatientID (wildcards allowed)")
    p.add_argument("--patient-name", default="", help="wildcards * and ? allowed")
    p.add_argument("--study-date", default="", help="YYYYMMDD, YYYYMMDD-YYYYMMDD, YYYYMMDD- or -YYYYMMDD")
    p.add_argument("--modality", default="", help="modality in the study (CT, MR, ...)")
    p.add_argument("--accession", default="", help="AccessionNumber")
    p.add_argument("--description", default="", help="study (or series) description, wildcards allowed")
    p.add_argument("--study", default="", metavar="UID", help="StudyInstanceUID (with --level series: the series of this study)")
    p.add_argument("--level", choices=("study", "series"), default="study", help="query studies (default) or series")
    p.add_argument("--json", action="store_true", help="print JSON")
    _common(p)
    p = sub.add_parser("get", help="retrieve a study or series into the local store (or --into)")
    p.add_argument("node", metavar="NODE", help="the remote node: dimse://CALLED_AE@host:port, a DICOMweb base URL, or a saved node's name")
    p.add_argument("--study", required=True, metavar="UID", help="StudyInstanceUID to retrieve")
    p.add_argument("--series", action="append", metavar="UID", help="only this series (repeatable)")
    p.add_argument("--into", metavar="FOLDER", help="store folder (default: the local store)")
    p.add_argument("--method", choices=("auto", "get", "move"), default=None,
                   help="DIMSE retrieve: auto = C-GET when offered, else C-MOVE (default: the node's setting)")
    p.add_argument("--workers", type=int, default=2, help="series retrieved at the same time (default 2)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _common(p)
    p = sub.add_parser("send", help="C-STORE / STOW-RS files or folders (SEG, SR exports included)")
    p.add_argument("node", metavar="NODE", help="the remote node: dimse://CALLED_AE@host:port, a DICOMweb base URL, or a saved node's name")
    p.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files or folders to send")
    p.add_argument("--json", action="store_true", help="print JSON")
    _common(p)
    p = sub.add_parser("listen", help="run a storage SCP: receive what is pushed, store and index it")
    p.add_argument("--into", metavar="FOLDER", help="store folder (default: the local store)")
    p.add_argument("--bind", default="", help="address to listen on (default: all)")
    _common(p, listen=True)
    p = sub.add_parser("nodes", help="list, add or remove saved nodes")
    p.add_argument("action", choices=("list", "add", "remove"), nargs="?", default="list", help="list (default), add or remove a saved node")
    p.add_argument("name", nargs="?", help="the saved node's name")
    p.add_argument("url", nargs="?", help="dimse://CALLED_AE@host:port or a DICOMweb URL")
    p.add_argument("--retrieve", choices=("auto", "get", "move"), default="auto", help="C-GET, C-MOVE, or auto: C-GET when offered, else C-MOVE")
    p.add_argument("--calling-ae", default="", help="our AE title towards this node")
    p.add_argument("--auth", choices=("", "basic", "bearer"), default="", help="DICOMweb authentication")
    p.add_argument("--username", default="", help="user name for basic authentication")
    p.add_argument("--password", default="", help="or $VIEWER_PACS_PASSWORD")
    p.add_argument("--token", default="", help="or $VIEWER_PACS_TOKEN")
    _tls(p)
    p.add_argument("--json", action="store_true", help="print JSON")


def _err(msg: str) -> None:
    print(f"pacs: {msg}", file=sys.stderr)


def _node(args: argparse.Namespace) -> Any:
    import dataclasses

    from viewer.io.pacs.nodes import parse_node, with_tls

    node = with_tls(parse_node(args.node), ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key,
                    verify=not args.tls_no_verify)
    if args.timeout:
        node = dataclasses.replace(node, timeout_s=args.timeout)
    return node


def run(args: argparse.Namespace) -> int:
    from viewer.io.pacs.errors import PacsCancelled, PacsError

    handler = {"echo": _echo, "find": _find, "get": _get, "send": _send, "listen": _listen,
               "nodes": _nodes}[args.pacs_command]
    try:
        return handler(args)
    except PacsCancelled as exc:
        _err(str(exc))
        return 130
    except PacsError as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        _err("interrupted; run the same get again to fetch only what is missing")
        return 130


def _echo(args: argparse.Namespace) -> int:
    from viewer.io.pacs import dimse, web
    from viewer.io.pacs.nodes import DimseNode, node_label

    node = _node(args)
    rtt = dimse.echo(node, args.ae) if isinstance(node, DimseNode) else web.echo(node)
    what = "C-ECHO" if isinstance(node, DimseNode) else "QIDO-RS probe"
    print(f"{node_label(node)}: {what} ok in {rtt * 1000:.0f} ms")
    return 0


def _find(args: argparse.Namespace) -> int:
    from viewer.io.pacs import dimse, web
    from viewer.io.pacs.nodes import DimseNode
    from viewer.io.pacs.query import Query

    node = _node(args)
    q = Query(level=args.level, patient_id=args.patient_id, patient_name=args.patient_name,
              study_date=args.study_date, modality=args.modality, accession=args.accession,
              description=args.description, study_uid=args.study)
    matches = dimse.find(node, q, args.ae) if isinstance(node, DimseNode) else web.find(node, q)
    if args.json:
        print(json.dumps([m.to_json() for m in matches], indent=1))
        return 0
    n = 0
    for m in matches:  # printed as they arrive
        n += 1
        if m.level == "study":
            print(f"{m.study_date or '--------'}  {m.patient_name.replace('^', ' ') or '(no name)'} "
                  f"[{m.patient_id}]  {m.modalities}  {m.study_description or '(no description)'}  "
                  f"acc={m.accession or '-'}  series={m.study_series}  instances={m.study_instances}  "
                  f"uid={m.study_uid}", flush=True)
        else:
            print(f"  #{m.series_number or '-'} {m.modality} {m.series_description or '(no description)'}  "
                  f"instances={m.series_instances}  uid={m.series_uid}  study={m.study_uid}", flush=True)
    print(f"{n} match{'es' if n != 1 else ''}", file=sys.stderr)
    return 0


def _get(args: argparse.Namespace) -> int:
    from viewer.io.pacs.retrieve import SeriesProgress, retrieve
    from viewer.io.pacs.store import LocalStore

    node = _node(args)
    store = LocalStore(args.into) if args.into else LocalStore()
    lock = threading.Lock()
    last: dict[str, int] = {}

    def progress(p: SeriesProgress) -> None:
        if args.json:
            return
        step = max(1, p.total // 10) if p.total > 0 else 10
        with lock:  # a line per series every 10 % (10 instances while the total is not known), and at the end
            if p.done == p.total or p.done - last.get(p.series_uid, -step) >= step:
                last[p.series_uid] = p.done
                total = p.total if p.total >= 0 else "?"
                print(f"  series {p.series_uid}: {p.done}/{total} instances, {p.mb_per_s:.1f} MB/s",
                      file=sys.stderr, flush=True)

    result = retrieve(node, args.study, args.series, ae_title=args.ae, port=args.port, store=store,
                      method=args.method, workers=args.workers, progress=progress)
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        for s in result.series:
            state = "complete" if s.complete else "INCOMPLETE"
            print(f"series {s.series_uid}: {state} by {s.method}: {s.stored} stored, {s.skipped} already there, "
                  f"of {s.total}; {s.bytes / 1e6:.1f} MB in {s.seconds:.1f} s -> {s.folder}")
            for problem in s.problems:
                print(f"  problem: {problem}")
            if s.error:
                print(f"  error: {s.error}")
    return 0 if result.ok else 1


def _expand(paths: list[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".")]
        else:
            out.append(p)
    return out


def _send(args: argparse.Namespace) -> int:
    from viewer.io.pacs import dimse, web
    from viewer.io.pacs.errors import PacsError
    from viewer.io.pacs.nodes import DimseNode, node_label

    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        raise PacsError(f"no such file or folder: {', '.join(missing)}")
    node = _node(args)
    files = _expand(args.paths)
    if isinstance(node, DimseNode):
        sent, problems = dimse.send_files(node, args.ae, files)
    else:
        sent, problems = web.send_files(node, files)
    if args.json:
        print(json.dumps({"node": node.url, "files": len(files), "sent": sent, "problems": problems}, indent=1))
    else:
        print(f"{sent} of {len(files)} files stored at {node_label(node)}")
        for problem in problems:
            print(f"  problem: {problem}")
    return 0 if sent == len(files) else 1


def _listen(args: argparse.Namespace) -> int:
    import signal

    from viewer.io.pacs.dimse import StorageServer, server_tls_context
    from viewer.io.pacs.errors import PacsError
    from viewer.io.pacs.store import LocalStore

    store = LocalStore(args.into) if args.into else LocalStore()
    count = [0]

    def sink(data: bytes) -> None:
        path = store.store(data)
        count[0] += 1
        print(f"stored {path}", flush=True)

    if (args.tls_key or args.tls_ca) and not args.tls_cert:
        raise PacsError("listen: --tls-key and --tls-ca go with --tls-cert (our server certificate)")
    tls = server_tls_context(args.tls_cert, args.tls_key, args.tls_ca) if args.tls_cert else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with StorageServer(args.ae, args.port, bind=args.bind, default_sink=sink, timeout_s=args.timeout or 60,
                       tls=tls):
        how = "DICOM TLS" + (" (client certificates required)" if args.tls_ca else "") if tls else "plain DICOM"
        print(f"listening as {args.ae} on port {args.port} ({how}), storing into {store.root} (Ctrl+C to stop)",
              flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print(f"stopped; {count[0]} instances received", flush=True)
    return 0


def _nodes(args: argparse.Namespace) -> int:
    import dataclasses

    from viewer.io.pacs.errors import PacsError
    from viewer.io.pacs.nodes import DimseNode, load_nodes, node_to_dict, parse_node, save_nodes, with_tls

    nodes = load_nodes()
    if args.action == "list":
        if args.json:
            print(json.dumps([{k: v for k, v in node_to_dict(n).items() if k not in ("password", "token")}
                              for n in nodes], indent=1))
        for n in nodes if not args.json else []:
            print(f"{n.name}: {n.url}" + (f" (retrieve {n.retrieve})" if isinstance(n, DimseNode) else "")
                  + (" TLS WITHOUT CERTIFICATE CHECK" if isinstance(n, DimseNode) and n.tls and not n.tls_verify else ""))
        return 0
    if not args.name:
        raise PacsError(f"nodes {args.action}: a NAME is needed")
    kept = [n for n in nodes if n.name != args.name]
    if args.action == "remove":
        if len(kept) == len(nodes):
            raise PacsError(f"no saved node named {args.name!r}")
        save_nodes(kept)
        print(f"removed {args.name}")
        return 0
    if not args.url:
        raise PacsError("nodes add NAME URL: the URL is missing")
    node: Any = with_tls(parse_node(args.url, saved=[]), ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key,
                         verify=not args.tls_no_verify)
    if isinstance(node, DimseNode):
        node = dataclasses.replace(node, name=args.name, retrieve=args.retrieve, calling_ae=args.calling_ae)
    else:
        node = dataclasses.replace(node, name=args.name, auth=args.auth, username=args.username,
                                   password=args.password or os.environ.get("VIEWER_PACS_PASSWORD", ""),
                                   token=args.token or os.environ.get("VIEWER_PACS_TOKEN", ""))
    path = save_nodes([*kept, node])
    print(f"saved {args.name}: {node.url} in {path}")
    return 0
