"""Results as CSV: one row per result row, each class's probability in a ``p_<class>`` column."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from viewer.core.atomic import write_atomically

# Result columns copied as they are, in this order (then p_<class> for every class of every model).
CSV_COLUMNS = ("folder", "study_instance_uid", "series_instance_uid", "modality", "slice", "sop_instance_uid",
               "frame", "model_id", "model_version", "model_sha256", "provider", "status", "reason", "label",
               "probability", "forced", "forced_reason", "load_ms", "infer_ms", "worker", "threshold",
               "output_kind", "output_series_uid", "output_path", "output_error", "send_status", "send_error")


def write_csv(table: Any, path: str | os.PathLike[str]) -> int:
    """Write ``table`` (results, a ``pyarrow.Table``) to ``path`` atomically; returns the rows written."""
    classes: list[str] = []
    for names in class_names_by_model(table).values():
        classes.extend(n for n in names if n not in classes)
    n = 0

    def write(tmp: Path) -> None:
        nonlocal n
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow([*CSV_COLUMNS, *(f"p_{c}" for c in classes)])
            for batch in table.to_batches(max_chunksize=10000):
                for row in batch.to_pylist():
                    probs = dict(zip(row["class_names"] or [], row["probabilities"] or []))
                    w.writerow([_text(row[c]) for c in CSV_COLUMNS]
                               + [f"{probs[c]:.6f}" if c in probs else "" for c in classes])
                    n += 1

    write_atomically(path, write)
    return n


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6f}"
    return str(v)


def class_names_by_model(table: Any) -> dict[str, list[str]]:
    """model_sha256 -> the class names of its ``ok`` rows, in the order models appear."""
    import pyarrow.compute as pc

    ok = table.filter(pc.equal(table.column("status"), "ok"))
    out: dict[str, list[str]] = {}
    for sha in pc.unique(ok.column("model_sha256")).to_pylist():
        first = ok.filter(pc.equal(ok.column("model_sha256"), sha)).slice(0, 1)
        out[sha] = list(first.column("class_names")[0].as_py() or [])
    return out
