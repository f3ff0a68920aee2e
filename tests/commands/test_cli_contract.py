"""The command line's contract: exit codes 0/1/2, sentences instead of tracebacks, help for every option."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest

from viewer.cli import COMMANDS, _command_module, main


def _actions(parser: argparse.ArgumentParser):  # type: ignore[no-untyped-def]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for _, a in _actions(sub):
                    yield name, a
        elif not isinstance(action, argparse._HelpAction):
            yield parser.prog, action


def test_every_option_of_every_command_has_help() -> None:
    missing = []
    for name in COMMANDS:
        parser = argparse.ArgumentParser(prog=name)
        _command_module(name).add_arguments(parser)
        missing += [f"{name} {where}: {a.option_strings or a.dest}" for where, a in _actions(parser)
                    if not (a.help or "").strip()]
    assert missing == []


def test_info_on_a_missing_path_says_not_found(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "/no/such/path", "--json"]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err


def test_scan_index_in_a_missing_folder_is_refused_not_created(tmp_path: Path, data_dir: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "typo" / "deeper" / "index.sqlite"
    assert main(["scan", str(data_dir / "dcm_qa" / "ts" / "In"), "--index", str(index)]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "typo").exists()


@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_batch_below_one_is_a_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["infer", "somewhere", "--model", "organ-ct", "--batch", value])
    assert exc.value.code == 2 and "--batch" in capsys.readouterr().err


def test_infer_slices_out_of_range_is_an_error(data_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "ct4"
    folder.mkdir()
    for f in sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[:4]:
        os.symlink(f, folder / f.name)
    for spec in ("500:600", "7", "3:1"):
        assert main(["infer", str(folder), "--model", "organ-ct", "--device", "cpu", "--slices", spec]) == 2
        err = capsys.readouterr().err
        assert "the series has 4 slices" in err or "selects no slice" in err
    assert main(["infer", str(folder), "--model", "organ-ct", "--device", "cpu", "--slices", "1:3"]) == 0


def test_evaluate_refuses_a_dataset_of_other_classes(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = data_dir / "labeled" / "pneumoniamnist.npz"
    assert main(["evaluate", "--model", "organ-ct", "--dataset", str(ds), "--limit", "50"]) == 2
    err = capsys.readouterr().err
    assert "normal, pneumonia" in err and "--force" in err


def test_evaluate_reports_accuracy_when_auc_is_undefined(tmp_path: Path, data_dir: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    z = np.load(data_dir / "labeled" / "organamnist.npz")
    pick = np.flatnonzero(z["test_labels"][:, 0] == 6)[:20]  # liver only: one class
    one = tmp_path / "liver_only.npz"
    np.savez(one, test_images=z["test_images"][pick], test_labels=z["test_labels"][pick])
    assert main(["evaluate", "--model", "organ-ct", "--dataset", str(one), "--force"]) == 0
    out = capsys.readouterr().out
    assert "accuracy  " in out and "AUC       n/a" in out


def test_app_without_a_display_says_so_in_one_line() -> None:
    from viewer.app import display_problem

    problem = display_problem({})
    if not os.sys.platform.startswith("linux"):
        pytest.skip("X11/Wayland are Linux/BSD notions")
    assert problem is not None and "no display" in problem and "\n" not in problem
    assert display_problem({"DISPLAY": ":0"}) is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
