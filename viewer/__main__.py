"""``python -m viewer`` and the ``dicom-viewer`` console script."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    if getattr(sys, "frozen", False):
        # The frozen app (PyInstaller) is also the program its spawned decoder processes run: this turns
        # such a start into the worker it was asked to be, before any argument parsing.
        import multiprocessing

        multiprocessing.freeze_support()
    from viewer.cli import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
