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
    "batch": "run models over an archive on Dask (infer) and score the results (evaluate)",
    "labels": "export or import labels (csv, json, seg, sr, nifti)",
    "screenshot": "render the viewer offscreen to a PNG",
    "export": "write a losslessly re-encoded copy of a series (rle, jpeg-ls, j2k, htj2k, jpeg-lossless)",
    "pacs": "DICOM networking: echo, find, get, send, listen (DIMSE and DICOMweb)",
}


def _command_module(name: str):
    return importlib.import_module(f"viewer.commands.{name}")


def version() -> str:
    """The installed distribution's version (package metadata); the source's when it is not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("dicom-viewer")
    except PackageNotFoundError:
        import viewer

        return viewer.__version__


USAGE = """dicom-viewer [PATH ...]         open the desktop application on folders, DICOM files or a DICOMDIR
       dicom-viewer COMMAND [...]      run a command headless (dicom-viewer COMMAND --help for its options)
       dicom-viewer --version"""


def main(argv: list[str]) -> int:
    if argv[:1] in (["-V"], ["--version"]):
        print(f"dicom-viewer {version()}")
        return 0
    if not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        # `dicom-viewer [PATH ...]`: the desktop application.
        from viewer.app import run_app

        return run_app(argv)
    parser = argparse.ArgumentParser(
        prog="dicom-viewer", usage=USAGE,
        description="DICOM viewer with embedded AI. Without a command, opens the desktop application on PATH "
        "(the study browser lists what it finds; the largest series opens first).")
    parser.add_argument("-V", "--version", action="version", version=f"dicom-viewer {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", prog="dicom-viewer")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # A command listed here whose module is missing is a packaging bug: fail loudly, never hide it.
        _command_module(name).add_arguments(p)
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
    finally:
        end_workers()


def end_workers() -> None:
    """End the worker processes a command started (decoder pools), also when ``main`` runs in-process
    (tests, scripts): nothing of a finished command keeps running. Imports nothing new."""
    import sys

    app = sys.modules.get("viewer.app")
    if app is not None:
        app.shutdown_workers()
    pool = sys.modules.get("viewer.io.decode_pool")
    if pool is not None:
        pool.shutdown_pool()
