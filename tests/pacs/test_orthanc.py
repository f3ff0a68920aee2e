"""Query, retrieve (C-GET, C-MOVE, WADO-RS), resume and faults against a real Orthanc on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from tests.pacs.conftest import Loaded, originals
from tests.pacs.orthanc import Orthanc, free_port
from viewer.io.pacs import PacsError, parse_node
from viewer.io.pacs import dimse, web
from viewer.io.pacs.query import Query
from viewer.io.pacs.retrieve import iter_retrieve, retrieve
from viewer.io.pacs.store import LocalStore, check_instance

AE = "DICOMVIEWER"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "viewer", "pacs", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})


def assert_equal_to_originals(folder: Path, pixels: dict[str, bytes]) -> None:
    got = {}
    for f in folder.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        assert f.name == f"{ds.SOPInstanceUID}.dcm"
        got[str(ds.SOPInstanceUID)] = bytes(ds.PixelData)
    assert got.keys() == pixels.keys()
    assert all(got[k] == pixels[k] for k in pixels)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_echo_both_protocols(orthanc: Loaded) -> None:
    assert dimse.echo(parse_node(orthanc.orthanc.dimse), AE) > 0
    assert web.echo(parse_node(orthanc.orthanc.dicomweb)) > 0
    r = cli("echo", orthanc.orthanc.dimse)
    assert r.returncode == 0 and "C-ECHO ok" in r.stdout


@pytest.mark.parametrize("which", ["dimse", "dicomweb"])
def test_find_studies_and_series(orthanc: Loaded, which: str) -> None:
    node = parse_node(getattr(orthanc.orthanc, which))

    def find(**kw: str) -> list:
        q = Query(**kw)
        return list(dimse.find(node, q, AE) if which == "dimse" else web.find(node, q))

    [study] = find(patient_name="Pancreas*")
    assert study.study_uid == orthanc.study_uid and study.patient_id == "Pancreas-CT-CB_001"
    assert study.study_date == "20120706" and "CT" in study.modalities
    assert find(study_date="20120701-20120710")[0].study_uid == orthanc.study_uid
    assert find(study_date="2012-07-07-") == []
    assert find(patient_id="Pancreas-CT-CB_001", modality="CT")[0].study_uid == orthanc.study_uid
    assert find(modality="MR") == []
    assert find(accession="NOSUCH") == []
    [series] = find(level="series", study_uid=orthanc.study_uid)
    assert series.series_uid == orthanc.series_uid and series.series_instances == 134 and series.modality == "CT"


def test_find_command_json(orthanc: Loaded) -> None:
    r = cli("find", orthanc.orthanc.dimse, "--patient-name", "PANC*", "--level", "series", "--json")
    assert r.returncode == 0, r.stderr
    [m] = json.loads(r.stdout)
    assert m["series_uid"] == orthanc.series_uid and m["series_instances"] == 134


@pytest.mark.parametrize(("which", "method", "used"), [("dimse", "get", "C-GET"), ("dimse", "move", "C-MOVE"),
                                                      ("dicomweb", None, "WADO-RS")])
def test_retrieve_equals_originals(orthanc: Loaded, pancreas_pixels: dict[str, bytes], tmp_path: Path,
                                   which: str, method: str | None, used: str) -> None:
    store = LocalStore(tmp_path / "store", index=tmp_path / "index.sqlite")
    seen = []
    result = retrieve(parse_node(getattr(orthanc.orthanc, which)), orthanc.study_uid, ae_title=AE,
                      port=orthanc.scp_port, store=store, method=method, progress=seen.append)
    assert result.ok, result.to_json()
    [s] = result.series
    assert (s.method, s.stored, s.skipped, s.total) == (used, 134, 0, 134)
    assert_equal_to_originals(s.folder, pancreas_pixels)
    assert seen[-1].done == 134 and seen[-1].mb_per_s > 0
    # Indexed: the scan index has every stored file.
    from viewer.io.index import Index

    with Index(tmp_path / "index.sqlite") as idx:
        assert len(idx.under(str(s.folder.resolve()))) == 134


def test_get_command_auto_uses_c_get_and_scan_reads_the_result(orthanc: Loaded, tmp_path: Path) -> None:
    r = cli("get", orthanc.orthanc.dimse, "--study", orthanc.study_uid, "--into", str(tmp_path),
            "--port", str(orthanc.scp_port), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] and out["methods"] == ["C-GET"] and len(out["series"][0]["files"]) == 134
    scan = subprocess.run([sys.executable, "-m", "viewer", "scan", str(tmp_path), "--json", "--no-index"],
                          capture_output=True, text=True, timeout=300)
    stacks = json.loads(scan.stdout)["stacks"]
    assert [(s["series_uid"], s["files"]) for s in stacks] == [(orthanc.series_uid, 134)]


@pytest.mark.parametrize("which", ["dimse", "dicomweb"])
def test_cancelled_transfer_resumes_with_only_the_missing(orthanc: Loaded, pancreas_pixels: dict[str, bytes],
                                                          tmp_path: Path, which: str) -> None:
    node = parse_node(getattr(orthanc.orthanc, which))
    store = LocalStore(tmp_path, index=False)
    count = [0]

    def on_stored(path: Path, progress: object) -> None:
        count[0] += 1

    first = retrieve(node, orthanc.study_uid, ae_title=AE, store=store, on_stored=on_stored,
                     cancel=lambda: count[0] >= 40)
    assert first.cancelled and not first.ok
    folder = store.folder(orthanc.study_uid, orthanc.series_uid)
    have = {p.name for p in folder.glob("*.dcm")}
    assert 40 <= len(have) < 134
    for p in folder.iterdir():  # everything there is whole
        check_instance(p.read_bytes())
    again = retrieve(node, orthanc.study_uid, ae_title=AE, store=store)
    [s] = again.series
    assert again.ok and s.skipped == len(have) and s.stored == 134 - len(have)
    assert {p.name for p in s.files}.isdisjoint(have)  # only the missing were fetched
    assert_equal_to_originals(folder, pancreas_pixels)


def test_streaming_yields_instances_as_they_are_stored(orthanc: Loaded, tmp_path: Path) -> None:
    node = parse_node(orthanc.orthanc.dicomweb)
    items = list(iter_retrieve(node, orthanc.study_uid, store=LocalStore(tmp_path, index=False)))
    *stored, result = items
    assert len(stored) == 134 and result.ok
    # The first instance was a complete file on disk when it was handed on, long before the last one.
    first_path, first_progress = stored[0]
    # The total is -1 ("not known yet") until the series' size, asked alongside, has answered.
    assert first_progress.done == 1 and first_progress.total in (-1, 134)
    assert stored[-1][1].done == 134 and result.series[0].total == 134
    assert check_instance(first_path.read_bytes()).series_uid == orthanc.series_uid


def test_unknown_calling_ae_gets_a_clear_message(orthanc: Loaded) -> None:
    # Orthanc refuses C-FIND from an AE title not in its DicomModalities.
    with pytest.raises(PacsError, match="does not know our AE title"):
        list(dimse.find(parse_node(orthanc.orthanc.dimse), Query(), "STRANGER"))
    r = cli("find", orthanc.orthanc.dimse, "--ae", "STRANGER")
    assert r.returncode == 1 and "'STRANGER'" in r.stderr and "Traceback" not in r.stderr


def test_refused_and_unreachable_ports_are_named(orthanc: Loaded) -> None:
    port = free_port()
    with pytest.raises(PacsError, match=f"nothing is listening at 127.0.0.1:{port}"):
        dimse.echo(parse_node(f"dimse://X@127.0.0.1:{port}"), AE)
    with pytest.raises(PacsError, match="connection refused"):
        web.echo(parse_node(f"http://127.0.0.1:{port}/dicom-web"))
    with pytest.raises(PacsError, match="404"):
        web.echo(parse_node(f"{orthanc.orthanc.url}/not-dicom-web"))
    import dataclasses

    tls_to_plain = parse_node(f"dimses://ORTHANC@127.0.0.1:{orthanc.orthanc.dicom_port}")
    with pytest.raises(PacsError, match="TLS failure: 127.0.0.1.* broke off the TLS handshake"):
        dimse.echo(dataclasses.replace(tls_to_plain, timeout_s=2.0), AE)


def test_no_route_to_host_is_named(private_net: None) -> None:
    # Only loopback is up in the test's network namespace: TEST-NET-1 (RFC 5737) has no route.
    r = cli("echo", "dimse://PACS@192.0.2.1:104", "--timeout", "5")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no route to host 192.0.2.1" in r.stderr, r.stderr
    with pytest.raises(PacsError, match="no route to host 192.0.2.1"):
        web.echo(parse_node("http://192.0.2.1:8042/dicom-web"))


@pytest.fixture
def small_orthanc(private_net: None, data_dir: Path, tmp_path: Path, request: pytest.FixtureRequest):
    """A second Orthanc with 30 instances of the pancreas CT (or ``indirect`` n), for tests that stop, pause
    or break it."""
    from tests.pacs.conftest import PANCREAS, series_files

    o = Orthanc(tmp_path / "orthanc", {AE: free_port()}, MaximumStorageCacheSize=0).start()
    files = series_files(data_dir, PANCREAS)[:getattr(request, "param", 30)]
    ids = o.upload(files)
    yield o, files, ids
    o.resume() if o.proc and o.proc.poll() is None else None
    o.stop()


def test_slow_server_times_out_with_a_message(small_orthanc, orthanc: Loaded) -> None:
    import dataclasses

    o, _, _ = small_orthanc
    o.pause()  # SIGSTOP: the kernel still accepts connections, nobody answers
    try:
        with pytest.raises(PacsError, match="within 1 s"):
            dimse.echo(dataclasses.replace(parse_node(o.dimse), timeout_s=1.0), AE)
        with pytest.raises(PacsError, match="timeout"):
            web.echo(dataclasses.replace(parse_node(o.dicomweb), timeout_s=1.0))
    finally:
        o.resume()
    assert dimse.echo(parse_node(o.dimse), AE) > 0


@pytest.mark.parametrize("small_orthanc", [134], indirect=True)
@pytest.mark.parametrize("which", ["dimse", "dicomweb"])
def test_server_stops_mid_retrieve_then_resume(small_orthanc, tmp_path: Path, which: str) -> None:
    # 134 instances (70 MB): more than loopback's socket buffers hold, so killing the server halfway
    # (the 67th stored instance) really breaks the transfer.
    o, files, _ = small_orthanc
    study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    store = LocalStore(tmp_path / "store", index=False)
    count = [0]

    def on_stored(path: Path, progress: object) -> None:
        count[0] += 1
        if count[0] == 67:
            o.kill()

    result = retrieve(parse_node(getattr(o, which)), study, ae_title=AE, store=store, on_stored=on_stored)
    [s] = result.series
    assert not result.ok and s.error
    assert "the transfer stopped after" in s.error, s.error
    folder = s.folder
    have = sorted(folder.glob("*.dcm"))
    assert 67 <= len(have) < 134
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # nothing half-stored
    for p in have:
        check_instance(p.read_bytes())
    o.verbose = True  # the PACS is back, same storage, logging each HTTP request
    since = o.log.stat().st_size
    o.start()
    again = retrieve(parse_node(getattr(o, which)), study, ae_title=AE, store=store)
    [s2] = again.series
    assert again.ok and s2.skipped == len(have) and s2.stored == 134 - len(have)
    assert_equal_to_originals(folder, originals(files))
    if which == "dicomweb":
        # WADO-RS asked for exactly the missing instances, one request each, never the whole series.
        wado = [r for r in o.http_requests(since) if r.startswith("GET ") and "/series/" in r
                and not r.split("?")[0].endswith("/instances")]
        asked = sorted(r.split("/instances/")[1] for r in wado if "/instances/" in r)
        present = {p.stem for p in have}
        assert asked == sorted(u.stem for u in folder.glob("*.dcm") if u.stem not in present)
        assert len(wado) == len(asked) == 134 - len(have)


def test_fresh_wado_retrieve_asks_the_count_not_the_list(small_orthanc, tmp_path: Path) -> None:
    # A fresh WADO-RS retrieve streams the series and asks only its size alongside (one series-level
    # QIDO); the instance list, costly for the server, is not asked when the whole series arrived.
    o, files, _ = small_orthanc
    o.stop()
    o.verbose = True
    o.start()
    study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    since = o.log.stat().st_size
    store = LocalStore(tmp_path / "store", index=tmp_path / "index.sqlite")
    seen = []
    result = retrieve(parse_node(o.dicomweb), study, store=store, progress=seen.append)
    [s] = result.series
    assert result.ok and (s.stored, s.total, s.method) == (30, 30, "WADO-RS"), result.to_json()
    assert_equal_to_originals(s.folder, originals(files))
    asked = [r.split("?")[0][4:] for r in o.http_requests(since) if r.startswith("GET ")]
    series = f"/dicom-web/studies/{study}/series/{s.series_uid}"
    assert not [r for r in asked if r.endswith("/instances")], asked  # no instance list
    assert asked.count(series) == 1 and f"/dicom-web/studies/{study}/series" in asked
    assert seen[-1].done == 30 and seen[-1].total == 30
    from viewer.io.index import Index

    with Index(tmp_path / "index.sqlite") as idx:
        records = idx.under(str(s.folder.resolve()))
    assert len(records) == 30 and {r.status for r in records.values()} == {"image"}


def test_corrupt_instance_from_the_server_is_not_stored(small_orthanc, tmp_path: Path) -> None:
    o, files, ids = small_orthanc
    study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    bad_sop = str(pydicom.dcmread(files[3], stop_before_pixels=True).SOPInstanceUID)
    # Truncate Orthanc's own stored copy of one instance: the server now serves a broken file.
    uuid = o.rest(f"/instances/{ids[3]}/attachments/dicom/info")["Uuid"]
    stored = o.folder / "db" / uuid[:2] / uuid[2:4] / uuid
    data = stored.read_bytes()
    stored.write_bytes(data[: len(data) - 5000])
    store = LocalStore(tmp_path / "store", index=False)
    result = retrieve(parse_node(o.dicomweb), study, store=store)
    [s] = result.series
    assert not result.ok and s.stored == 29
    assert s.error and "1 of 30 instances did not arrive" in s.error
    assert any("truncated" in p for p in s.problems) or s.problems == [] , s.problems
    assert not (s.folder / f"{bad_sop}.dcm").exists()
    assert not [p for p in s.folder.iterdir() if p.name.startswith(".")]


def test_c_move_that_never_comes_back_is_explained(private_net: None, data_dir: Path, tmp_path: Path) -> None:
    # What users meet when the PACS's entry for us is wrong: the message says what the PACS answered and
    # whether it ever reached our storage SCP, not "N of N did not arrive".
    from tests.pacs.conftest import PANCREAS, series_files

    files = series_files(data_dir, PANCREAS)[:3]
    study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    dead, elsewhere, ours = free_port(), free_port(), free_port()
    # 0. No entry for us at all: Orthanc drops the C-MOVE's association.
    o = Orthanc(tmp_path / "orthanc0", {}).start()
    try:
        o.upload(files)
        series = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
        result = retrieve(parse_node(o.dimse), study, [series], ae_title=AE, port=ours, method="move",
                          store=LocalStore(tmp_path / "in0", index=False))
    finally:
        o.stop()
    error = result.series[0].error or ""
    assert "aborted the association on our C-MOVE" in error, error
    assert f"add {AE} with this computer's address and port {ours} to the PACS's modalities" in error
    assert result.series[0].method == "C-MOVE"
    o = Orthanc(tmp_path / "orthanc", {AE: dead}).start()
    try:
        o.upload(files)
        # 1. Our AE points to a port where nothing listens: Orthanc answers 0xC000, nothing connects to us.
        r = cli("get", o.dimse, "--study", study, "--method", "move", "--port", str(ours), "--into",
                str(tmp_path / "in"))
        assert r.returncode == 1
        assert "answered the C-MOVE with status 0xC000 (Unable to Process)" in r.stdout, r.stdout
        assert f"never connected back to {AE} on port {ours}" in r.stdout
        assert "did not arrive" not in r.stdout
    finally:
        o.stop()
    # 2. Our AE points to another listener (another computer, in effect): Orthanc reports success, yet
    # nothing came to our port.
    with dimse.StorageServer("OTHER", elsewhere, default_sink=LocalStore(tmp_path / "other", index=False).store):
        o = Orthanc(tmp_path / "orthanc2", {AE: elsewhere}).start()
        try:
            o.upload(files)
            result = retrieve(parse_node(o.dimse), study, ae_title=AE, port=ours, method="move",
                              store=LocalStore(tmp_path / "in2", index=False))
        finally:
            o.stop()
    error = result.series[0].error or ""
    assert "reported the C-MOVE as done (3 sent)" in error, error
    assert f"nothing connected back to {AE} on port {ours}" in error and "points to another computer" in error
    # 3. Our AE is right but what the PACS holds is broken (pixel data half as long as the image needs,
    # which the PACS sends as it is): it connected, and we say what we refused.
    from io import BytesIO

    o = Orthanc(tmp_path / "orthanc3", {AE: ours}).start()
    try:
        for f in files:
            ds = pydicom.dcmread(f)
            ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
            buf = BytesIO()
            ds.save_as(buf)
            o.rest("/instances", buf.getvalue())
        result = retrieve(parse_node(o.dimse), study, ae_title=AE, port=ours, method="move",
                          store=LocalStore(tmp_path / "in3", index=False))
    finally:
        o.stop()
    error = result.series[0].error or ""
    assert f"it connected back to {AE} on port {ours}, but we refused what it sent" in error, error
    assert "truncated" in error and result.series[0].stored == 0


def test_no_patient_names_or_ids_in_logs(orthanc: Loaded, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    node = parse_node(orthanc.orthanc.dimse)
    [study] = list(dimse.find(node, Query(patient_name="Pancreas*"), AE))
    assert study.patient_name == "Pancreas-CT-CB_001"
    retrieve(node, orthanc.study_uid, ae_title=AE, store=LocalStore(tmp_path, index=False), method="get")
    list(web.find(parse_node(orthanc.orthanc.dicomweb), Query(patient_id="Pancreas-CT-CB_001")))
    assert caplog.records  # pynetdicom did log (associations, messages) ...
    assert "Pancreas-CT-CB" not in caplog.text and "Pancreas*" not in caplog.text  # ... but no PHI


def test_dicomweb_credentials(private_net: None, tmp_path: Path) -> None:
    import dataclasses

    o = Orthanc(tmp_path / "orthanc", AuthenticationEnabled=True, RegisteredUsers={"alice": "wonderland"}).start()
    try:
        node = parse_node(o.dicomweb)
        with pytest.raises(PacsError, match="401 Unauthorized"):
            web.echo(node)
        with pytest.raises(PacsError, match="401 Unauthorized"):
            web.echo(dataclasses.replace(node, auth="basic", username="alice", password="wrong"))
        assert web.echo(dataclasses.replace(node, auth="basic", username="alice", password="wonderland")) > 0
    finally:
        o.stop()
