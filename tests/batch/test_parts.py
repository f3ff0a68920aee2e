"""The batch pieces without a cluster: sources, model shipping, the results writer and resume keys."""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pyarrow")


def test_sources_path_list_and_pacs_query(tmp_path: Path, data_dir: Path) -> None:
    from viewer.batch.sources import SourceError, expand_sources, parse_query, scan_sources

    ct = data_dir / "ct" / "crc-chest-ct-ge-100"
    (tmp_path / "sub").mkdir()
    listing = tmp_path / "sub" / "cohort.txt"
    # relative paths are relative to the list's folder, not to the working directory
    listing.write_text(f"# a comment\n\n  {os.path.relpath(ct, tmp_path / 'sub')}  \n{ct}\n")
    assert expand_sources([str(listing)]) == [os.path.abspath(ct)] * 2
    scan = scan_sources([str(ct)], index=str(tmp_path / "index.sqlite"))
    (unit,) = scan.units
    assert unit.key == unit.series_uid and len(unit.files) == 100 and len(unit.records) == 100
    again = scan_sources([str(ct)], index=str(tmp_path / "index.sqlite"))
    assert again.headers_read == 0 and again.units[0].key == unit.key  # the index: no header read twice
    with pytest.raises(SourceError, match="needs --query"):
        expand_sources(["dimse://ORTHANC@127.0.0.1:4242"])
    assert parse_query("modality=CT study-date=20240101-20241231") == {"modality": "CT",
                                                                      "study_date": "20240101-20241231"}
    with pytest.raises(SourceError, match="key=value"):
        parse_query("modality CT")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    assert expand_sources([str(empty)]) == [str(empty)]  # not a path list: left to the scanner as a file


def test_model_files_shipped_to_a_worker_without_the_folder(tmp_path: Path) -> None:
    from viewer.batch import models
    from viewer.batch.models import ModelSpec, RunOptions, materialise, resolve_models, session_for

    (m,) = resolve_models(["pneumonia-cxr"])
    # as a remote worker sees it: the driver's folder does not exist here
    spec = ModelSpec(m.id, m.version, m.sha256, str(tmp_path / "not-on-this-machine"))
    models._manifests.pop(m.sha256, None)
    materialise(spec, {m.file: m.model_path.read_bytes(), "manifest.toml": m.manifest_path.read_bytes()},
                str(tmp_path / "worker"))
    shipped = models.manifest_for(spec)
    assert shipped.folder.is_relative_to(tmp_path / "worker")
    assert hashlib.sha256(shipped.model_path.read_bytes()).hexdigest() == m.sha256
    session = session_for(spec, RunOptions(device="cpu"))
    assert session.manifest.id == "pneumonia-cxr" and session is session_for(spec, RunOptions(device="cpu"))
    models._manifests.pop(m.sha256, None)
    # a folder holding other weights under the same id is refused, not used
    bad = ModelSpec(m.id, m.version, "0" * 64, str(m.folder))
    with pytest.raises(ValueError, match="sha256"):
        models.manifest_for(bad)


def test_writer_parts_are_atomic_and_resume_keys_skip_lost(tmp_path: Path) -> None:
    from viewer.batch.models import ModelSpec
    from viewer.batch.results import ResultsWriter, finished_keys, read_results, rows_of
    from viewer.batch.work import ModelRows, UnitResult

    out = tmp_path / "r.parquet"
    out.mkdir()
    (out / ".partial-1dead-part-1.parquet").write_bytes(b"half a chunk of a killed job")
    spec = ModelSpec("m", "1", "a" * 64, "/models/m")
    w = ResultsWriter(out, chunk_rows=3)
    assert not (out / ".partial-1dead-part-1.parquet").exists()
    ok = UnitResult("u1", "1.2.3", "1.2", "CT", "/d", 2, ["1.2.3.1", "1.2.3.2"], [1, 1], 0.01,
                    [ModelRows(spec, "ok", provider="CPUExecutionProvider", labels=("a", "b"),
                               slices=np.array([0, 1], np.int32),
                               probabilities=np.array([[0.9, 0.1], [0.2, 0.8]], np.float32), infer_s=0.02)], "h:1")
    failed = UnitResult("u2", "1.2.4", "1.2", "MR", "/e", 0, [], [], 0.0,
                        [ModelRows(spec, "failed", "not applicable: MR")], "")
    lost = UnitResult("u3", "1.2.5", "1.2", "CT", "/f", 0, [], [], 0.0, [ModelRows(spec, "lost", "workers died")], "")
    w.add(rows_of(ok, forced=False, job_id="j"))
    assert w.parts_written == 0 and not list(out.glob("*.parquet"))  # 2 rows < chunk: nothing on disk yet
    w.add(rows_of(failed, forced=False, job_id="j"))
    assert w.parts_written == 1 and w.pending_rows == 0
    w.add(rows_of(lost, forced=False, job_id="j"))
    w.close()
    t = read_results(out).to_pydict()
    assert t["status"] == ["ok", "ok", "failed", "lost"] and t["label"] == ["a", "b", None, None]
    assert t["probability"][0] == pytest.approx(0.9) and t["probabilities"][1] == pytest.approx([0.2, 0.8])
    assert t["sop_instance_uid"][:2] == ["1.2.3.1", "1.2.3.2"] and t["reason"][2] == "not applicable: MR"
    assert finished_keys(out) == {("u1", "a" * 64), ("u2", "a" * 64)}  # lost: retried on --resume
    with pytest.raises(ValueError, match="not a results folder"):
        ResultsWriter(out / sorted(p.name for p in out.glob("*.parquet"))[0])


def test_infer_without_series_or_with_a_pacs_source_says_why(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from viewer.cli import main

    (tmp_path / "notes.txt").write_text("not an image\n")
    out = tmp_path / "r.parquet"
    assert main(["batch", "infer", str(tmp_path), "--model", "organ-ct", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "no loadable DICOM series" in err and "notes.txt" in err and not out.exists()
    assert main(["batch", "infer", "dimse://PACS@127.0.0.1:104", "--model", "organ-ct", "--out", str(out)]) == 1
    assert "a PACS source needs --query" in capsys.readouterr().err
    assert main(["batch", "infer", str(tmp_path), "--model", "no-such-model", "--out", str(out)]) == 1
    assert "no model 'no-such-model'" in capsys.readouterr().err


_FAULTS_PER_ARRAY = """
import resource, sys
import numpy as np
from viewer.batch.work import restore_malloc_defaults
restored = restore_malloc_defaults() if sys.argv[1] == "restore" else None
def churn():  # what a task does with a series: 8 MiB arrays made, written, freed, again and again
    for _ in range(40):
        a = np.empty(8 << 20, np.uint8)
        a.fill(1)
        del a
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(restored, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 40)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt is what is restored")
def test_worker_malloc_thresholds_restored_under_dask_environment() -> None:
    """A Dask worker runs with MALLOC_TRIM_THRESHOLD_ set: without the restore, every freed 8 MiB array is
    unmapped and the next one faults its pages in again; restored, the heap keeps it for reuse."""
    import subprocess
    import sys

    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}  # as distributed.nanny.pre-spawn-environ sets it

    def faults(mode: str) -> tuple[str, float]:
        out = subprocess.run([sys.executable, "-c", _FAULTS_PER_ARRAY, mode], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        return out[0], float(out[1])

    plain = faults("plain")[1]  # the cost being removed: page faults per array, each time
    restored, per_array = faults("restore")
    # 2,048 pages of 4 KiB, fewer where transparent huge pages serve part of it
    assert plain > 200 and restored == "True" and per_array < plain / 20, (plain, per_array)


def test_small_series_packed_in_order_big_ones_alone() -> None:
    from collections import deque

    from viewer.batch import job
    from viewer.batch.sources import Unit

    def unit(i: int, files: int) -> tuple[Unit, list[str]]:
        return Unit(f"u{i}", f"1.{i}", "1", "CR", "", [f"/a/{i}/{k}.dcm" for k in range(files)]), []

    sizes = [1] * 130 + [200] + [30, 30, 30] + [1] * 20
    todo = deque(unit(i, n) for i, n in enumerate(sizes))
    packs = []
    while todo:
        packs.append([u.key for u, _ in job.next_pack(todo, threads=1)])
    assert [k for p in packs for k in p] == [f"u{i}" for i in range(len(sizes))]  # every series once, in order
    files = [sum(sizes[int(k[1:])] for k in p) for p in packs]
    assert max(len(p) for p in packs) == job.PACK_MAX_SERIES and all(f <= job.PACK_FILES for f in files[:3])
    assert ["u130"] in packs  # a series over the pack size travels alone
    assert ["u131", "u132"] in packs  # 60 files: a third would pass PACK_FILES
    # few series per worker thread: each stays its own task, so every thread has work
    todo = deque(unit(i, 1) for i in range(16))
    assert len(job.next_pack(todo, threads=4)) == 1


def test_a_unit_travels_with_its_records_in_columns_and_arrives_equal(tmp_path: Path, data_dir: Path) -> None:
    import dataclasses
    import pickle

    from viewer.batch.sources import scan_sources
    from viewer.batch.work import results_of_pack, run_pack, ship
    from viewer.core.records import records_from_columns, records_to_columns

    scan = scan_sources([str(data_dir / "ct" / "pancreas-ct-philips-134"), str(data_dir / "dcm_qa")],
                        index=str(tmp_path / "index.sqlite"))
    assert len(scan.units) > 5
    for unit in scan.units:
        back = pickle.loads(pickle.dumps(unit))
        assert back == unit and back.records == unit.records and back.files == unit.files
        assert all(type(r) is type(unit.records[0]) for r in back.records)
    (ct,) = [u for u in scan.units if len(u.files) == 134]
    as_objects = sum(len(pickle.dumps(r)) for r in ct.records)
    assert len(pickle.dumps(records_to_columns(ct.records))) < as_objects / 3  # UIDs, geometry, format: shared
    assert records_from_columns(records_to_columns([])) == []
    one = dataclasses.replace(ct.records[0], position="")
    assert records_from_columns(records_to_columns([one])) == [one]
    # a task's pack as bytes and back: the task function sees the units as the driver had them
    pack = [(u, ["spec"]) for u in scan.units[:3]]
    seen = results_of_pack(run_pack(_echo, ship(pack), None))
    assert [(r.key, r.outputs) for r in seen] == [(u.key, {"unit": u, "specs": ["spec"]}) for u, _ in pack]
    assert all(r.cpu_s >= 0 for r in seen)


def _echo(unit: Any, specs: list[str], opts: object) -> Any:
    from viewer.batch.work import UnitResult

    return UnitResult(unit.key, unit.series_uid, unit.study_uid, unit.modality, unit.folder, 0, [], [], 0.0, [], "",
                      outputs={"unit": unit, "specs": specs})
