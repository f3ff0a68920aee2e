"""The quick hostile set (tests/hostile/generate.py QUICK): no crash, hang or runaway memory, and the good
series in the same folder still found, chosen by default and loaded identically, in every case.

The whole set: ``PYTHONPATH=$PWD python -m tests.hostile.run --full`` (see tests/hostile/run.py).
"""

from __future__ import annotations

from pathlib import Path

from tests.hostile.generate import QUICK
from tests.hostile.run import run, summary


def test_quick_hostile_set(data_dir: Path, tmp_path: Path) -> None:
    outcomes = run(data_dir, tmp_path, full=False, only=None, jobs=2, mem_mb=1536, time_s=300,
                   progress=False)
    assert {o.case.split("-", 1)[1] for o in outcomes} == QUICK  # every quick case was built and run
    bad = [(o.case, o.result, o.detail[:300]) for o in outcomes if o.result != "handled"]
    assert bad == [], summary(outcomes)
