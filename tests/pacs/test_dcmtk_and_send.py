"""DCMTK as the other side (storescu -> our listener; our SCU -> dcmqrscp), and sending (C-STORE, STOW-RS)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

from tests.conftest import require_tool
from tests.pacs.conftest import CRC, Loaded, originals, series_files
from tests.pacs.orthanc import free_port
from viewer.io.pacs import PacsError, dimse, parse_node, web
from viewer.io.pacs.query import Query
from viewer.io.pacs.retrieve import retrieve
from viewer.io.pacs.store import LocalStore

AE = "DICOMVIEWER"
REPO = Path(__file__).resolve().parents[2]


def _wait_port(port: int, proc: subprocess.Popen[str]) -> None:
    import socket

    for _ in range(400):
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def test_storescu_pushes_a_series_to_our_listener(private_net: None, data_dir: Path, tmp_path: Path) -> None:
    storescu = require_tool("storescu", "apt install dcmtk")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "VIEWER_CACHE_DIR": str(tmp_path / "cache")}
    listener = subprocess.Popen([sys.executable, "-m", "viewer", "pacs", "listen", "--ae", AE, "--port", str(port),
                                 "--into", str(tmp_path / "in")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
    try:
        _wait_port(port, listener)
        files = series_files(data_dir, CRC)
        r = subprocess.run([storescu, "-aec", AE, "127.0.0.1", str(port), *map(str, files)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    finally:
        listener.terminate()
        out, _ = listener.communicate(timeout=60)
    assert "100 instances received" in out, out
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    folder = tmp_path / "in" / str(ds.StudyInstanceUID) / str(ds.SeriesInstanceUID)
    pixels = originals(files)
    got = {p.stem: bytes(pydicom.dcmread(p).PixelData) for p in folder.glob("*.dcm")}
    assert got == pixels
    from viewer.io.index import Index

    with Index(tmp_path / "cache" / "index.sqlite") as idx:  # indexed on arrival
        assert len(idx.under(str(folder.resolve()))) == 100


def test_listener_refuses_a_corrupt_instance_with_a_status(private_net: None, data_dir: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "in", index=False)
    port = free_port()
    good = series_files(data_dir, CRC)[0]
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(good.read_bytes()[:-3000])
    with dimse.StorageServer(AE, port, default_sink=store.store) as server:
        node = parse_node(f"dimse://{AE}@127.0.0.1:{port}")
        sent, problems = dimse.send_files(node, "PUSHER", [str(bad), str(good)])
        assert sent == 1 and len(problems) == 1 and "0xC000" in problems[0]
        assert "truncated" in server.errors[0]
    sop = pydicom.dcmread(good, stop_before_pixels=True).SOPInstanceUID
    assert [p.name for p in store.root.rglob("*") if p.is_file()] == [f"{sop}.dcm"]  # nothing half-stored


@pytest.fixture
def dcmqrscp(private_net: None, data_dir: Path, tmp_path: Path):
    exe = require_tool("dcmqrscp", "apt install dcmtk")
    storescu = require_tool("storescu", "apt install dcmtk")
    port, our_port = free_port(), free_port()
    (tmp_path / "db").mkdir()
    cfg = tmp_path / "dcmqrscp.cfg"
    cfg.write_text(f"""NetworkTCPPort = {port}
MaxPDUSize = 16384
MaxAssociations = 16
HostTable BEGIN
viewer = ({AE}, 127.0.0.1, {our_port})
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
QRSCP {tmp_path / 'db'} RW (200, 1024mb) ANY
AETable END
""")
    proc = subprocess.Popen([exe, "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(200):  # a bare TCP probe crashes dcmqrscp 3.6.7: wait with C-ECHOs
        try:
            dimse.echo(parse_node(f"dimse://QRSCP@127.0.0.1:{port}"), AE)
            break
        except PacsError:
            time.sleep(0.05)
    files = series_files(data_dir, CRC)[:20]
    subprocess.run([storescu, "-aec", "QRSCP", "127.0.0.1", str(port), *map(str, files)], check=True,
                   capture_output=True, timeout=300)
    assert proc.poll() is None, proc.communicate()[0]
    yield port, our_port, files
    proc.terminate()
    proc.wait(30)


def test_our_scu_against_dcmqrscp(dcmqrscp, tmp_path: Path) -> None:
    port, our_port, files = dcmqrscp
    node = parse_node(f"dimse://QRSCP@127.0.0.1:{port}")
    assert dimse.echo(node, AE) > 0
    [study] = list(dimse.find(node, Query(), AE))
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert study.study_uid == ds.StudyInstanceUID
    for method, used in (("get", "C-GET"), ("move", "C-MOVE")):
        store = LocalStore(tmp_path / method, index=False)
        result = retrieve(node, study.study_uid, ae_title=AE, port=our_port, store=store, method=method)
        [s] = result.series
        assert result.ok and s.method == used and s.stored == 20, result.to_json()
        assert {p.stem: bytes(pydicom.dcmread(p).PixelData) for p in s.files} == originals(files)
    with pytest.raises(PacsError, match="rejected the association .*Called AE title not recognised.*'NOTQRSCP'"):
        dimse.echo(parse_node(f"dimse://NOTQRSCP@127.0.0.1:{port}"), AE)


@pytest.mark.parametrize("which", ["dimse", "dicomweb"])
def test_send_then_retrieve_round_trip(orthanc: Loaded, data_dir: Path, tmp_path: Path, which: str) -> None:
    """C-STORE / STOW-RS a series the PACS does not have yet, plus a SEG, then get them back unchanged."""
    import numpy as np

    from viewer.annotations.seg import Segment, write_seg

    files = series_files(data_dir, CRC)[40:50] if which == "dimse" else series_files(data_dir, CRC)[50:60]
    sources = [pydicom.dcmread(f) for f in files]
    mask = np.zeros((len(files), sources[0].Rows, sources[0].Columns), dtype=bool)
    mask[:, 200:260, 200:260] = True
    seg_path = tmp_path / "seg.dcm"
    seg = write_seg(seg_path, sources, [Segment(name="lesion", mask=mask)])  # the viewer's SEG exporter
    paths = [str(f) for f in files] + [str(seg_path)]
    node = parse_node(getattr(orthanc.orthanc, which))
    sent, problems = (dimse.send_files(node, AE, paths) if which == "dimse" else web.send_files(node, paths))
    assert problems == [] and sent == len(paths)
    study = str(sources[0].StudyInstanceUID)
    store = LocalStore(tmp_path / "back", index=False)
    result = retrieve(node, study, ae_title=AE, port=orthanc.scp_port, store=store, method="get")
    assert result.ok
    back = {p.stem for s in result.series for p in s.folder.glob("*.dcm")}
    assert {str(d.SOPInstanceUID) for d in sources} <= back
    assert str(seg.SOPInstanceUID) in back
    if which == "dimse":
        # A wrong modality hint: the first C-GET offers MR classes only, Orthanc cannot send the CT images
        # or the SEG; the second pass asks again with the SOP classes the instance listing gave.
        wrong = {s.series_uid: "MR" for s in result.series}
        again = retrieve(node, study, list(wrong), ae_title=AE, store=LocalStore(tmp_path / "again", index=False),
                         method="get", modalities=wrong)
        assert again.ok and all(s.problems == [] for s in again.series), again.to_json()
        assert {p.stem for s in again.series for p in s.folder.glob("*.dcm")} == back


def test_c_move_failures_against_dcmqrscp_say_what_is_wrong(dcmqrscp, tmp_path: Path) -> None:
    port, our_port, files = dcmqrscp
    node = parse_node(f"dimse://QRSCP@127.0.0.1:{port}")
    study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    # An AE title dcmqrscp's HostTable does not have: 0xA801, and what to add where.
    r = retrieve(node, study, ae_title="STRANGER", port=our_port, store=LocalStore(tmp_path / "a", index=False),
                 method="move")
    error = r.series[0].error or ""
    assert "answered the C-MOVE with status 0xA801 (Move destination unknown)" in error, error
    assert f"add STRANGER with this computer's address and port {our_port} to the PACS's modalities" in error
    # Our AE known, but we listen elsewhere: dcmqrscp cannot connect, every sub-operation fails.
    elsewhere = free_port()
    r = retrieve(node, study, ae_title=AE, port=elsewhere, store=LocalStore(tmp_path / "b", index=False),
                 method="move")
    error = r.series[0].error or ""
    assert "status 0xA702" in error and "sub-operations: 20 failed" in error, error
    assert f"never connected back to {AE} on port {elsewhere}" in error
    assert "did not arrive" not in error and r.series[0].stored == 0
