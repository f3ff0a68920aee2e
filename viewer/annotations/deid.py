"""De-identification of exported DICOM objects and label tables (DICOM PS3.15 Annex E, Basic Profile).

Table-driven: ``basic_profile.tsv`` holds every row of PS3.15 Table E.1-1 (tag, action code). Per element
of an object, recursively through sequences (action codes in brackets):

- [X] removed, [Z] emptied, [D] replaced by a dummy of its VR, [U] remapped consistently (below).
  Compound codes are resolved for the objects this viewer writes (SEG, SR): a dummy where the
  attribute is Type 1 in them (ContentDate, DeviceSerialNumber), empty where Type 2 (Z/D otherwise,
  ReferencedPerformedProcedureStepSequence), removed in every other case; X/Z/U* (ReferencedImageSequence,
  SourceImageSequence) keeps the references, their UIDs remapped. A sequence with [D] (ContentSequence
  of an SR) is cleaned item by item: this viewer writes only coded content, UIDs and coordinates in it
  (the "Clean Structured Content" idea), and names, dates and UIDs inside are treated by the same table.
- Patient identity is *replaced consistently*: PatientName and PatientID become the same pseudonym
  ("ANON-" + 10 hex digits of a keyed hash of the original PatientID), so all objects of one patient
  still group together after export (Z allows a dummy value).
- Every UID [U], and every other UI value outside the standard's own classes and schemes, is remapped to
  ``2.25.<decimal of a 128-bit keyed hash>`` (PS3.5 B.2): the same input UID gives the same output UID in
  every file and every run with the same secret, so a SEG/SR de-identified with its images still refers
  to them. Other person names (PN) become a dummy; private attributes are removed.
- Dates: by default the Retain Longitudinal Temporal Information option is off: dates and times are
  removed, emptied or dummied as the table says (LongitudinalTemporalInformationModified = REMOVED).
  With ``shift_dates=True`` (the option "with Modified Dates"), every date the table names is shifted by
  a per-patient number of days derived from the secret (consistent across exports; the key file is the
  only way to undo it), times of day are kept, and the object says MODIFIED.
- PatientIdentityRemoved = YES and DeidentificationMethod(CodeSequence) = 113100 (plus 113107 with
  shifted dates) are recorded (PS3.3 C.7.1.1, CID 7050).
- :meth:`Deidentifier.person` gives annotators a keyed pseudonym for CSV/JSON exports.
- :func:`burned_in` lists sources that say BurnedInAnnotation YES: text in their pixels that no header
  de-identification removes (exports warn and need an opt-in).

The secret that keys the hashes is per user (see :func:`user_secret`, a 0600 file); without it nobody can
recompute the mapping from the original UIDs.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import secrets
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viewer.annotations.paths import data_dir
from viewer.core.atomic import write_atomically

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
SHIFTED_DATES_CODE = ("113107", "DCM", "Retain Longitudinal Temporal Information Modified Dates Option")
_STANDARD_ROOT = "1.2.840.10008."
# UIDs that name classes or schemes, not instances: never remapped even when private (vendor) roots.
_KEEP_UID = {"SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID",
             "ImplementationClassUID", "CodingSchemeUID", "ReferencedSOPClassUIDInFile",
             "ContextGroupExtensionCreatorUID",
             "MappingResourceUID", "ReferencedTransferSyntaxUIDInFile", "PrivateInformationCreatorUID"}
# How compound codes resolve where the SEG and SR this viewer writes need the attribute (checked by
# dciodvfy in tests): Type 1 ones get a dummy [D], Type 2 ones stay empty [Z]. Every other compound
# code removes the attribute [X].
_RESOLVED = {"ContentDate": "D", "ContentTime": "D",  # Z/D, Type 1 in SEG and SR
             "DeviceSerialNumber": "D",  # X/Z/D, Type 1 in SEG's Enhanced General Equipment
             "ReferencedPerformedProcedureStepSequence": "Z"}  # X/Z/D, Type 2 in SR Document Series
_PROFILE_FILE = Path(__file__).with_name("basic_profile.tsv")


@lru_cache(maxsize=1)
def profile() -> tuple[dict[int, str], list[tuple[int, int, str]]]:
    """PS3.15 Table E.1-1: action code by tag, and (tag, mask, action) of the rows that name groups
    (curves 50xx, overlays 60xx)."""
    exact: dict[int, str] = {}
    masked: list[tuple[int, int, str]] = []
    for line in _PROFILE_FILE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        tag, mask, action = line.split("\t")[:3]
        if mask:
            masked.append((int(tag, 16), int(mask, 16), action))
        else:
            exact[int(tag, 16)] = action
    return exact, masked


def action_of(tag: int) -> str | None:
    """The Table E.1-1 action code of an attribute, or None when the table does not name it (kept)."""
    exact, masked = profile()
    code = exact.get(tag)
    if code is None:
        code = next((a for t, m, a in masked if tag & m == t & m), None)
    return code


# Dummy values by VR (D, and Type 1 attributes that Z/D must keep).
_DUMMY = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "PN": "ANONYMIZED^", "LO": "ANONYMIZED",
          "SH": "ANON", "CS": "ANON", "ST": "ANONYMIZED", "LT": "ANONYMIZED", "UT": "ANONYMIZED",
          "AE": "ANON", "AS": "000Y", "IS": "0", "DS": "0", "UC": "ANONYMIZED", "UR": "", "UI": ""}


def user_secret(path: Path | None = None) -> bytes:
    """The per-user de-identification key: 32 random bytes created once in the data folder.

    Using the same key for every export keeps pseudonyms and UIDs consistent across sessions.
    """
    path = path or data_dir() / "deid.key"
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    # 0600 from the first byte (mkstemp): whoever reads the key can undo the pseudonyms and the date
    # shift. Atomic: two processes never see half a key.
    write_atomically(path, lambda tmp: tmp.write_bytes(key), mode=0o600)
    return path.read_bytes()


class Deidentifier:
    """Consistent pseudonyms, UIDs and (optionally) shifted dates under one secret.

    Parameters
    ----------
    secret
        Key of the keyed hash (HMAC-SHA256). Same secret, same mapping; keep it private.
    shift_dates
        Retain Longitudinal Temporal Information with Modified Dates: shift every date the profile names by
        a per-patient offset (:meth:`date_shift_days`) instead of removing it. Off by default.
    """

    def __init__(self, secret: bytes | str, *, shift_dates: bool = False) -> None:
        self._key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(self._key) < 8:
            raise ValueError("the de-identification secret must be at least 8 bytes")
        self.shift_dates = shift_dates
        self.uid_map: dict[str, str] = {}

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self._key, f"{kind}\0{value}".encode(), hashlib.sha256).digest()

    def uid(self, value: str) -> str:
        """The replacement of one UID (standard UIDs and "" unchanged)."""
        value = str(value).strip().rstrip("\0")
        if not value or value.startswith(_STANDARD_ROOT):
            return value
        out = self.uid_map.get(value)
        if out is None:
            # 2.25.<int>: a UUID-derived UID (PS3.5 B.2); 128 bits keep it within 64 characters (<= 44).
            out = "2.25." + str(int.from_bytes(self._digest("uid", value)[:16], "big") >> 1)
            self.uid_map[value] = out
        return out

    def pseudonym(self, patient_id: str) -> str:
        """The stable pseudonym of a patient ("ANON-" + 10 hex digits)."""
        return "ANON-" + self._digest("patient", str(patient_id).strip()).hex()[:10].upper()

    def person(self, name: str) -> str:
        """The stable pseudonym of an annotator or other person ("person-" + 8 hex digits; "" stays "")."""
        return "person-" + self._digest("person", name.strip()).hex()[:8] if name.strip() else ""

    def date_shift_days(self, patient_id: str) -> int:
        """Days every date of this patient moves back with ``shift_dates`` (365 to 3,651, from the key)."""
        return 365 + int.from_bytes(self._digest("date-shift", str(patient_id).strip())[:4], "big") % 3287

    def _shift(self, value: str, vr: str, days: int) -> str:
        """A DA or DT value moved back ``days`` days (the time of day kept); "" when unparseable."""
        text = str(value).strip()
        try:
            day = _dt.date(int(text[:4]), int(text[4:6]), int(text[6:8])) - _dt.timedelta(days=days)
        except (ValueError, IndexError):
            return ""
        return day.strftime("%Y%m%d") + (text[8:] if vr == "DT" else "")

    def dataset(self, ds: Dataset) -> Dataset:
        """A de-identified deep copy of ``ds`` (file meta included); ``ds`` is not changed."""
        import copy

        from pydicom.dataset import Dataset as _Dataset
        from pydicom.sequence import Sequence

        out = copy.deepcopy(ds)
        patient = str(ds.get("PatientID", "") or ds.get("PatientName", ""))
        days = self.date_shift_days(patient) if self.shift_dates else 0
        self._clean(out, self.pseudonym(patient), days, set())
        if getattr(out, "file_meta", None) is not None:
            fm = out.file_meta
            if "MediaStorageSOPInstanceUID" in fm:
                fm.MediaStorageSOPInstanceUID = self.uid(str(fm.MediaStorageSOPInstanceUID))  # type: ignore[assignment]
        out.PatientIdentityRemoved = "YES"
        out.LongitudinalTemporalInformationModified = "MODIFIED" if self.shift_dates else "REMOVED"
        codes = [PROFILE_CODE] + ([SHIFTED_DATES_CODE] if self.shift_dates else [])
        out.DeidentificationMethod = "; ".join(c[2] for c in codes)
        items = []
        for value, scheme, meaning in codes:
            code = _Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
            items.append(code)
        out.DeidentificationMethodCodeSequence = Sequence(items)
        return out

    def _clean(self, ds: Any, pseudonym: str, days: int, seen: set[int]) -> None:
        # highdicom reuses one item object in several sequences (and deepcopy keeps that sharing):
        # cleaning it twice would remap its UIDs twice and break the references.
        if id(ds) in seen:
            return
        seen.add(id(ds))
        for elem in list(ds):
            if elem.tag.is_private:
                del ds[elem.tag]
                continue
            kw = elem.keyword
            if kw in ("PatientName", "PatientID"):
                elem.value = pseudonym
                continue
            action = action_of(int(elem.tag))
            if action is not None and "/" in action:
                action = _RESOLVED.get(kw, "Z" if action.startswith("Z") else
                                       "X/Z/U*" if action == "X/Z/U*" else "X")
            if action is None:
                self._unlisted(elem, pseudonym, days, seen)
            elif elem.VR == "SQ":
                if action in ("D", "X/Z/U*"):
                    for item in elem.value:  # structured content and references: cleaned, kept
                        self._clean(item, pseudonym, days, seen)
                elif action == "Z":
                    elem.value = []
                else:
                    del ds[elem.tag]
            elif days and elem.VR in ("DA", "DT") and elem.value:
                elem.value = self._shift(elem.value, elem.VR, days)  # modified dates option: kept, shifted
            elif action == "U":
                self._remap(elem)
            elif action == "X":
                del ds[elem.tag]
            elif action == "Z":
                elem.value = ""
            else:  # D
                elem.value = _DUMMY.get(elem.VR, "ANONYMIZED") if elem.VR not in ("OB", "OW", "UN") else b""

    def _unlisted(self, elem: Any, pseudonym: str, days: int, seen: set[int]) -> None:
        """Attributes the table does not name are kept, except instance UIDs (remapped) and person names
        (dummy): a name or a UID anywhere identifies."""
        if elem.VR == "UI" and elem.keyword not in _KEEP_UID:
            self._remap(elem)
        elif elem.VR == "PN" and elem.value:
            elem.value = _DUMMY["PN"]
        elif elem.VR == "SQ":
            for item in elem.value:
                self._clean(item, pseudonym, days, seen)

    def _remap(self, elem: Any) -> None:
        if elem.VM > 1:
            elem.value = [self.uid(v) for v in elem.value]
        elif elem.value:
            elem.value = self.uid(elem.value)

    def label_uid_map(self) -> Any:
        """A function for the CSV/JSON writers' ``uid_map`` argument."""
        return self.uid


def burned_in(datasets: Any) -> list[str]:
    """SOPInstanceUIDs of the data sets whose BurnedInAnnotation is YES (identifying text in the pixels,
    which header de-identification cannot remove)."""
    return [str(ds.get("SOPInstanceUID", "")) for ds in datasets
            if str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"]
