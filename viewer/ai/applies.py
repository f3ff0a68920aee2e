"""Whether a model is meant for a series, read from the header: modality, body part, view position,
photometric interpretation, image size, grey or colour.

A field the manifest constrains and the header states with another value refuses the model, and the
reason names the field and the value (``BodyPartExamined is LEG; pneumonia-cxr is for CHEST``). A
field the header leaves empty (many radiographs carry no BodyPartExamined) does not refuse: the model
runs with a warning that the UI and ``infer`` show next to the result.

BodyPartExamined is free text in practice: scanners write ``THORAX``, ``CHEST_PA``, ``LUNG``, ``TORAX``
for a chest. :data:`BODY_PART_SYNONYMS` maps those to the DICOM defined terms (PS3.16 Annex L) the
manifest uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from viewer.ai.manifest import Manifest
from viewer.ai.preprocess import output_channels
from viewer.core.volume import Volume

# Defined term -> words scanners write for it (compared word by word, upper case; '_', '-', '/' split words).
BODY_PART_SYNONYMS: dict[str, tuple[str, ...]] = {
    "CHEST": ("CHEST", "THORAX", "THORACIC", "LUNG", "LUNGS", "CXR", "TORAX", "TORACE", "BRUSTKORB", "POITRINE",
              "PECHO", "TX"),
    "ABDOMEN": ("ABDOMEN", "ABD", "ABDO", "BAUCH"),
    "PELVIS": ("PELVIS", "HIP", "HIPS", "BECKEN"),
    "HEAD": ("HEAD", "SKULL", "BRAIN", "KOPF", "SCHAEDEL"),
    "EXTREMITY": ("EXTREMITY", "EXTREMITIES", "LEG", "ARM", "KNEE", "ANKLE", "FOOT", "HAND", "WRIST", "ELBOW",
                  "FEMUR", "TIBIA", "HUMERUS", "FOREARM", "FINGER", "TOE", "LOWEXM", "UPREXM"),
    "SPINE": ("SPINE", "CSPINE", "TSPINE", "LSPINE", "WIRBELSAEULE"),
    "BREAST": ("BREAST", "MAMMA"),
}
_WORD = re.compile(r"[A-Z0-9]+")


def canonical_body_part(value: str) -> str:
    """The defined term a header's BodyPartExamined means (``"CHEST_PA"`` -> ``"CHEST"``), or the value
    itself, upper case, when no synonym matches ("" for an empty value)."""
    text = (value or "").strip().upper()
    words = _WORD.findall(text.replace("_", " "))
    for term, names in BODY_PART_SYNONYMS.items():
        if text == term or any(w in names for w in words):
            return term
    return text


@dataclass(frozen=True)
class Applicability:
    """The verdict: ``ok``; when not, ``reason`` (a sentence naming ``field_name`` and ``value``); ``warnings``
    for fields the header does not state (the model runs, the warning is shown with its result)."""

    ok: bool
    reason: str = ""
    field_name: str = ""
    value: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def warning(self) -> str:
        return "; ".join(self.warnings)


def check(manifest: Manifest, volume: Volume) -> Applicability:
    """Every ``applies_to`` constraint of ``manifest`` against ``volume``'s header (see the module doc)."""
    at, name, info = manifest.applies_to, manifest.name, volume.info

    def refuse(fld: str, value: str, allowed: tuple[str, ...] | str) -> Applicability:
        want = allowed if isinstance(allowed, str) else ", ".join(allowed)
        return Applicability(False, f"{name} is for {fld} {want}; this series has {fld} {value or '(empty)'}",
                             fld, value)

    modality = (volume.modality or "").upper()
    if modality not in at.modalities:
        return Applicability(False, f"{name} is for {', '.join(at.modalities)} images; this series is "
                             f"{modality or 'of unknown modality'}", "Modality", modality)
    c_in = 3 if volume.is_color else 1
    if output_channels(manifest.preprocess, c_in) != manifest.input.channels:
        kind = "colour" if volume.is_color else "greyscale"
        return Applicability(False, f"{name} does not take {kind} images", "SamplesPerPixel", str(c_in))
    warnings: list[str] = []
    if at.body_parts:
        raw = info.body_part.strip()
        if not raw:
            warnings.append(f"BodyPartExamined is empty: {name} is meant for {', '.join(at.body_parts)} only; "
                            "check that this is one")
        elif canonical_body_part(raw) not in at.body_parts:
            return refuse("BodyPartExamined", raw, at.body_parts)
    if at.view_positions:
        view = info.view_position.strip().upper()
        if not view:
            warnings.append(f"ViewPosition is empty: {name} is meant for {', '.join(at.view_positions)} views")
        elif view not in at.view_positions:
            return refuse("ViewPosition", view, at.view_positions)
    if at.photometric:
        pi = info.photometric.strip().upper()
        if pi and pi not in at.photometric:
            return refuse("PhotometricInterpretation", pi, at.photometric)
    if at.min_size is not None:
        rows, cols = int(volume.shape[1]), int(volume.shape[2])
        if rows < at.min_size[0] or cols < at.min_size[1]:
            return refuse("image size", f"{rows}x{cols}", f"at least {at.min_size[0]}x{at.min_size[1]} pixels")
    return Applicability(True, warnings=tuple(warnings))
