"""Command-line entry: ``python -m viewer [PATH]`` opens the desktop app; subcommands run headless.

Each subcommand lives in ``viewer/commands/<name>.py`` and exposes ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs (their heavy imports are
inside ``run``), so ``--help`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib

# name -> one-line help. Order is the order shown in --help.
COMMANDS: dict[str, str] = {
    "scan": "index DICOM files: patients -> studies -> series, with counts and warnings",
    "info": "geometry and values of each loadable series (JSON)",
    "infer": "run a model on a series and print its predictions",
    "evaluate": "score a model on a labelled dataset or label file",
    "labels": "export or import labels (csv, json, seg, sr, nifti)",
    "screenshot": "render the viewer offscreen to a PNG",
    "export": "write a losslessly re-encoded copy of a series (rle, jpeg-ls, j2k, htj2k, jpeg-lossless)",
}


def _command_module(name: str):
    return importlib.import_module(f"viewer.commands.{name}")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        # `dicom-viewer [PATH ...]`: the desktop application.
        from viewer.app import run_app

        return run_app(argv)
    parser = argparse.ArgumentParser(prog="python -m viewer", description="DICOM viewer with embedded AI. "
                                     "Without a command, opens the desktop application on PATH.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = _command_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != f"viewer.commands.{name}":
                raise
            continue  # command not built yet
        module.add_arguments(p)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(_command_module(args.command).run(args) or 0)
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error of ours; keep Python from complaining at exit.
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
