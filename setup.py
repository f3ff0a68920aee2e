"""Build step that makes a wheel carry the shipped models and resources (everything else is pyproject.toml).

The repository keeps ``models/`` and ``resources/`` at its top level; a wheel has only packages. So the
wheel's build copies the files listed in ``[tool.dicom-viewer] shipped`` into ``viewer/shipped/`` of the
build tree, where ``viewer.core.paths`` looks first. Editable installs copy nothing: they run from the
checkout, where the same module finds the top-level folders.
"""

from __future__ import annotations

import glob
import shutil
import tomllib
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def shipped_files() -> list[str]:
    """The repository-relative paths of the shipped files (pyproject's globs, expanded and sorted)."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["dicom-viewer"]["shipped"]
    return sorted({f for p in patterns for f in glob.glob(p, root_dir=ROOT)})


class BuildWithShippedFiles(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "viewer" / "shipped"
        for rel in shipped_files():
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest)


setup(cmdclass={"build_py": BuildWithShippedFiles})
