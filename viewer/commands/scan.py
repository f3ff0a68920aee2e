"""``python -m viewer scan PATH [PATH ...] [--json] [--no-index] [--index FILE]``.

Prints patients -> studies -> series -> stacks with counts, modality, description, split reasons,
warnings, and the files that are not loadable (bad ones with the reason). Each stack's ``[N]`` is its
number counted from 1 in the scan's order: the N of ``--series N`` (``info``, ``screenshot``, ``infer``,
``export``) and of the viewer's browser. Exit status 0 when it scanned (bad files included), 2 when a PATH
does not exist.

JSON schema (``--json``), one object::

    {
      "roots": [str],                  # absolute paths scanned
      "files": int,                    # files found
      "headers_read": int,             # files parsed now (the rest came from the index)
      "cancelled": bool,
      "index": str | null,             # SQLite index used
      "patients": [{
        "patient_id": str, "patient_name": str,
        "studies": [{
          "study_uid": str, "study_date": str (YYYYMMDD), "study_description": str,
          "series": [{
            "series_uid": str, "series_number": str, "modality": str, "description": str,
            "files": int,              # files in all stacks of the series
            "stacks": [int]            # indices into the top-level "stacks"
          }]
        }]
      }],
      "stacks": [{                     # loadable stacks, in the order of find_stacks
        "index": int, "number": int,   # 0-based position; number = index + 1, the N of `--series N`
        "series_uid": str, "series_number": str, "modality": str, "description": str,
        "files": int, "frames": int, "rows": int, "columns": int, "image_type": str,
        "split_reason": str | null, "warnings": [str], "first_file": str,
        "split_label": str | null,     # short text telling a split stack from its siblings
        "volumes": int                 # volumes of a 4D stack as the scan sees them (1: 3D)
      }],
      "non_image": [{"path": str, "reason": str}],   # DICOM without pixel data (SR, RT, DICOMDIR ...)
      "bad_files": [{"path": str, "reason": str}],   # not loadable, with the reason
      "warnings": [str]
    }
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="folder, DICOM file(s) or a DICOMDIR")
    parser.add_argument("--json", action="store_true", help="print JSON (schema in viewer/commands/scan.py)")
    parser.add_argument("--no-index", action="store_true", help="read every header; do not use the index")
    parser.add_argument("--index", metavar="FILE", help="SQLite index file (default: $VIEWER_CACHE_DIR/"
                        "index.sqlite or ~/.cache/dicom-viewer/index.sqlite)")


def run(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not os.path.lexists(p)]
    if missing:
        for p in missing:
            print(f"scan: {p}: no such file or folder", file=sys.stderr)
        return 2
    from viewer.io.index import default_index_path
    from viewer.io.series import find_stacks

    if args.index and not args.no_index and not os.path.isdir(os.path.dirname(os.path.abspath(args.index))):
        # A typo in --index must not create folders silently.
        print(f"scan: --index {args.index}: the folder {os.path.dirname(os.path.abspath(args.index))} does not "
              "exist (create it first)", file=sys.stderr)
        return 2
    index: Any = None if args.no_index else (args.index or True)
    index_path = None if index is None else str(args.index or default_index_path())
    try:
        result = find_stacks(args.paths, index=index)
    except OSError as exc:  # e.g. the cache folder is not writable: scan without the index
        print(f"scan: index unavailable ({exc}); scanning without it", file=sys.stderr)
        result, index_path = find_stacks(args.paths), None
    if args.json:
        print(json.dumps(to_json(result, args.paths, index_path), indent=1))
    else:
        print_tree(result)
    return 0


def to_json(result: Any, roots: list[str], index_path: str | None) -> dict[str, Any]:
    """The ``--json`` document (schema in the module docstring)."""
    return {
        "roots": [os.path.abspath(r) for r in roots],
        "files": result.files_total,
        "headers_read": result.headers_read,
        "cancelled": result.cancelled,
        "index": index_path,
        "patients": result.tree(),
        "stacks": [{
            "index": i, "number": i + 1, "series_uid": s.series_uid, "series_number": s.series_number, "modality": s.modality,
            "description": s.description, "files": len(s.files), "frames": s.frames, "rows": s.rows,
            "columns": s.columns, "image_type": s.image_type, "split_reason": s.split_reason,
            "split_label": s.split_label, "volumes": s.volumes,
            "warnings": list(s.warnings), "first_file": s.files[0] if s.files else "",
        } for i, s in enumerate(result.stacks)],
        "non_image": [{"path": p, "reason": r} for p, r in result.non_image],
        "bad_files": [{"path": p, "reason": r} for p, r in result.bad_files],
        "warnings": list(result.warnings),
    }


def _date(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else (d or "no date")


def print_tree(result: Any, out: Any = None) -> None:
    """The readable tree: one line per patient, study, series and (when split) stack. Every line is
    passed through :func:`viewer.core.text.printable`: DICOM strings and file names come from files,
    and escape codes in them must not reach the terminal."""
    from viewer.core.text import printable

    out = out or sys.stdout

    def w(line: str) -> None:
        out.write(printable(line[:-1]) + "\n" if line.endswith("\n") else printable(line))
    stacks = result.stacks
    for p in result.tree():
        name = p["patient_name"].replace("^", " ").strip() or "(no name)"
        w(f"Patient {name} [{p['patient_id'] or 'no id'}]\n")
        for st in p["studies"]:
            w(f"  Study {_date(st['study_date'])} {st['study_description'] or '(no description)'}"
              f"  uid={st['study_uid'] or '(none)'}\n")
            for se in st["series"]:
                n = len(se["stacks"])
                num = f"#{se['series_number']} " if se["series_number"] else ""
                w(f"    Series {num}{se['modality'] or '?'} {se['description'] or '(no description)'}: "
                  f"{se['files']} files" + (f", {n} stacks" if n > 1 else "")
                  + f"  uid={se['series_uid'] or '(none)'}\n")
                for i in se["stacks"]:
                    s = stacks[i]
                    frames = f", {s.frames} frames" if s.frames != len(s.files) else ""
                    pre = "      "
                    if n > 1:
                        w(f"{pre}[{i + 1}] stack" + (f" [{s.split_label}]" if s.split_label else "")
                          + f": {len(s.files)} files{frames}, {s.columns}x{s.rows}"
                          + (f"  ({s.split_reason})" if s.split_reason else "") + "\n")
                        pre += "  "
                    else:
                        w(f"{pre}[{i + 1}] {s.columns}x{s.rows}{frames}"
                          + (f"  [{s.split_label}]" if s.split_label else "")
                          + (f"  ({s.split_reason})" if s.split_reason else "") + "\n")
                    for warn in s.warnings:
                        w(f"{pre}warning: {warn}\n")
    total = len(stacks)
    w(f"{result.files_total} files, {total} loadable stack{'s' if total != 1 else ''}, "
      f"{len(result.non_image)} without pixel data, {len(result.bad_files)} not loadable"
      + (" (cancelled)" if result.cancelled else "") + "\n")
    if result.non_image:
        w("Without pixel data (not loadable, not errors):\n")
        for path, reason in result.non_image:
            w(f"  {path}: {reason}\n")
    if result.bad_files:
        w("Not loadable:\n")
        for path, reason in result.bad_files:
            w(f"  {path}: {reason}\n")
    for warn in result.warnings:
        w(f"warning: {warn}\n")
