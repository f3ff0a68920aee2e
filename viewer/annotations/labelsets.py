"""Label sets: the names, colours, keys and scope a labeling session offers, read from TOML.

File format (one set per file)::

    name = "Image quality"            # shown in the UI; unique among the sets a user has
    scope = "image"                   # image | series | roi: what one label is attached to
    description = "optional text"

    [[labels]]
    name = "diagnostic"               # unique in the set
    color = "#2ca02c"                 # #RRGGBB
    key = "1"                         # optional: one character or F1..F12, unique in the set
    code = { scheme = "SCT", value = "10200004", meaning = "Liver" }   # optional, for DICOM SEG/SR

Defaults live in ``resources/label_sets/``; a user's own sets in ``<config dir>/label_sets/`` (see
:mod:`viewer.annotations.paths`) and replace a default with the same name.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viewer.annotations.paths import RESOURCES, config_dir

SCOPES = ("image", "series", "roi")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_FKEY = re.compile(r"^F([1-9]|1[0-2])$")


class LabelSetError(ValueError):
    """A label set file is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class Code:
    """A coded concept (DICOM PS3.3 8.8): coding scheme designator, code value, code meaning."""

    scheme: str
    value: str
    meaning: str


@dataclass(frozen=True)
class LabelDef:
    """One choice in a label set."""

    name: str
    color: str
    key: str | None = None
    code: Code | None = None

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as 0..255 integers."""
        return int(self.color[1:3], 16), int(self.color[3:5], 16), int(self.color[5:7], 16)


@dataclass(frozen=True)
class LabelSet:
    """A named, ordered set of labels with one scope."""

    name: str
    scope: str
    labels: tuple[LabelDef, ...]
    description: str = ""
    path: Path | None = field(default=None, compare=False)

    def by_name(self, name: str) -> LabelDef:
        """The label called ``name``; KeyError listing the known names otherwise."""
        for lab in self.labels:
            if lab.name == name:
                return lab
        raise KeyError(f"label set {self.name!r} has no label {name!r}; known: {', '.join(self.names)}")

    def by_key(self, key: str) -> LabelDef | None:
        """The label bound to keyboard ``key`` ("1", "a", "F2"), None when no label uses it."""
        for lab in self.labels:
            if lab.key is not None and lab.key == key:
                return lab
        return None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(lab.name for lab in self.labels)

    def index(self, name: str) -> int:
        """1-based position of label ``name`` (the segment number in DICOM SEG, the value in a label map)."""
        self.by_name(name)  # raises with the known names
        return self.names.index(name) + 1


def _str(table: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    if key not in table:
        if required:
            raise LabelSetError(f"{where}: missing required field '{key}'")
        return None
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        raise LabelSetError(f"{where}: field '{key}' must be a non-empty string, got {value!r}")
    return value.strip()


def parse_label_set(table: dict[str, Any], source: str = "<label set>", path: Path | None = None) -> LabelSet:
    """Validate a decoded TOML/JSON table and build the :class:`LabelSet`.

    Raises
    ------
    LabelSetError
        With the file (``source``) and the offending field, e.g. ``labels[2].color``.
    """
    name = _str(table, "name", source)
    scope = _str(table, "scope", source, required=False) or "image"
    if scope not in SCOPES:
        raise LabelSetError(f"{source}: field 'scope' must be one of {', '.join(SCOPES)}, got {scope!r}")
    description = _str(table, "description", source, required=False) or ""
    entries = table.get("labels")
    if not isinstance(entries, list) or not entries:
        raise LabelSetError(f"{source}: field 'labels' must be a non-empty array of tables ([[labels]])")
    labels: list[LabelDef] = []
    seen_names: set[str] = set()
    seen_keys: dict[str, str] = {}
    for n, entry in enumerate(entries):
        where = f"{source}: labels[{n}]"
        if not isinstance(entry, dict):
            raise LabelSetError(f"{where}: must be a table with name and color")
        lname = _str(entry, "name", where)
        assert lname is not None
        if lname in seen_names:
            raise LabelSetError(f"{where}.name: duplicate label name {lname!r}")
        seen_names.add(lname)
        color = _str(entry, "color", where)
        if not _COLOR.match(color or ""):
            raise LabelSetError(f"{where}.color: {color!r} is not a colour of the form #RRGGBB")
        key = entry.get("key")
        if key is not None:
            if not isinstance(key, str) or not (len(key) == 1 and key.isprintable() and key != " "
                                                 or _FKEY.match(key)):
                raise LabelSetError(f"{where}.key: {key!r} must be one printable character or F1..F12")
            if key in seen_keys:
                raise LabelSetError(f"{where}.key: key {key!r} is already used by label {seen_keys[key]!r}")
            seen_keys[key] = lname
        code = None
        if "code" in entry:
            c = entry["code"]
            if not isinstance(c, dict):
                raise LabelSetError(f"{where}.code: must be a table {{scheme, value, meaning}}")
            parts = [_str(c, k, f"{where}.code") for k in ("scheme", "value", "meaning")]
            code = Code(*(p or "" for p in parts))
        labels.append(LabelDef(lname, (color or "").lower(), key, code))
    return LabelSet(name or "", scope, tuple(labels), description, path)


def load_label_set(path: str | Path) -> LabelSet:
    """Read one label set file (``.toml``).

    Raises
    ------
    LabelSetError
        When the file cannot be read, is not valid TOML (with line and column), or a field is wrong.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            table = tomllib.load(fh)
    except OSError as exc:
        raise LabelSetError(f"{path}: cannot read label set: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise LabelSetError(f"{path}: not valid TOML: {exc}") from exc
    return parse_label_set(table, str(path), path)


def label_set_dirs() -> list[Path]:
    """Folders searched for label sets, later ones overriding earlier ones by set name."""
    return [RESOURCES / "label_sets", config_dir() / "label_sets"]


def available_label_sets() -> tuple[dict[str, LabelSet], list[str]]:
    """All label sets by name (user sets replace defaults of the same name) and the errors of bad files.

    A bad user file must not hide the good ones, so errors are returned, not raised.
    """
    sets: dict[str, LabelSet] = {}
    errors: list[str] = []
    for folder in label_set_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                ls = load_label_set(path)
            except LabelSetError as exc:
                errors.append(str(exc))
                continue
            sets[ls.name] = ls
    return sets, errors


def get_label_set(name: str) -> LabelSet:
    """The available label set called ``name`` (or whose file stem is ``name``)."""
    sets, errors = available_label_sets()
    if name in sets:
        return sets[name]
    for ls in sets.values():
        if ls.path is not None and ls.path.stem == name:
            return ls
    hint = f" ({len(errors)} label set files had errors: {errors[0]})" if errors else ""
    raise KeyError(f"no label set named {name!r}; known: {', '.join(sorted(sets))}{hint}")
