"""Real servers for the PACS tests: an Orthanc (DICOM + DICOMweb) loaded with real CT series, DCMTK tools.

Everything runs in the test process's private network namespace (tests/conftest.py), on loopback only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import conftest as root
from tests.conftest import require_tool
from tests.pacs.orthanc import Orthanc, free_port

PANCREAS = "ct/pancreas-ct-philips-134"
CRC = "ct/crc-chest-ct-ge-100"


def _require(ok: bool, msg: str) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def private_net() -> None:
    """The test process is in a private network namespace (else: fail in CI, skip elsewhere)."""
    _require(root.NETNS_ERROR is None, f"PACS tests need a private network namespace: {root.NETNS_ERROR}")


@dataclass
class Loaded:
    orthanc: Orthanc
    scp_port: int  # where Orthanc sends C-MOVEs for AE DICOMVIEWER
    study_uid: str
    series_uid: str
    files: list[Path]


def series_files(data_dir: Path, rel: str) -> list[Path]:
    return sorted((data_dir / rel).glob("*.dcm"))


@pytest.fixture(scope="session")
def orthanc(private_net: None, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """A real Orthanc with the 134-slice pancreas CT, our AE DICOMVIEWER known for C-MOVE."""
    require_tool("Orthanc", "apt install orthanc orthanc-dicomweb")
    import pydicom

    port = free_port()
    o = Orthanc(tmp_path_factory.mktemp("orthanc"), {"DICOMVIEWER": port}).start()
    files = series_files(data_dir, PANCREAS)
    o.upload(files)
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    yield Loaded(o, port, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), files)
    o.stop()


def originals(files: list[Path]) -> dict[str, bytes]:
    """SOP Instance UID -> pixel data bytes of the original files."""
    import pydicom

    out = {}
    for f in files:
        ds = pydicom.dcmread(f)
        out[str(ds.SOPInstanceUID)] = bytes(ds.PixelData)
    return out


@pytest.fixture(scope="session")
def pancreas_pixels(orthanc: Loaded) -> dict[str, bytes]:
    return originals(orthanc.files)


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A CA, server and client certificates signed by it, and another CA (tests/pacs/tls.py)."""
    from tests.pacs.tls import make_certs

    require_tool("openssl", "apt install openssl")
    return make_certs(tmp_path_factory.mktemp("tls"))
