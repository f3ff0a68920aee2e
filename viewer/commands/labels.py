"""``python -m viewer labels``: export and import labels, ROIs and masks; list label sets.

    labels export --format csv|json  [--store DB] [--label-set NAME] [--series-uid UID] --out FILE [--deidentify]
    labels export --format seg|nifti --series PATH [--label-set NAME] --out FILE [--deidentify]
    labels export --format sr        --series PATH --out FILE [--deidentify]
    labels import --format csv|json  FILE [--store DB]
    labels import --format seg|nifti FILE --series PATH --label-set NAME [--annotator NAME]
    labels import --format sr        FILE [--annotator NAME]
    labels sets [--json]

The store defaults to the user's (``$VIEWER_DATA_DIR/labels.sqlite``). SEG, SR and NIfTI need the
series the masks and ROIs were drawn on (``--series``: a folder or files, loaded with ``viewer.io``).
``--deidentify`` applies the DICOM PS3.15 Basic Profile with the user's key (``--deid-key`` to share
one), so UIDs map the same way in every export. Exit status: 0 done, 2 bad input (message on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import sys
from pathlib import Path
from typing import Any

FORMATS = ("csv", "json", "seg", "sr", "nifti")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", type=Path, help="label store file (default: the user's store)")
    common.add_argument("--series", metavar="PATH",
                        help="DICOM folder or file of the series (needed for seg, sr, nifti)")
    common.add_argument("--label-set", metavar="NAME", help="label set name (or file stem)")

    exp = sub.add_parser("export", parents=[common], help="write labels, ROIs or masks to a file")
    exp.add_argument("--format", choices=FORMATS, required=True,
                     help="csv/json: labels and ROIs; seg: masks as DICOM SEG; sr: ROIs as DICOM SR TID 1500; "
                     "nifti: masks as a label map (+ .labels.json names)")
    exp.add_argument("--out", type=Path, required=True, help="output file")
    exp.add_argument("--series-uid", help="only labels of this SeriesInstanceUID (csv, json)")
    exp.add_argument("--deidentify", action="store_true", help="DICOM PS3.15 Basic Profile de-identification")
    exp.add_argument("--deid-key", type=Path, help="key file for consistent UID remapping (default: the user's)")
    exp.add_argument("--force", action="store_true", help="replace an existing output file")
    exp.add_argument("--shift-dates", action="store_true",
                     help="with --deidentify: shift dates by a per-patient offset kept in the key file "
                          "(PS3.15 Retain Longitudinal Temporal Information with Modified Dates) instead of "
                          "removing them")
    exp.add_argument("--accept-burned-in", action="store_true",
                     help="with --deidentify: export even when a source image says BurnedInAnnotation YES "
                          "(text in its pixels that header de-identification cannot remove)")

    imp = sub.add_parser("import", parents=[common], help="read labels, ROIs or masks into the store")
    imp.add_argument("--format", choices=FORMATS, required=True, help="format of FILE")
    imp.add_argument("file", type=Path, help="file to import")
    imp.add_argument("--annotator", help="annotator recorded for imported masks/ROIs (default: login name)")

    sets = sub.add_parser("sets", help="list the available label sets")
    sets.add_argument("--json", action="store_true", help="machine-readable output")


class _UserError(Exception):
    pass


def run(args: argparse.Namespace) -> int:
    from viewer.annotations.labelsets import LabelSetError
    from viewer.annotations.nifti import NiftiError
    from viewer.annotations.seg import SegExportError
    from viewer.annotations.sr import SrError
    from viewer.annotations.store import StoreError
    from viewer.annotations.tabular import LabelFileError
    from viewer.io.errors import LoadError

    from viewer.core.atomic import OutputRefused

    try:
        if args.action == "sets":
            return _sets(args)
        if args.action == "export":
            return _export(args)
        return _import(args)
    except (_UserError, LabelFileError, LabelSetError, NiftiError, SegExportError, SrError, StoreError, LoadError,
            KeyError, OutputRefused) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except OSError as exc:  # the export itself failed (disk full, permission): any earlier file is intact
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: writing failed{where}: {exc.strerror or exc}; nothing was replaced", file=sys.stderr)
        return 1


# -- helpers ---------------------------------------------------------------------------------------------
def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from viewer.annotations.store import LabelStore

    return LabelStore(args.store)


def _label_set(args: argparse.Namespace, required: bool = False):  # type: ignore[no-untyped-def]
    from viewer.annotations.labelsets import get_label_set

    if args.label_set is None:
        if required:
            raise _UserError(f"--label-set is needed for --format {args.format}")
        return None
    return get_label_set(args.label_set)


class _Series:
    """The series a mask/ROI export refers to: its Volume geometry and the headers of its images (z order)."""

    def __init__(self, path: str | None, fmt: str) -> None:
        if not path:
            raise _UserError(f"--series PATH is needed for --format {fmt}")
        from viewer.annotations.roi_geometry import slice_keys
        from viewer.io import load_series

        self.volume = load_series(path)
        self.keys = slice_keys(self.volume)
        self.series_uid = self.volume.series_uid
        self._sources: tuple[list[Any], list[int] | None] | None = None

    def sources(self) -> tuple[list[Any], list[int] | None]:
        """Headers of the source images (z order) and, for one multi-frame file, each z's frame number."""
        if self._sources is None:
            import pydicom

            files: list[str] = self.volume.info.files
            if len(set(files)) == len(files):
                self._sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in files], None
            else:
                ds = pydicom.dcmread(files[0], stop_before_pixels=True) if len(set(files)) == 1 else None
                if ds is None or int(ds.get("NumberOfFrames", 1) or 1) < 2:
                    raise _UserError("this series holds several slices per file that are not DICOM frames "
                                     "(a mosaic?): SEG/SR cannot reference them; export csv, json or nifti")
                # One enhanced multi-frame file: a SEG references its frames by number.
                self._sources = [ds], [k.frame for k in self.keys]
        return self._sources


def _deidentifier(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    if not args.deidentify:
        return None
    from viewer.annotations.deid import Deidentifier, user_secret

    return Deidentifier(user_secret(args.deid_key), shift_dates=args.shift_dates)


def _known_sets() -> dict[str, list[str]]:
    from viewer.annotations.labelsets import available_label_sets

    sets, _errors = available_label_sets()
    return {name: list(ls.names) for name, ls in sets.items()}


# -- actions ---------------------------------------------------------------------------------------------
def _sets(args: argparse.Namespace) -> int:
    from viewer.annotations.labelsets import available_label_sets

    sets, errors = available_label_sets()
    if args.json:
        print(json.dumps({"label_sets": [{"name": s.name, "scope": s.scope, "path": str(s.path),
                                          "labels": [{"name": lab.name, "color": lab.color, "key": lab.key}
                                                     for lab in s.labels]} for s in sets.values()],
                          "errors": errors}, indent=1))
    else:
        for s in sets.values():
            print(f"{s.name} ({s.scope}, {s.path}): " + ", ".join(
                f"{lab.key + '=' if lab.key else ''}{lab.name}" for lab in s.labels))
        for e in errors:
            print(f"warning: {e}", file=sys.stderr)
    return 0


def _check_out(args: argparse.Namespace, store: Any, sources: list[str]) -> None:
    """Refuse (before any work is written) an --out that exists without --force, lies in a missing folder,
    or is the label store, the scan index or a DICOM file of the series: the export would destroy it."""
    from viewer.core.atomic import check_output
    from viewer.io.index import default_index_path

    check_output(args.out, overwrite=args.force, protected=[store.path, default_index_path(), *sources])


def _check_burned_in(args: argparse.Namespace, series: _Series) -> None:
    """A de-identified export of a series whose images say BurnedInAnnotation YES needs an opt-in: the
    text in those pixels (names, dates) is not touched by header de-identification."""
    from viewer.annotations.deid import burned_in

    marked = burned_in(series.sources()[0])
    if not marked:
        return
    msg = (f"{len(marked)} source image(s) say BurnedInAnnotation YES: identifying text may be burned into "
           "their pixels, which de-identification does not remove")
    if not args.accept_burned_in:
        raise _UserError(msg + "; check the images, then add --accept-burned-in to export anyway")
    print(f"warning: {msg}", file=sys.stderr)


def _export(args: argparse.Namespace) -> int:
    from viewer.annotations import tabular

    deid = _deidentifier(args)
    ls = _label_set(args)
    set_name = ls.name if ls is not None else None
    with _store(args) as store:
        _check_out(args, store, [])
        if args.format in ("csv", "json"):
            labels = store.labels(set_name, args.series_uid)
            uid_map = deid.uid if deid is not None else None
            if deid is not None:  # annotators' login names are people's names too
                labels = [dataclasses.replace(lab, annotator=deid.person(lab.annotator)) for lab in labels]
            if args.format == "csv":
                n = tabular.labels_to_csv(labels, args.out, uid_map=uid_map)
                print(f"exported {n} labels to {args.out}")
            else:
                rois = [r for r in store.rois(args.series_uid, set_name)]
                if deid is not None:
                    rois = [dataclasses.replace(r, annotator=deid.person(r.annotator)) for r in rois]
                n = tabular.labels_to_json(labels, args.out, rois=rois, uid_map=uid_map)
                print(f"exported {n} labels and {len(rois)} ROIs to {args.out}")
            return 0
        series = _Series(args.series, args.format)
        _check_out(args, store, list(series.volume.metadata.get("files") or []))
        if deid is not None:
            _check_burned_in(args, series)
        if args.format == "sr":
            return _export_sr(args, store, series, set_name, deid)
        pairs = [(s, lab) for s, lab in store.mask_labels(series.series_uid) if set_name in (None, s)]
        if not pairs:
            raise _UserError(f"no masks saved for series {series.series_uid or '(no UID)'}"
                             + (f" in label set {set_name!r}" if set_name else ""))
        masks = [(s, lab, store.load_mask(series.series_uid, s, lab, series.volume.shape)) for s, lab in pairs]
    if args.format == "nifti":
        return _export_nifti(args, series, masks)
    return _export_seg(args, series, masks, deid)


def _label_def(set_name: str, label: str):  # type: ignore[no-untyped-def]
    from viewer.annotations.labelsets import get_label_set

    try:
        return get_label_set(set_name).by_name(label)
    except KeyError:
        return None


def _export_seg(args: argparse.Namespace, series: _Series, masks: list[Any], deid: Any) -> int:
    from viewer.annotations.seg import Segment, write_seg

    segments = []
    for s, lab, mask in masks:
        d = _label_def(s, lab)
        segments.append(Segment(lab if len({m[0] for m in masks}) == 1 else f"{s}: {lab}", mask,
                                d.color if d else "#ff0000", d.code if d else None))
    datasets, frame_numbers = series.sources()
    write_seg(args.out, datasets, segments, frame_numbers=frame_numbers, creator=_annotator(None),
              deidentifier=deid)
    print(f"exported {len(segments)} segments over {len(series.keys)} images to {args.out}")
    return 0


def _export_nifti(args: argparse.Namespace, series: _Series, masks: list[Any]) -> int:
    import numpy as np

    from viewer.annotations.nifti import write_label_map

    if len(masks) > 65535:
        raise _UserError("too many labels for one label map")
    labels = np.zeros(series.volume.shape, dtype=np.uint16 if len(masks) > 255 else np.uint8)
    names: dict[int, str] = {}
    for value, (s, lab, mask) in enumerate(masks, start=1):
        labels[mask] = value  # overlapping masks: the later label wins (a label map holds one value)
        names[value] = lab if len({m[0] for m in masks}) == 1 else f"{s}: {lab}"
    write_label_map(args.out, labels, series.volume.affine, names)
    print(f"exported {len(masks)} labels as a {series.volume.shape} label map to {args.out}")
    return 0


def _export_sr(args: argparse.Namespace, store: Any, series: _Series, set_name: str | None, deid: Any) -> int:
    from viewer.annotations.sr import write_sr

    rois = store.rois(series.series_uid, set_name)
    if not rois:
        raise _UserError(f"no ROIs or measurements saved for series {series.series_uid or '(no UID)'}")

    def code_of(s: str, lab: str):  # type: ignore[no-untyped-def]
        d = _label_def(s, lab)
        return d.code if d else None

    observers = sorted({r.annotator for r in rois if r.annotator})
    write_sr(args.out, series.sources()[0], rois, code_of=code_of, observer=observers[0] if observers else "",
             deidentifier=deid)
    print(f"exported {len(rois)} ROIs to {args.out}")
    return 0


def _annotator(name: str | None) -> str:
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _import(args: argparse.Namespace) -> int:
    from viewer.annotations import tabular

    if not args.file.is_file():
        raise _UserError(f"{args.file}: no such file")
    with _store(args) as store:
        if args.format in ("csv", "json"):
            n_labels, n_rois = tabular.import_labels(store, args.file, args.format, known=_known_sets())
            print(f"imported {n_labels} labels and {n_rois} ROIs from {args.file}")
            return 0
        if args.format == "sr":
            from viewer.annotations.sr import read_sr

            rois = read_sr(args.file, annotator=args.annotator or "")
            store.put_rois(rois)
            print(f"imported {len(rois)} ROIs from {args.file}")
            return 0
        ls = _label_set(args, required=True)
        series = _Series(args.series, args.format)
        masks = _read_masks(args, series, ls)
        annotator = _annotator(args.annotator)
        for label, mask in masks.items():  # all validated above; each label is one transaction
            store.save_mask(series.series_uid, ls.name, label, mask, series.keys, annotator=annotator)
    print(f"imported {len(masks)} masks ({', '.join(masks)}) from {args.file}")
    return 0


def _read_masks(args: argparse.Namespace, series: _Series, ls: Any) -> dict[str, Any]:
    import numpy as np

    if args.format == "seg":
        from viewer.annotations.seg import read_seg

        masks = read_seg(args.file, *series.sources())
    else:
        from viewer.annotations.nifti import read_label_map

        labels, _ = read_label_map(args.file, series.volume.affine, series.volume.shape)
        sidecar = Path(str(args.file) + ".labels.json")
        names = ({int(k): v for k, v in json.loads(sidecar.read_text()).items()} if sidecar.is_file()
                 else {n: name for n, name in enumerate(ls.names, start=1)})
        masks = {}
        for value in (int(v) for v in np.unique(labels) if v != 0):
            if value not in names:
                raise _UserError(f"{args.file}: label value {value} has no name (label set {ls.name!r} has "
                                 f"{len(ls.names)} labels; add a .labels.json sidecar)")
            masks[names[value]] = labels == value
    unknown = [m for m in masks if m not in ls.names]
    if unknown:
        raise _UserError(f"{args.file}: label(s) {', '.join(map(repr, unknown))} are not in label set {ls.name!r} "
                         f"({', '.join(ls.names)})")
    return masks
