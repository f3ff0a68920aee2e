"""DICOM TLS: our SCU against Orthanc's DICOM TLS (echo, find, C-GET, C-MOVE back to our TLS storage SCP),
clear messages for a wrong CA, a missing client certificate and a plain port; DCMTK's storescu over TLS
to our listener. Certificates are made in the test (tests/pacs/tls.py)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.conftest import require_tool
from tests.pacs.conftest import CRC, PANCREAS, originals, series_files
from tests.pacs.orthanc import Orthanc, free_port
from tests.pacs.tls import Certs
from viewer.io.pacs import PacsError, dimse, parse_node
from viewer.io.pacs.nodes import DimseNode, with_tls
from viewer.io.pacs.query import Query
from viewer.io.pacs.retrieve import retrieve
from viewer.io.pacs.store import LocalStore

AE = "DICOMVIEWER"
REPO = Path(__file__).resolve().parents[2]


def pacs_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "viewer", "pacs", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def tls_orthanc(private_net: None, tls_certs: Certs, data_dir: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Orthanc, int, list[Path]]]:
    """Orthanc speaking DICOM TLS only, requiring client certificates; 8 instances of the pancreas CT; our
    AE known with UseDicomTls (its C-MOVEs come back over TLS)."""
    require_tool("Orthanc", "apt install orthanc orthanc-dicomweb")
    scp_port = free_port()
    o = Orthanc(tmp_path_factory.mktemp("orthanc-tls"), DicomTlsEnabled=True,
                DicomTlsCertificate=str(tls_certs.server), DicomTlsPrivateKey=str(tls_certs.server_key),
                DicomTlsTrustedCertificates=str(tls_certs.ca), DicomTlsRemoteCertificateRequired=True,
                DicomModalities={"viewer": {"AET": AE, "Host": "127.0.0.1", "Port": scp_port, "UseDicomTls": True}})
    o.start()
    files = series_files(data_dir, PANCREAS)[:8]
    o.upload(files)
    yield o, scp_port, files
    o.stop()


def tls_node(o: Orthanc, certs: Certs, **changes: object) -> DimseNode:
    node = with_tls(parse_node(o.dimse), ca=str(certs.ca), cert=str(certs.client), key=str(certs.client_key))
    assert isinstance(node, DimseNode) and node.tls
    return dataclasses.replace(node, **changes)  # type: ignore[arg-type]


def test_echo_find_get_and_move_over_tls(tls_orthanc: tuple[Orthanc, int, list[Path]], tls_certs: Certs,
                                         tmp_path: Path) -> None:
    o, scp_port, files = tls_orthanc
    r = pacs_cli("echo", o.dimse, "--tls-ca", str(tls_certs.ca), "--tls-cert", str(tls_certs.client),
                 "--tls-key", str(tls_certs.client_key))
    assert r.returncode == 0 and "C-ECHO ok" in r.stdout, r.stderr
    node = tls_node(o, tls_certs)
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    [study] = list(dimse.find(node, Query(patient_id="Pancreas-CT-CB_001"), AE))
    assert study.study_uid == ds.StudyInstanceUID and study.study_instances == 8
    pixels = originals(files)
    for method, used in (("get", "C-GET"), ("move", "C-MOVE")):
        # C-MOVE: Orthanc connects back over TLS to our storage SCP, which shows our certificate.
        store = LocalStore(tmp_path / method, index=False)
        result = retrieve(node, study.study_uid, ae_title=AE, port=scp_port, store=store, method=method)
        [s] = result.series
        assert result.ok and (s.method, s.stored) == (used, 8), result.to_json()
        assert {p.stem: bytes(pydicom.dcmread(p).PixelData) for p in s.files} == pixels


def test_tls_failures_say_what_is_wrong(tls_orthanc: tuple[Orthanc, int, list[Path]], tls_certs: Certs,
                                        orthanc: object) -> None:
    o, _, _ = tls_orthanc
    r = pacs_cli("echo", o.dimse, "--tls-ca", str(tls_certs.other_ca), "--tls-cert", str(tls_certs.client),
                 "--tls-key", str(tls_certs.client_key), "--timeout", "5")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "TLS failure: certificate verify failed" in r.stderr and str(tls_certs.other_ca) in r.stderr, r.stderr
    # Without our certificate Orthanc (DicomTlsRemoteCertificateRequired) ends the handshake.
    with pytest.raises(PacsError, match="requires a client certificate"):
        dimse.echo(tls_node(o, tls_certs, tls_cert="", tls_key="", timeout_s=5.0), AE)
    # The system's trust store does not know our test CA.
    with pytest.raises(PacsError, match="certificate verify failed.*system's trust store"):
        dimse.echo(tls_node(o, tls_certs, tls_ca="", timeout_s=5.0), AE)
    # Not checking the certificate connects (the user asked for it; `nodes list` says so).
    assert dimse.echo(tls_node(o, tls_certs, tls_ca="", tls_verify=False), AE) > 0
    # Plain DICOM to the TLS port, and TLS to a plain port.
    with pytest.raises(PacsError, match="closed the connection .*a DICOM TLS port\\? then use dimses://"):
        dimse.echo(dataclasses.replace(parse_node(o.dimse), timeout_s=3.0), AE)
    r = pacs_cli("echo", o.dimse.replace(str(o.dicom_port), str(orthanc.orthanc.dicom_port)),  # type: ignore[attr-defined]
                 "--tls-ca", str(tls_certs.ca), "--timeout", "3")
    assert r.returncode == 1 and "TLS failure" in r.stderr and "is this port TLS?" in r.stderr, r.stderr
    r = pacs_cli("echo", o.dimse, "--tls-ca", str(tls_certs.ca) + ".missing")
    assert r.returncode == 1 and "the CA file" in r.stderr and "does not exist" in r.stderr, r.stderr


def test_storescu_over_tls_to_our_listener(private_net: None, tls_certs: Certs, data_dir: Path,
                                           tmp_path: Path) -> None:
    from tests.pacs.test_dcmtk_and_send import _wait_port

    storescu = require_tool("storescu", "apt install dcmtk")
    port = free_port()
    listener = subprocess.Popen(
        [sys.executable, "-m", "viewer", "pacs", "listen", "--ae", AE, "--port", str(port), "--into",
         str(tmp_path / "in"), "--tls-cert", str(tls_certs.server), "--tls-key", str(tls_certs.server_key),
         "--tls-ca", str(tls_certs.ca)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "VIEWER_CACHE_DIR": str(tmp_path / "cache")})
    files = series_files(data_dir, CRC)[:10]
    idle = None
    try:
        _wait_port(port, listener)
        # A peer that connects and says nothing keeps nobody else out (the handshake runs per association).
        idle = socket.create_connection(("127.0.0.1", port))
        tls = ["+tls", str(tls_certs.client_key), str(tls_certs.client), "+cf", str(tls_certs.ca)]
        r = subprocess.run([storescu, *tls, "-aec", AE, "127.0.0.1", str(port), *map(str, files)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        # Plain DICOM, or TLS without a client certificate, is not let in.
        plain = subprocess.run([storescu, "-aec", AE, "127.0.0.1", str(port), str(files[0])],
                               capture_output=True, text=True, timeout=120)
        anonymous = subprocess.run([storescu, "+tla", "+cf", str(tls_certs.ca), "-aec", AE, "127.0.0.1", str(port),
                                    str(files[0])], capture_output=True, text=True, timeout=120)
        assert plain.returncode != 0 and anonymous.returncode != 0
    finally:
        listener.terminate()
        out, _ = listener.communicate(timeout=60)
        if idle is not None:
            idle.close()
    assert "DICOM TLS (client certificates required)" in out and "10 instances received" in out, out
    assert "Traceback" not in out
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    folder = tmp_path / "in" / str(ds.StudyInstanceUID) / str(ds.SeriesInstanceUID)
    assert {p.stem: bytes(pydicom.dcmread(p).PixelData) for p in folder.glob("*.dcm")} == originals(files)
