"""A plain ``pip install`` (sdist -> wheel, not the editable install) carries the shipped models and
resources, and its commands work from outside the source tree.

The wheel is built the way ``python -m build`` does it (the sdist first, the wheel from the unpacked sdist),
so both artefacts are checked. It is installed with ``--no-deps`` into a fresh venv whose only extra
``sys.path`` entry is this environment's site-packages (a ``.pth`` line): the heavy dependencies (Qt,
onnxruntime, SimpleITK) are reused instead of being downloaded and installed again, while the ``viewer``
package, its metadata and its data come from the wheel alone. A line in a ``.pth`` file adds the folder,
not the ``.pth`` files inside it, so this environment's editable install of the checkout stays invisible;
the tests check that ``viewer`` is imported from the new venv. ``--ignore-installed`` because pip sees
that editable install's metadata through the same line and would otherwise call the wheel installed
(it only skips that check; nothing in this environment is uninstalled).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO

CT = "ct/pancreas-ct-philips-134"


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build sdist and wheel of the checkout, install the wheel into a fresh venv; the venv's paths."""
    tmp = tmp_path_factory.mktemp("install")
    dist = tmp / "dist"
    built = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)], cwd=tmp)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, os.listdir(dist)
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).stdout.strip())
    (site / "_shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = _run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                str(wheels[0])], cwd=tmp)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return {"python": py, "bin": env_dir / "bin", "site": site, "wheel": wheels[0], "sdist": sdists[0], "tmp": tmp}


def _env() -> dict[str, str]:
    """This process's environment without PYTHONPATH (which points at the checkout)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def _viewer(installed: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, run in a folder outside the source tree."""
    return _run([str(installed["bin"] / "dicom-viewer"), *args], cwd=installed["tmp"], env=_env())


def test_the_installed_package_is_the_wheels_with_its_data(installed: dict[str, Path]) -> None:
    probe = (
        "import json, viewer, viewer.core.paths as p, viewer.app as a\n"
        "from viewer.annotations.labelsets import available_label_sets\n"
        "from viewer.ai.registry import ModelRegistry\n"
        "from viewer.core.presets import window_presets\n"
        "print(json.dumps({'viewer': viewer.__file__, 'resources': str(p.RESOURCES), 'style': a.STYLE.is_file(),"
        " 'presets': [x.name for x in window_presets('CT')],"
        " 'label_sets': sorted(available_label_sets()[0]),"
        " 'models': sorted(e.id for e in ModelRegistry(check_onnx=True).models() if e.ok)}))"
    )
    out = _run([str(installed["python"]), "-c", probe], cwd=installed["tmp"], env=_env())
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout)
    assert Path(seen["viewer"]).is_relative_to(installed["site"])
    assert Path(seen["resources"]) == installed["site"] / "viewer" / "shipped" / "resources"
    assert seen["style"] is True
    assert {"Lung", "Bone"} <= {n.title() for n in seen["presets"]}
    assert len(seen["label_sets"]) == len(list((REPO / "resources" / "label_sets").glob("*.toml")))
    assert seen["models"] == sorted(p.parent.name for p in (REPO / "models").glob("*/manifest.toml"))


def test_the_wheel_carries_exactly_the_shipped_files(installed: dict[str, Path]) -> None:
    import zipfile

    from tests.packaging.test_spec import shipped_files

    with zipfile.ZipFile(installed["wheel"]) as whl:
        inside = {n[len("viewer/shipped/"):] for n in whl.namelist() if n.startswith("viewer/shipped/")}
    assert inside == shipped_files()


def test_version_comes_from_the_installed_metadata(installed: dict[str, Path]) -> None:
    import viewer

    out = _viewer(installed, "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"dicom-viewer {viewer.__version__}"
    assert installed["wheel"].name.startswith(f"dicom_viewer-{viewer.__version__}-")
    help_out = _viewer(installed, "--help")
    assert help_out.returncode == 0 and "dicom-viewer [PATH ...]" in help_out.stdout
    assert all(name in help_out.stdout for name in ("scan", "infer", "screenshot", "--version"))


def test_scan_infer_and_screenshot_with_a_preset_run_from_the_install(installed: dict[str, Path],
                                                                       data_dir: Path) -> None:
    series = data_dir / CT
    scan = _viewer(installed, "scan", str(series), "--json", "--no-index")
    assert scan.returncode == 0, scan.stderr[-3000:]
    assert "134" in scan.stdout and "CT" in scan.stdout

    infer = _viewer(installed, "infer", str(series), "--model", "organ-ct", "--slices", "60:62", "--json",
                    "--device", "cpu")
    assert infer.returncode == 0, infer.stderr[-3000:]
    result = json.loads(infer.stdout)
    assert "organ-ct" in json.dumps(result["model"]) and "CPU" in json.dumps(result)

    png = installed["tmp"] / "lung.png"
    shot = _viewer(installed, "screenshot", str(series), "--preset", "lung", "--out", str(png), "--size", "800x600")
    assert shot.returncode == 0, shot.stderr[-3000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = _viewer(installed, "screenshot", str(series), "--preset", "no-such", "--out", str(png))
    assert bad.returncode == 2 and "lung" in bad.stderr.lower()  # a clear message naming the known presets
