"""Fixtures for the DICOM export tests: a few real CT slices and an independent validator."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import find_tool


@pytest.fixture(scope="session")
def ct_slices(data_dir: Path) -> list:
    """Headers of 6 consecutive slices of the Philips pancreas CT (real UIDs), in file (= z) order."""
    import pydicom

    files = sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[:6]
    return [pydicom.dcmread(f, stop_before_pixels=True) for f in files]


def dciodvfy_errors(path: Path) -> list[str] | None:
    """dciodvfy's "Error" lines for a file (dicom3tools, an independent IOD checker); None if absent."""
    exe = find_tool("dciodvfy")
    if exe is None:
        if os.environ.get("CI"):  # packaging/setup.sh --test installs dicom3tools: CI must validate
            pytest.fail("dciodvfy (Debian dicom3tools) is missing")
        return None
    res = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]
