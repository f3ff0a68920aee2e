"""packaging/install.sh against a throw-away HOME and XDG folders: a user and a system (DESTDIR) install
of a build put the command, the menu entry, the icons and the application/dicom type where desktops look,
and the uninstall removes exactly that, leaving the user's own data.

The build here is a stand-in folder with a ``dicom-viewer`` program (the frozen build takes minutes:
packaging/release_check.sh installs the real one).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, require_tool

INSTALL = REPO / "packaging" / "install.sh"


def _fake_build(tmp: Path) -> Path:
    build = tmp / "dist" / "dicom-viewer"
    (build / "_internal").mkdir(parents=True)
    (build / "_internal" / "payload.bin").write_bytes(b"\0" * 100)
    exe = build / "dicom-viewer"
    exe.write_text('#!/bin/sh\necho "dicom-viewer stand-in $*"\n')
    exe.chmod(0o755)
    return build


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL), *args], env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "home" / ".local" / "share"))
    (tmp_path / "home").mkdir()
    return env


def test_user_install_registers_the_app_and_uninstall_removes_only_it(tmp_path: Path, home: dict[str, str]) -> None:
    require_tool("update-mime-database", "apt-get install shared-mime-info")
    validate = require_tool("desktop-file-validate", "apt-get install desktop-file-utils")
    build = _fake_build(tmp_path)
    user_data = Path(home["XDG_DATA_HOME"]) / "dicom-viewer" / "labels.sqlite"  # the app's own data
    user_data.parent.mkdir(parents=True)
    user_data.write_text("labels")
    before = _files(tmp_path / "home")

    out = _run(["--user", str(build)], home)
    assert out.returncode == 0, out.stderr
    h = tmp_path / "home"
    exe = h / ".local" / "lib" / "dicom-viewer" / "dicom-viewer"
    assert (h / ".local" / "lib" / "dicom-viewer" / "_internal" / "payload.bin").is_file()
    command = h / ".local" / "bin" / "dicom-viewer"
    ran = subprocess.run([str(command), "--version"], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "dicom-viewer stand-in --version"

    share = Path(home["XDG_DATA_HOME"])
    desktop = share / "applications" / "dicom-viewer.desktop"
    entry = desktop.read_text()
    assert f"Exec={exe} %F" in entry and "MimeType=application/dicom;" in entry and "Icon=dicom-viewer" in entry
    check = subprocess.run([validate, str(desktop)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    for size in (16, 32, 48, 64, 128, 256):
        assert (share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "dicom-viewer.png").is_file()
    assert (share / "icons" / "hicolor" / "scalable" / "apps" / "dicom-viewer.svg").is_file()
    # The MIME database built from our package file knows the names shared-mime-info lacks.
    globs = (share / "mime" / "globs2").read_text()
    assert "application/dicom:*.dicom" in globs and "application/dicom:dicomdir" in globs
    if (share / "applications" / "mimeinfo.cache").exists():  # update-desktop-database was there
        assert "application/dicom=dicom-viewer.desktop" in (share / "applications" / "mimeinfo.cache").read_text()

    # Installing again replaces the old install instead of failing or mixing versions.
    assert _run(["--user", str(build)], home).returncode == 0

    out = _run(["--user", "--uninstall"], home)
    assert out.returncode == 0, out.stderr
    left = _files(h) - before
    # Only the caches the desktop tools regenerate (now describing no app of ours) may stay.
    assert all("/mime/" in f or f.endswith("mimeinfo.cache") for f in left), sorted(left)
    assert "dicom-viewer" not in (share / "mime" / "globs2").read_text()
    assert user_data.read_text() == "labels"
    again = _run(["--user", "--uninstall"], home)
    assert again.returncode == 1 and "no installation" in again.stderr


def test_the_qt_mime_database_opens_dicom_names_with_the_installed_type(tmp_path: Path, home: dict[str, str]) -> None:
    require_tool("update-mime-database", "apt-get install shared-mime-info")
    assert _run(["--user", str(_fake_build(tmp_path))], home).returncode == 0
    env = dict(home, XDG_DATA_DIRS=str(tmp_path / "no-system-data"), QT_QPA_PLATFORM="offscreen")
    probe = ("from PySide6.QtCore import QMimeDatabase as D\n"
             "db = D()\n"
             "print(db.mimeTypeForFile('scan.dicom', D.MatchMode.MatchExtension).name())")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "application/dicom"


def test_system_install_is_staged_under_destdir(tmp_path: Path, home: dict[str, str]) -> None:
    stage = tmp_path / "stage"
    env = dict(home, DESTDIR=str(stage))
    out = _run(["--system", str(_fake_build(tmp_path))], env)
    assert out.returncode == 0, out.stderr
    assert (stage / "opt" / "dicom-viewer" / "dicom-viewer").is_file()
    assert os.readlink(stage / "usr" / "local" / "bin" / "dicom-viewer") == "/opt/dicom-viewer/dicom-viewer"
    entry = (stage / "usr" / "local" / "share" / "applications" / "dicom-viewer.desktop").read_text()
    assert "Exec=/opt/dicom-viewer/dicom-viewer %F" in entry
    assert not (tmp_path / "home" / ".local" / "lib").exists()  # nothing went to the user's folders
    assert _run(["--system", "--uninstall"], env).returncode == 0
    assert not (stage / "opt" / "dicom-viewer").exists()
    assert not (stage / "usr" / "local" / "bin" / "dicom-viewer").exists()


def test_a_missing_build_is_a_clear_error(tmp_path: Path, home: dict[str, str]) -> None:
    out = _run(["--user", str(tmp_path / "nothing")], home)
    assert out.returncode == 1 and "no build at" in out.stderr and "pyinstaller" in out.stderr
    assert not (tmp_path / "home" / ".local" / "lib" / "dicom-viewer").exists()
