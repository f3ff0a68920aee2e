"""One numbering everywhere: ``--series N`` of ``infer`` and ``export`` names the series ``info --series N``
and ``scan``'s ``[N]`` name (counted from 1 in the scan's order), and out of range says ``outside 1..n``."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from tests.commands.test_infer import models  # noqa: F401  (the toy CT model, a fixture)
from viewer.cli import main
from viewer.commands.scan import print_tree
from viewer.io.series import find_stacks


@pytest.fixture(scope="module")
def folder(data_dir: Path) -> Path:
    """Three series with three different UIDs; the largest (the default) is not series 1."""
    return data_dir / "dcm_qa" / "sag" / "In"


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, json.loads(out) if rc == 0 else None, err


def test_infer_and_export_select_the_series_info_numbers(folder: Path, models: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    stacks = find_stacks(str(folder)).stacks
    assert len({s.series_uid for s in stacks}) == len(stacks) == 3
    for n in range(1, len(stacks) + 1):
        rc, info, _ = _json(capsys, "info", str(folder), "--series", str(n), "--json")
        assert rc == 0 and isinstance(info, list) and len(info) == 1 and info[0]["number"] == n
        uid = info[0]["series_uid"]
        assert uid == stacks[n - 1].series_uid
        rc, res, err = _json(capsys, "infer", str(folder), "--model", "toy-ct", "--models-dir", str(models),
                             "--device", "cpu", "--force", "--series", str(n), "--json")
        assert rc == 0, err
        assert isinstance(res, dict) and [s["series_uid"] for s in res["series"]] == [uid]
        out = tmp_path / f"export{n}"
        assert main(["export", str(folder), "--out", str(out), "--codec", "rle", "--series", str(n)]) == 0
        capsys.readouterr()
        written = sorted(out.rglob("*.dcm")) or sorted(p for p in out.rglob("*") if p.is_file())
        assert len(written) == len(stacks[n - 1].files)
        assert {pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID for p in written} == {uid}


@pytest.mark.parametrize("command", ["info", "infer", "export"])
@pytest.mark.parametrize("wanted", ["0", "4"])
def test_out_of_range_names_the_valid_numbers(folder: Path, models: Path, tmp_path: Path, command: str,
                                              wanted: str, capsys: pytest.CaptureFixture[str]) -> None:
    extra = {"info": [], "infer": ["--model", "toy-ct", "--models-dir", str(models), "--device", "cpu", "--force"],
             "export": ["--out", str(tmp_path / "out"), "--codec", "rle"]}[command]
    assert main([command, str(folder), *extra, "--series", wanted]) != 0
    assert f"series {wanted} is outside 1..3" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_scan_tree_numbers_stacks_as_series_n(folder: Path) -> None:
    import io

    result = find_stacks(str(folder))
    buf = io.StringIO()
    print_tree(result, buf)
    numbered = [line.strip().split("]")[0] + "]" for line in buf.getvalue().splitlines()
                if line.strip().startswith("[")]
    assert numbered == ["[1]", "[2]", "[3]"]
    for n, stack in enumerate(result.stacks, start=1):  # line [N] sits under the series of stack N
        text = buf.getvalue()
        assert text.index(f"uid={stack.series_uid}") < text.index(f"[{n}]")
