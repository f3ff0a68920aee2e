"""``python -m viewer export PATH --out FOLDER --codec CODEC [--series S] [--deidentify]``: a losslessly
re-encoded copy of one series, every file verified bit-exact after writing."""

from __future__ import annotations

import argparse
import sys

CODEC_NAMES = ("rle", "jpeg-ls", "j2k", "htj2k", "jpeg-lossless")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="+", help="folder, DICOM file(s) or DICOMDIR holding the series")
    parser.add_argument("--out", required=True, help="folder to write the copy into (created if missing; "
                        "must not be the series' own folder)")
    parser.add_argument("--codec", required=True, choices=CODEC_NAMES,
                        help="lossless transfer syntax: RLE, JPEG-LS, JPEG 2000, HTJ2K or JPEG Lossless SV1")
    parser.add_argument("--series", metavar="UID_OR_N",
                        help="which series: its SeriesInstanceUID, or its number N counted from 1 in the scan's "
                        "order, as the viewer, `scan` and `info` number them (default: the largest)")
    parser.add_argument("--deidentify", action="store_true",
                        help="apply the PS3.15 Basic Profile (pseudonyms, remapped UIDs, files named "
                             "IMG00001.dcm, ...) with this user's key, as labels export does")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files already in --out (source files are never replaced)")


def run(args: argparse.Namespace) -> int:
    from viewer.io import LoadError
    from viewer.io.export import export_series
    from viewer.io.load import select_stack

    paths = args.path if len(args.path) > 1 else args.path[0]
    try:
        stack = select_stack(paths, args.series)
    except LoadError as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 1
    transform = None
    if args.deidentify:
        from viewer.annotations.deid import Deidentifier, user_secret

        transform = Deidentifier(user_secret()).dataset
    files = list(stack.files)
    print(f"exporting {len(files)} file(s) of series {stack.series_uid or '(no UID)'} as {args.codec} "
          f"to {args.out}", file=sys.stderr)
    try:
        report = export_series(files, args.out, args.codec, transform=transform, rename=args.deidentify,
                               overwrite=args.overwrite)
    except LoadError as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"export: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0
