"""``manifest.toml``: reading and validating a model folder's description (schema version 1).

The format is documented for model authors in ``models/README.md``; this module is its definition.
Every problem raises :class:`viewer.ai.errors.ManifestError` naming the field (``input.shape``,
``preprocess[2].size``, ``sha256``) and the file. Checks against the ONNX graph itself (input/output
names, shapes, dtype) are in :func:`check_onnx_io`, called when a session is created.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viewer.ai.errors import ManifestError
from viewer.ai.preprocess import Op, _Fields, output_channels, parse_ops
from viewer.core.decision import describe

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.toml"
TASKS = ("classification", "image-to-image")
SCOPES = ("image", "roi")
DIMS = ("2d",)
LAYOUTS = ("NCHW",)
DTYPES = ("float32",)
ACTIVATIONS = ("softmax", "sigmoid", "none")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
# ONNX Runtime's type strings for the dtypes a manifest may name
ORT_TYPES = {"float32": "tensor(float)"}


@dataclass(frozen=True)
class AppliesTo:
    """Which series a model is meant for.

    Attributes
    ----------
    modalities
        DICOM Modality values, upper case (``("CT",)``).
    scope
        ``"image"``: a whole slice or radiograph; ``"roi"``: a box inside a slice (drawn by the user or
        given by a sliding window).
    dims
        ``"2d"``: one slice at a time (the only kind schema 1 knows).
    roi_size_mm
        For ``scope = "roi"``, the physical (rows, columns) size in mm of the field of view the model
        was trained on; the sliding window's default size. None when not given.

    body_parts
        Optional: canonical BodyPartExamined values (``("CHEST",)``); a series whose body part is another
        is refused, one without any is run with a warning. Scanner synonyms: :mod:`viewer.ai.applies`.
    view_positions
        Optional: ViewPosition values (``("PA", "AP")``); same rule.
    photometric
        Optional: Photometric Interpretation values the model takes (``("MONOCHROME1", "MONOCHROME2")``).
    min_size
        Optional: the smallest (rows, columns) in pixels the model is meant for.
    """

    modalities: tuple[str, ...]
    scope: str
    dims: str = "2d"
    roi_size_mm: tuple[float, float] | None = None
    body_parts: tuple[str, ...] = ()
    view_positions: tuple[str, ...] = ()
    photometric: tuple[str, ...] = ()
    min_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class InputSpec:
    """The network input: name, ``"NCHW"`` layout, shape with -1 for dynamic dims, dtype."""

    name: str
    layout: str
    shape: tuple[int, int, int, int]
    dtype: str
    tile: tuple[int, int] | None = None  # image-to-image: fixed (rows, columns) the image is cut into
    tile_overlap: int = 0                # image-to-image: pixels shared by neighbouring tiles (blended)

    @property
    def channels(self) -> int:
        return self.shape[1]


@dataclass(frozen=True)
class OutputSpec:
    """The network output (N, K): name, activation turning it into probabilities, K class labels, and the
    operating point: ``threshold`` (two classes: the second label is predicted when its probability is at
    or above it) or ``bias`` (K numbers added to log-probabilities before the arg-max); neither: arg-max.
    An image-to-image model's output is an image (N, C, H, W): no activation (``"none"``), no labels."""

    name: str
    activation: str
    labels: tuple[str, ...]
    threshold: float | None = None
    bias: tuple[float, ...] | None = None

    @property
    def decision(self) -> str:
        """The rule in words, for every place that shows a prediction."""
        return describe(self.labels, self.threshold, self.bias)


@dataclass(frozen=True)
class Manifest:
    """A validated ``manifest.toml``. ``folder`` is where it was read from; ``model_path`` the ONNX file."""

    schema_version: int
    id: str
    name: str
    version: str
    file: str
    sha256: str
    task: str
    intended_use: str
    applies_to: AppliesTo
    input: InputSpec
    preprocess: tuple[Op, ...]
    output: OutputSpec
    folder: Path

    @property
    def model_path(self) -> Path:
        return self.folder / self.file

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST_NAME

    @property
    def title(self) -> str:
        """``"name version"``: what every overlay shows to say which model made it."""
        return f"{self.name} {self.version}"


def _table(root: Mapping[str, Any], key: str, path: Path) -> Mapping[str, Any]:
    if key not in root:
        raise ManifestError(key, f"missing table [{key}]", path)
    v = root[key]
    if not isinstance(v, dict):
        raise ManifestError(key, f"must be a table [{key}], got {type(v).__name__}", path)
    return v


def _strings(f: _Fields, key: str, *, nonempty: bool = True) -> tuple[str, ...]:
    f.used.add(key)
    if key not in f.table:
        raise f.err(key, "missing (a list of strings)")
    v = f.table[key]
    if not isinstance(v, list) or any(not isinstance(x, str) or not x for x in v) or (nonempty and not v):
        raise f.err(key, f"must be a non-empty list of non-empty strings, got {v!r}")
    return tuple(v)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def parse_manifest(data: Mapping[str, Any], folder: Path, path: Path | None = None) -> Manifest:
    """Validate an already-parsed TOML mapping (``path`` is only used in messages)."""
    path = path or folder / MANIFEST_NAME
    top = _Fields(data, "", path)
    sv = top.integer("schema_version")
    if sv != SCHEMA_VERSION:
        raise top.err("schema_version", f"this viewer reads schema_version {SCHEMA_VERSION}, got {sv}")
    model_id = top.string("id")
    if not _ID.match(model_id):
        raise top.err("id", f"must be lower-case letters, digits, '.', '_' or '-' (at most 64), got {model_id!r}")
    name, version = top.string("name"), top.string("version")
    file = top.string("file")
    if Path(file).name != file or file in (".", ".."):
        raise top.err("file", f"must be a file name inside the model folder, got {file!r}")
    sha = top.string("sha256").lower()
    if not _SHA.match(sha):
        raise top.err("sha256", "must be 64 hexadecimal digits (sha256sum of the ONNX file)")
    task = top.string("task", TASKS)
    intended_use = top.string("intended_use")
    top.used.update(("applies_to", "input", "preprocess", "output"))
    top.no_unknown()

    at = _Fields(_table(data, "applies_to", path), "applies_to", path)
    modalities = tuple(m.upper() for m in _strings(at, "modalities"))
    scope = at.string("scope", SCOPES)
    dims = at.string("dims", DIMS, default="2d")
    roi_mm: tuple[float, float] | None = None
    if at.has("roi_size_mm"):
        v = at.numbers("roi_size_mm", length=2, positive=True)
        roi_mm = (v[0], v[1])
    body_parts = tuple(b.upper() for b in _strings(at, "body_parts")) if at.has("body_parts") else ()
    views = tuple(b.upper() for b in _strings(at, "view_positions")) if at.has("view_positions") else ()
    photometric = tuple(b.upper() for b in _strings(at, "photometric")) if at.has("photometric") else ()
    min_size: tuple[int, int] | None = None
    if at.has("min_size"):
        ms = at.integers("min_size", length=2, minimum=1)
        min_size = (ms[0], ms[1])
    at.no_unknown()
    applies = AppliesTo(modalities, scope, dims, roi_mm, body_parts, views, photometric, min_size)

    inp = _Fields(_table(data, "input", path), "input", path)
    in_name = inp.string("name")
    layout = inp.string("layout", LAYOUTS)
    shape = inp.integers("shape", length=4)
    if any(d == 0 or d < -1 for d in shape):
        raise inp.err("shape", f"dimensions must be positive or -1 (dynamic), got {shape}")
    dtype = inp.string("dtype", DTYPES)
    tile: tuple[int, int] | None = None
    overlap = 0
    if task == "image-to-image":
        t = inp.integers("tile", length=2, minimum=8)
        tile = (t[0], t[1])
        overlap = inp.integer("tile_overlap", minimum=0) if inp.has("tile_overlap") else 0
        if 2 * overlap >= min(tile):
            raise inp.err("tile_overlap", f"must be less than half the tile {list(tile)}, got {overlap}")
    inp.no_unknown()
    if shape[1] == -1:
        raise inp.err("shape", "the channel dimension (index 1 of NCHW) must be fixed")
    in_spec = InputSpec(in_name, layout, (shape[0], shape[1], shape[2], shape[3]), dtype, tile, overlap)

    ops = parse_ops(data.get("preprocess"), path)

    out = _Fields(_table(data, "output", path), "output", path)
    if task == "image-to-image":
        out_spec = OutputSpec(out.string("name"), "none", ())
        out.no_unknown()
        _check_image_to_image(ops, path)
    else:
        out_spec = _classifier_output(out)

    # The channel count the pipeline produces must be what the network takes, for grey or RGB input.
    if in_spec.channels not in (output_channels(ops, 1), output_channels(ops, 3)):
        raise ManifestError("input.shape", f"the network takes {in_spec.channels} channels but the preprocess "
                            f"steps give {output_channels(ops, 1)} (grey) or {output_channels(ops, 3)} (RGB)", path)
    sizes = [op.params["size"] for op in ops if op.name == "resize"]
    if sizes and any(s != -1 for s in shape[2:]):
        last = sizes[-1]
        for axis, (want, got) in enumerate(zip(shape[2:], last)):
            if want != -1 and want != got:
                raise ManifestError("input.shape", f"dimension {axis + 2} is {want} but the last resize "
                                    f"gives {got}", path)
    return Manifest(sv, model_id, name, version, file, sha, task, intended_use, applies, in_spec, ops,
                    out_spec, folder)


def _classifier_output(out: _Fields) -> OutputSpec:
    name, activation, labels = out.string("name"), out.string("activation", ACTIVATIONS), _strings(out, "labels")
    if len(set(labels)) != len(labels):
        raise out.err("labels", "labels must be unique")
    threshold: float | None = None
    bias: tuple[float, ...] | None = None
    if out.has("threshold") and out.has("bias"):
        raise out.err("threshold", "give a threshold or a bias, not both")
    if out.has("threshold"):
        threshold = out.number("threshold")
        if len(labels) != 2:
            raise out.err("threshold", f"a threshold needs exactly 2 labels, there are {len(labels)} (use bias)")
        if not 0.0 < threshold < 1.0:
            raise out.err("threshold", f"must be a probability strictly between 0 and 1, got {threshold}")
    if out.has("bias"):
        b = out.numbers("bias", length=len(labels))
        bias = tuple(b)
    out.no_unknown()
    return OutputSpec(name, activation, labels, threshold, bias)


# Image-to-image models get modality values through affine steps only, so the engine can map their output
# back to modality units with the inverse of the same steps.
_AFFINE_OPS = ("scale", "normalize")


def _check_image_to_image(ops: Sequence[Op], path: Path) -> None:
    for i, op in enumerate(ops):
        if op.name not in _AFFINE_OPS or (op.name == "scale" and (op.params["mode"] != "fixed" or op.params["clip"])):
            raise ManifestError(f"preprocess[{i}].op", "an image-to-image model takes only scale (mode = \"fixed\", "
                                "clip = false) and normalize steps, which the viewer inverts on its output", path)


def load_manifest(path: str | Path, *, verify_file: bool = True) -> Manifest:
    """Read and validate a model folder's ``manifest.toml``.

    Parameters
    ----------
    path
        The model folder, or its ``manifest.toml``.
    verify_file
        Also check that the ONNX file exists and its SHA-256 equals ``sha256`` (a mismatch refuses the
        model: the weights are not the ones the manifest and its reference outputs describe).

    Raises
    ------
    ManifestError
        Naming the field and file at fault.
    """
    p = Path(path)
    folder, mpath = (p, p / MANIFEST_NAME) if p.is_dir() else (p.parent, p)
    try:
        with open(mpath, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ManifestError(MANIFEST_NAME, "file not found", mpath) from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError("(toml)", f"not valid TOML: {exc}", mpath) from None
    except OSError as exc:
        raise ManifestError(MANIFEST_NAME, f"cannot be read: {exc.strerror or exc}", mpath) from None
    m = parse_manifest(data, folder, mpath)
    if verify_file:
        verify_sha256(m)
    return m


def verify_sha256(m: Manifest) -> None:
    """Raise ManifestError (field ``file`` or ``sha256``) unless the ONNX file exists with the stated hash."""
    if not m.model_path.is_file():
        raise ManifestError("file", f"{m.file!r} not found in {m.folder}", m.manifest_path)
    actual = sha256_of(m.model_path)
    if actual != m.sha256:
        raise ManifestError("sha256", f"the manifest says {m.sha256} but {m.file} hashes to {actual}; the file "
                            "is not the one the manifest describes", m.model_path)


def _onnx_dims(shape: Sequence[Any]) -> list[int]:
    """ORT shapes hold ints for fixed dims and strings/None for symbolic ones: map those to -1."""
    return [d if isinstance(d, int) and d > 0 else -1 for d in shape]


def check_onnx_io(m: Manifest, inputs: Sequence[Any], outputs: Sequence[Any]) -> None:
    """Compare the manifest's ``[input]``/``[output]`` with the graph's (ORT ``NodeArg``-like objects
    with ``name``, ``shape``, ``type``). Raises ManifestError naming the disagreeing field."""
    where = m.model_path
    by_name = {i.name: i for i in inputs}
    if m.input.name not in by_name:
        raise ManifestError("input.name", f"{m.input.name!r} is not an input of {m.file} (it has "
                            f"{', '.join(repr(n) for n in by_name)})", where)
    if len(inputs) != 1:
        raise ManifestError("input.name", f"{m.file} has {len(inputs)} inputs; the viewer feeds exactly one", where)
    arg = by_name[m.input.name]
    if arg.type != ORT_TYPES[m.input.dtype]:
        raise ManifestError("input.dtype", f"manifest says {m.input.dtype} but {m.file} takes {arg.type}", where)
    dims = _onnx_dims(arg.shape)
    if len(dims) != 4 or list(m.input.shape) != dims:
        raise ManifestError("input.shape", f"manifest says {list(m.input.shape)} but {m.file} has {dims} "
                            "(-1 = dynamic)", where)
    out_by_name = {o.name: o for o in outputs}
    if m.output.name not in out_by_name:
        raise ManifestError("output.name", f"{m.output.name!r} is not an output of {m.file} (it has "
                            f"{', '.join(repr(n) for n in out_by_name)})", where)
    out = out_by_name[m.output.name]
    if out.type != "tensor(float)":
        raise ManifestError("output.name", f"{m.output.name!r} is {out.type}, expected tensor(float)", where)
    odims = _onnx_dims(out.shape)
    if m.task == "image-to-image":
        if len(odims) != 4 or (odims[1] != -1 and odims[1] != m.input.channels):
            raise ManifestError("output.name", f"{m.output.name!r} has shape {odims}; an image-to-image model gives "
                                f"(N, {m.input.channels}, H, W)", where)
        return
    if len(odims) != 2:
        raise ManifestError("output.name", f"{m.output.name!r} has shape {odims}; a classifier gives (N, K)", where)
    if odims[1] != -1 and odims[1] != len(m.output.labels):
        raise ManifestError("output.labels", f"{len(m.output.labels)} labels but {m.file} gives {odims[1]} "
                            "scores per image", where)
