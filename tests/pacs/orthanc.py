"""A real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) for tests and benchmarks, on loopback.

Run inside a private network namespace (tests/netns.py): Debian's Orthanc 1.10 listens on all
interfaces whatever its configuration says.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
AET = "ORTHANC"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Orthanc:
    """One Orthanc process with its storage in ``folder``; ``modalities``: AE -> port on 127.0.0.1."""

    def __init__(self, folder: Path, modalities: dict[str, int] | None = None, **config: Any) -> None:
        self.folder = folder
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.modalities = modalities or {}
        self.extra = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "orthanc.log"
        self.verbose = False  # log every HTTP request ("(http) GET /dicom-web/..."): tests count them

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def dimse(self) -> str:
        return f"dimse://{AET}@127.0.0.1:{self.dicom_port}"

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "Name": "viewer-tests", "StorageDirectory": str(self.folder / "db"),
            "IndexDirectory": str(self.folder / "db"), "StorageCompression": False,
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": AET,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomCheckCalledAet": False,
            "Plugins": [PLUGIN], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "DicomModalities": {ae.lower(): [ae, "127.0.0.1", port] for ae, port in self.modalities.items()},
            "ConcurrentJobs": 2, "HttpServerThreads": 8, "DicomThreadsCount": 4,
            "DicomScpTimeout": 30, "SaveJobs": False, "StableAge": 1,
        }
        cfg.update(self.extra)
        return cfg

    def start(self) -> Orthanc:
        if shutil.which("Orthanc") is None:
            raise RuntimeError("Orthanc is not installed (apt install orthanc orthanc-dicomweb)")
        self.folder.mkdir(parents=True, exist_ok=True)
        cfg = self.folder / "orthanc.json"
        cfg.write_text(json.dumps(self.config(), indent=1))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["Orthanc", *(["--verbose"] if self.verbose else []), str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                try:
                    self.rest("/system")
                except urllib.error.HTTPError:
                    pass  # it answers (401 with authentication on): up
                with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=1):
                    return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        raise RuntimeError(f"Orthanc did not start: {self.log.read_text()[-2000:]}")

    def rest(self, path: str, data: bytes | None = None, method: str | None = None) -> Any:
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
        return json.loads(body) if body else None

    def upload(self, paths: list[Path]) -> list[str]:
        """POST each file to /instances; returns Orthanc's instance ids."""
        return [self.rest("/instances", p.read_bytes())["ID"] for p in paths]

    def http_requests(self, since: int = 0) -> list[str]:
        """The HTTP requests ("GET /dicom-web/...") logged after byte ``since`` of the log (``verbose`` on)."""
        with open(self.log, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        return [line.split("(http) ", 1)[1].strip() for line in text.splitlines() if "(http) " in line]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
