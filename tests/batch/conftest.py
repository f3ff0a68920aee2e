"""Shared by the batch tests: the CT folders, the single-process ``infer --json`` reference, row checks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from viewer.cli import main

MODEL = "organ-ct"
CT = ("pancreas-ct-philips-134", "crc-chest-ct-ge-100", "totalseg-ct-j2k-20")


@pytest.fixture(scope="session")
def ct_dirs(data_dir: Path) -> list[Path]:
    return [data_dir / "ct" / name for name in CT]


@pytest.fixture(scope="session")
def reference(ct_dirs: list[Path]) -> dict[tuple[str, int], dict[str, float]]:
    """(series folder, slice) -> {class: probability} from single-process ``infer --json`` of each CT series
    (keyed by slice, not SOP Instance UID: the J2K series' UIDs are empty)."""
    import contextlib
    import io

    ref: dict[tuple[str, int], dict[str, float]] = {}
    for d in ct_dirs:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["infer", str(d), "--model", MODEL, "--json", "--device", "cpu"]) == 0
        (series,) = json.loads(buf.getvalue())["series"]
        for p in series["predictions"]:
            ref[(str(d), p["slice"])] = p["probabilities"]
    assert len(ref) == 254
    return ref


def ok_rows(out: Path) -> Any:
    """The ``ok`` rows of a results folder (a pyarrow Table)."""
    import pyarrow.compute as pc

    from viewer.batch.results import read_results

    t = read_results(out)
    return t.filter(pc.equal(t.column("status"), "ok"))


def assert_matches_reference(rows: Any, reference: dict[tuple[str, int], dict[str, float]]) -> None:
    d = rows.select(["folder", "slice", "class_names", "probabilities", "label"]).to_pydict()
    series = sorted({k[0] for k in reference})
    keys = [(next(s for s in series if f.startswith(s)), k) for f, k in zip(d["folder"], d["slice"])]
    assert max(Counter(keys).values()) == 1, "a slice appears twice"
    assert set(keys) == set(reference)
    for key, names, probs, label in zip(keys, d["class_names"], d["probabilities"], d["label"]):
        want = reference[key]
        np.testing.assert_allclose(probs, [want[n] for n in names], atol=1e-5)
        assert label == max(want, key=lambda n: want[n])
