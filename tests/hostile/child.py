"""One hostile case, run in a child process by :mod:`tests.hostile.run` (memory cap and time limit there).

``python -m tests.hostile.child CASE_DIR GOOD_JSON``: GOOD_JSON names the good series' files and the
sha256 of its loaded array and affine. The child does what a user does with the folder:

1. ``scan --json`` twice with an index (the second run reads the index back), output parsed as JSON;
2. ``info --json`` (loads every stack; every stack either loads or gives its reason), parsed as JSON;
3. ``load_series(folder)``: the default series must be the good one and load identically;
4. a DICOMDIR in ``media/`` is scanned on its own: nothing outside ``media/`` may be read.

It prints one JSON line (``{"ok": bool, "problems": [...], "stacks": n, "bad": n}``) and exits 0 when
every check held, 1 when a check failed, 3 on MemoryError; anything else escaping is a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import sys
from pathlib import Path
from typing import Any


def volume_digest(vol: Any) -> str:
    import numpy as np

    h = hashlib.sha256(np.ascontiguousarray(vol.array).tobytes())
    h.update(np.asarray(vol.affine, dtype=np.float64).tobytes())
    return h.hexdigest()


def _cli(argv: list[str]) -> tuple[int, str, str]:
    from viewer.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def check(case: Path, good: dict[str, Any], index: Path) -> dict[str, Any]:
    from viewer.io import LoadError
    from viewer.io.load import load_series

    problems: list[str] = []
    good_files = sorted(good["files"])
    scan: dict[str, Any] = {}
    for attempt in ("first", "indexed"):
        rc, out, err = _cli(["scan", str(case), "--json", "--index", str(index)])
        try:
            scan = json.loads(out)
        except ValueError:
            problems.append(f"scan ({attempt}) printed no JSON (rc {rc}): {err[-300:]}")
            continue
        rc_t, text, _ = _cli(["scan", str(case), "--index", str(index)])
        if "\x1b" in text or "\x9b" in text:
            problems.append("scan's text output carries terminal escape codes")
    stacks = scan.get("stacks", [])
    good_stacks = [s for s in stacks if s["first_file"] in good_files or
                   os.path.basename(s["first_file"]).startswith("good_")]
    if len(good_stacks) != 1 or good_stacks[0]["files"] != len(good_files):
        problems.append(f"good series not found as one stack of {len(good_files)} files: "
                        f"{[(s['files'], s['first_file']) for s in good_stacks]}")
    rc, out, err = _cli(["info", str(case), "--json"])
    try:
        info = json.loads(out)
    except ValueError:
        info = []
        problems.append(f"info printed no JSON (rc {rc}): {err[-300:]}")
    for obj in info:
        if "error" in obj:
            continue
        affine = [v for row in obj["affine"] for v in row]
        if not all(math.isfinite(v) for v in affine):
            problems.append(f"stack {obj['index']}: non-finite affine")
        if not all(math.isfinite(v) for v in obj["spacing"]) or min(obj["spacing"]) <= 0:
            if not obj["warnings"]:
                problems.append(f"stack {obj['index']}: spacing {obj['spacing']} without a warning")
        lo, hi = obj["value_range"]
        if lo is None and not obj["warnings"]:
            problems.append(f"stack {obj['index']}: no finite value and no warning")
    try:
        vol = load_series(str(case))
        files = sorted(vol.metadata.get("files") or [])
        if files and [os.path.basename(f) for f in files] != [os.path.basename(f) for f in good_files]:
            problems.append("the default series is not the good one")
        if volume_digest(vol) != good["digest"]:
            problems.append(f"default series loads differently (shape {vol.array.shape}, "
                            f"{vol.metadata.get('series_description')!r})")
    except LoadError as exc:
        problems.append(f"default series did not load: {exc}")
    media = case / "media"
    if (media / "DICOMDIR").exists():
        from viewer.io.series import find_stacks

        res = find_stacks(str(media / "DICOMDIR"))
        real = os.path.realpath(media)
        outside = [p for s in res.stacks for p in s.files
                   if os.path.commonpath([real, os.path.realpath(p)]) != real]
        if outside:
            problems.append(f"DICOMDIR led outside its media folder: {outside}")
    import resource

    peak_kib = max(_own_peak_kib(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # the decoder pool's too
    return {"ok": not problems, "problems": problems, "stacks": len(stacks),
            "bad": len(scan.get("bad_files", [])), "peak_mb": round(peak_kib / 1024, 1)}


def _own_peak_kib() -> int:
    """This process's peak resident size: VmHWM, the high-water mark of its own memory since exec. Not
    ru_maxrss: Linux carries the parent's peak across fork + exec, so a child of a large test process would
    report the parent's size."""
    import resource

    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main() -> int:
    case, good_json = Path(sys.argv[1]), Path(sys.argv[2])
    good = json.loads(good_json.read_text())
    index = Path(sys.argv[3]) if len(sys.argv) > 3 else case.parent / f".{case.name}.index.sqlite"
    try:
        result = check(case, good, index)
    except MemoryError:
        print(json.dumps({"ok": False, "problems": ["MemoryError"]}))
        return 3
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
