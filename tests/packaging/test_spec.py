"""The inputs of the frozen build are complete and consistent (the build itself is packaging/release_check.sh,
a release step of a few minutes): every shipped pattern names files that exist and are in git, every
resource and model file the app reads is shipped, and nothing the app imports is excluded by the spec.
"""

from __future__ import annotations

import ast
import glob
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO

SPEC = REPO / "packaging" / "dicom-viewer.spec"


def shipped_patterns() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["tool"]["dicom-viewer"]["shipped"])


def shipped_files() -> set[str]:
    return {f for p in shipped_patterns() for f in glob.glob(p, root_dir=REPO)}


def spec_list(name: str) -> list[str]:
    """A list literal assigned to ``name`` at the top level of the spec file."""
    for node in ast.parse(SPEC.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{name} not found in {SPEC}")


def test_every_shipped_pattern_matches_tracked_files() -> None:
    tracked = None
    if shutil.which("git") and (REPO / ".git").exists():
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
        tracked = set(out.splitlines())
    for pattern in shipped_patterns():
        matches = glob.glob(pattern, root_dir=REPO)
        assert matches, f"shipped pattern {pattern!r} matches no file"
        if tracked is not None:
            ignored = [m for m in matches if m not in tracked]
            assert not ignored, f"{pattern!r}: files git ignores would be shipped from a checkout only: {ignored}"


def test_every_resource_and_model_file_the_app_reads_is_shipped() -> None:
    shipped = shipped_files()
    resources = {str(p.relative_to(REPO)) for p in (REPO / "resources").rglob("*") if p.is_file()}
    not_for_users = {f for f in resources if f.startswith("resources/screenshots/")}  # README pictures
    assert resources - not_for_users <= shipped, sorted(resources - not_for_users - shipped)
    for manifest in (REPO / "models").glob("*/manifest.toml"):
        folder = manifest.parent
        with open(manifest, "rb") as fh:
            weights = tomllib.load(fh)["file"]
        for name in ("manifest.toml", weights, "MODEL_CARD.md"):
            assert str((folder / name).relative_to(REPO)) in shipped, f"{folder.name}/{name} is not shipped"
    assert not any(f.startswith("models/training/") for f in shipped)


def test_the_wheel_build_and_the_spec_ship_the_same_list() -> None:
    """setup.py (wheel) and the spec (frozen build) both read pyproject's list; MANIFEST.in (sdist) covers it."""
    setup = (REPO / "setup.py").read_text(encoding="utf-8")
    assert '["tool"]["dicom-viewer"]["shipped"]' in setup
    assert '["tool"]["dicom-viewer"]["shipped"]' in SPEC.read_text(encoding="utf-8")
    manifest_in = (REPO / "MANIFEST.in").read_text(encoding="utf-8")
    for top in {f.split("/")[0] for f in shipped_files()}:
        assert f"recursive-include {top} " in manifest_in


def test_the_spec_excludes_nothing_the_app_imports(tmp_path: Path) -> None:
    """Start the real window with both docks (what ``dicom-viewer PATH`` builds), import every module of the
    package but the batch command (left out of the desktop build on purpose) and list what got loaded: a
    module the spec excludes would be missing from the frozen app (pyqtgraph imports QtOpenGL, QtSvg and
    QtTest itself; excluding them once broke the frozen screenshot)."""
    excludes = spec_list("excludes") + spec_list("BATCH_ONLY")
    probe = (
        "import json, sys\n"
        "import viewer.app as a\n"
        "w = a.build_main_window([], settings_file=sys.argv[1])\n"
        "from viewer.ui.label_panel import attach_label_panel\n"
        "from viewer.ai.inference import ModelInference\n"
        "attach_label_panel(w, inference=ModelInference())\n"
        "from viewer.ui.ai_panel import attach_ai_panel\n"
        "attach_ai_panel(w, ModelInference())\n"
        "import importlib, pkgutil\n"
        "def walk(name):\n"  # pkgutil.walk_packages would import the skipped packages to look inside
        "    if name == 'viewer.batch':\n"
        "        return\n"
        "    module = importlib.import_module(name)\n"
        "    for m in pkgutil.iter_modules(getattr(module, '__path__', [])):\n"
        "        walk(name + '.' + m.name)\n"
        "walk('viewer')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "settings.ini")], cwd=REPO, env=env,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert "PySide6.QtWidgets" in loaded and "pyqtgraph" in loaded  # the probe saw the real app
    wrongly_excluded = sorted(m for m in loaded for x in excludes if m == x or m.startswith(x + "."))
    assert not wrongly_excluded, f"the spec excludes modules the app imports: {wrongly_excluded}"


def test_the_dropped_qt_plugins_keep_the_desktop_platforms() -> None:
    dropped = spec_list("DROPPED_QT")
    for needed in ("plugins/platforms/libqxcb", "plugins/platforms/libqwayland", "plugins/platforms/libqoffscreen",
                   "plugins/imageformats/", "plugins/iconengines/"):
        assert not any(d in needed or needed.startswith(d) for d in dropped), needed


def test_the_spec_is_also_the_windows_and_macos_recipe() -> None:
    """No hard-coded Linux paths or library names; both other platforms' builds are written down."""
    text = SPEC.read_text(encoding="utf-8")
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert "/usr/" not in code and "/opt/" not in code and ".so" not in code
    assert "Windows" in text and "macOS" in text and 'sys.platform == "darwin"' in code
