"""De-identification of exported DICOM objects and label tables (DICOM PS3.15 Annex E, Basic Profile).

What is done, per PS3.15 Table E.1-1 (action codes in brackets):

- Patient identity is *replaced consistently*: PatientName and PatientID become the same pseudonym
  ("ANON-" + 10 hex digits of a keyed hash of the original PatientID), so all objects of one patient
  still group together after export [Z/D: a dummy value is allowed].
- Every UID is remapped [U] to ``2.25.<decimal of a 128-bit keyed hash>`` (PS3.5 B.2 UUID-derived form),
  except the well-known ones defined by the standard (SOP Class, Transfer Syntax, coding schemes: root
  1.2.840.10008). The same input UID gives the same output UID in every file and every run that uses the
  same secret, so a SEG/SR de-identified together with its images still references them.
- Dates and times: the identifying ones are emptied [Z] (StudyDate, StudyTime, ...) or removed [X]
  (SeriesDate, AcquisitionDateTime, ...); ContentDate/ContentTime, Type 1 in SR and SEG, get dummy
  values [D]. (The "Retain Longitudinal Temporal Information" option is not applied.)
- Other identifying attributes listed in the profile (institution, physicians, operators, device serial
  numbers, accession number, descriptions with free text, ...) are removed [X] or emptied [Z]; private
  attributes are removed (the profile's default); other person names are replaced by a dummy [D].
- PatientIdentityRemoved = YES and DeidentificationMethod(CodeSequence) = 113100 "Basic Application
  Confidentiality Profile" are recorded (PS3.3 C.7.1.1, CID 7050).
- SR content is kept (the "Clean Structured Content" option: this viewer writes only coded content,
  UIDs and coordinates, no free text; UIDs and names inside it are still remapped and replaced).

The secret that keys the hashes is per user (see :func:`user_secret`); without it nobody can recompute
the mapping from the original UIDs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viewer.annotations.paths import data_dir

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
_STANDARD_ROOT = "1.2.840.10008."
# UIDs that name classes or schemes, not instances: never remapped even when private (vendor) roots.
_KEEP_UID = {"SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID",
             "ImplementationClassUID", "CodingSchemeUID", "ReferencedSOPClassUIDInFile",
             "ContextGroupExtensionCreatorUID",
             "MappingResourceUID", "ReferencedTransferSyntaxUIDInFile", "PrivateInformationCreatorUID"}

# PS3.15 Table E.1-1, the attributes most objects carry (keyword -> action). Z: empty, X: remove,
# D: dummy value. UIDs (U) and private tags are handled generically.
_ACTIONS: dict[str, str] = {
    # patient
    "PatientName": "D", "PatientID": "D", "PatientBirthDate": "Z", "PatientBirthTime": "X", "PatientSex": "Z",
    "PatientAge": "X", "PatientSize": "X", "PatientWeight": "X", "PatientAddress": "X",
    "PatientTelephoneNumbers": "X", "OtherPatientIDs": "X", "OtherPatientNames": "X",
    "OtherPatientIDsSequence": "X", "PatientBirthName": "X", "PatientMotherBirthName": "X",
    "MilitaryRank": "X", "BranchOfService": "X", "MedicalRecordLocator": "X", "EthnicGroup": "X",
    "Occupation": "X", "AdditionalPatientHistory": "X", "PatientComments": "X", "PregnancyStatus": "X",
    "SmokingStatus": "X", "MedicalAlerts": "X", "Allergies": "X", "CountryOfResidence": "X",
    "RegionOfResidence": "X", "PatientReligiousPreference": "X", "ResponsiblePerson": "X",
    "ResponsibleOrganization": "X", "IssuerOfPatientID": "X", "PatientInsurancePlanCodeSequence": "X",
    "PatientState": "X", "PatientTransportArrangements": "X",
    # study / visit / request
    "StudyDate": "Z", "StudyTime": "Z", "AccessionNumber": "Z", "StudyID": "Z", "ReferringPhysicianName": "Z",
    "ReferringPhysicianAddress": "X", "ReferringPhysicianTelephoneNumbers": "X",
    "ReferringPhysicianIdentificationSequence": "X", "PhysiciansOfRecord": "X",
    "PhysiciansOfRecordIdentificationSequence": "X", "NameOfPhysiciansReadingStudy": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X", "StudyDescription": "X", "AdmittingDiagnosesDescription": "X",
    "AdmissionID": "X", "RequestingPhysician": "X", "RequestingService": "X", "RequestedProcedureDescription": "X",
    "RequestAttributesSequence": "X", "ReferencedStudySequence": "Z", "ReferencedPatientSequence": "X",
    "ReferencedPerformedProcedureStepSequence": "Z", "PerformedProcedureStepDescription": "X",
    "PerformedProcedureStepID": "X", "PerformedProcedureStepStartDate": "X", "PerformedProcedureStepStartTime": "X",
    "ScheduledProcedureStepDescription": "X", "ReasonForStudy": "X", "RequestedProcedureID": "X",
    "OrderCallbackPhoneNumber": "X", "OrderEnteredBy": "X", "OrderEntererLocation": "X",
    "InstitutionName": "X", "InstitutionAddress": "X", "InstitutionalDepartmentName": "X",
    "InstitutionCodeSequence": "X", "CurrentPatientLocation": "X",
    # series / equipment / acquisition
    "SeriesDate": "X", "SeriesTime": "X", "AcquisitionDate": "X", "AcquisitionTime": "X",
    "AcquisitionDateTime": "X", "InstanceCreationDate": "X", "InstanceCreationTime": "X",
    "ContentDate": "D", "ContentTime": "D", "OverlayDate": "X", "OverlayTime": "X", "CurveDate": "X",
    "CurveTime": "X", "PerformingPhysicianName": "X", "PerformingPhysicianIdentificationSequence": "X",
    "OperatorsName": "X", "OperatorIdentificationSequence": "X", "StationName": "X",
    "DeviceSerialNumber": "D", "DeviceUID": "X", "ProtocolName": "X", "SeriesDescription": "X",
    "ImageComments": "X", "DerivationDescription": "X", "FrameComments": "X", "AcquisitionComments": "X",
    "ContentCreatorName": "Z", "VerifyingObserverName": "D", "PersonName": "D",
    "DataSetTrailingPadding": "X", "DigitalSignaturesSequence": "X", "OriginalAttributesSequence": "X",
    "ModifiedAttributesSequence": "X",
}
# Attributes that must keep a value in the objects we write (Type 1): a dummy instead of nothing.
_DUMMY = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "PN": "ANONYMIZED^", "LO": "ANONYMIZED",
          "SH": "ANON"}


def user_secret(path: Path | None = None) -> bytes:
    """The per-user de-identification key: 32 random bytes created once in the data folder.

    Using the same key for every export keeps pseudonyms and UIDs consistent across sessions.
    """
    path = path or data_dir() / "deid.key"
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(key)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)  # atomic: two processes never see half a key
    return path.read_bytes()


class Deidentifier:
    """Consistent pseudonyms and UIDs under one secret.

    Parameters
    ----------
    secret
        Key of the keyed hash (HMAC-SHA256). Same secret, same mapping; keep it private.
    """

    def __init__(self, secret: bytes | str) -> None:
        self._key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(self._key) < 8:
            raise ValueError("the de-identification secret must be at least 8 bytes")
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

    def dataset(self, ds: Dataset) -> Dataset:
        """A de-identified deep copy of ``ds`` (file meta included); ``ds`` is not changed."""
        import copy

        from pydicom.dataset import Dataset as _Dataset
        from pydicom.sequence import Sequence

        out = copy.deepcopy(ds)
        pseudonym = self.pseudonym(str(ds.get("PatientID", "") or ds.get("PatientName", "")))
        self._clean(out, pseudonym, set())
        if getattr(out, "file_meta", None) is not None:
            fm = out.file_meta
            if "MediaStorageSOPInstanceUID" in fm:
                fm.MediaStorageSOPInstanceUID = self.uid(str(fm.MediaStorageSOPInstanceUID))  # type: ignore[assignment]
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = "DICOM PS3.15 E.1 Basic Application Confidentiality Profile"
        code = _Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = PROFILE_CODE
        out.DeidentificationMethodCodeSequence = Sequence([code])
        return out

    def _clean(self, ds: Any, pseudonym: str, seen: set[int]) -> None:
        # highdicom reuses one item object in several sequences (and deepcopy keeps that sharing):
        # cleaning it twice would remap its UIDs twice and break the references.
        if id(ds) in seen:
            return
        seen.add(id(ds))
        for elem in list(ds):
            if elem.tag.is_private:
                del ds[elem.tag]
                continue
            group = elem.tag.group
            if 0x5000 <= group <= 0x50FF or (0x6000 <= group <= 0x60FF and elem.tag.element == 0x4000):
                del ds[elem.tag]  # curves and overlay comments (E.1-1: X)
                continue
            kw = elem.keyword
            if kw in ("PatientName", "PatientID"):
                elem.value = pseudonym
                continue
            action = _ACTIONS.get(kw)
            if action == "X":
                del ds[elem.tag]
            elif action == "Z":
                elem.value = "" if elem.VR != "SQ" else []
            elif action == "D":
                elem.value = _DUMMY.get(elem.VR, "ANONYMIZED") if elem.VM else elem.value
            elif elem.VR == "UI" and kw not in _KEEP_UID:
                if elem.VM > 1:
                    elem.value = [self.uid(v) for v in elem.value]
                elif elem.value:
                    elem.value = self.uid(elem.value)
            elif elem.VR == "PN" and elem.value:
                elem.value = _DUMMY["PN"]
            elif elem.VR == "SQ":
                for item in elem.value:
                    self._clean(item, pseudonym, seen)

    def label_uid_map(self) -> Any:
        """A function for the CSV/JSON writers' ``uid_map`` argument."""
        return self.uid
