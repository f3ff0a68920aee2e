"""DIMSE on pynetdicom: associate with plain errors, C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE, storage SCP.

Failures become :class:`PacsError` with a message a user can act on: the association was rejected (with
the reason, e.g. "called AE title not recognised", and the titles involved), nothing listens at the
port, no route to the host, no answer within the timeout, a TLS failure (certificate not trusted, not for
that host, ours refused or missing). The classification runs only after a failure (a plain TCP, then TLS,
probe), so a good association costs nothing extra. TLS: :func:`client_tls_context` for our associations,
:func:`server_tls_context` for our storage SCP.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

from viewer.io.pacs.errors import PacsCancelled, PacsError
from viewer.io.pacs.nodes import DimseNode, check_ae
from viewer.io.pacs.query import SERIES_KEYS, STUDY_KEYS, Match, Query, match_from_dataset, study_filters

log = logging.getLogger(__name__)

#: A C-STORE sink: takes the received Part 10 bytes; returns normally when stored, raises PacsError when
#: the instance is refused (its message is kept and a failure status answered).
Sink = Callable[[bytes], None]

# C-STORE statuses we answer (PS3.4 B.2.3): success, refused (out of resources), cannot understand.
STATUS_OK = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000


def _load(what: str, path: str, load: Callable[[], None]) -> None:
    """Run ``load`` (reads a PEM file into an SSL context); a missing or bad file is a PacsError naming it."""
    try:
        load()
    except FileNotFoundError as exc:
        raise PacsError(f"TLS set-up: the {what} {path} does not exist") from exc
    except ssl.SSLError as exc:
        raise PacsError(f"TLS set-up: the {what} {path} is not usable ({exc.reason or exc}): PEM expected"
                        + (", and the key must be the certificate's" if "KEY" in str(exc.reason) else "")) from exc
    except OSError as exc:
        raise PacsError(f"TLS set-up: cannot read the {what} {path}: {exc.strerror or exc}") from exc


def client_tls_context(node: DimseNode) -> ssl.SSLContext:
    """How we talk TLS to ``node``: its certificate checked against ``tls_ca`` (else the system's trust store)
    and its host name, unless ``tls_verify`` is off; our certificate when the node has one."""
    ctx = ssl.create_default_context()
    if node.tls_ca:
        _load("CA file", node.tls_ca, lambda: ctx.load_verify_locations(cafile=node.tls_ca))
    if not node.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if node.tls_cert:
        _load("certificate/key", node.tls_cert, lambda: ctx.load_cert_chain(node.tls_cert, node.tls_key or None))
    return ctx


class _HandshakeInRequestThread(ssl.SSLContext):
    """pynetdicom wraps each accepted socket on its one accepting thread, where the TLS handshake would
    run: one client that connects and says nothing would keep every other out. Deferred, the handshake
    runs on the association's own thread, at its first read."""

    def wrap_socket(self, sock: Any, server_side: bool = False, do_handshake_on_connect: bool = True,
                    *args: Any, **kwargs: Any) -> Any:
        return super().wrap_socket(sock, server_side, do_handshake_on_connect and not server_side, *args, **kwargs)


def server_tls_context(cert: str, key: str = "", ca: str = "") -> ssl.SSLContext:
    """How our storage SCP talks TLS: our certificate and key; with ``ca`` a client must show a certificate
    signed by it (else any client may connect, as over plain TCP)."""
    ctx = _HandshakeInRequestThread(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # BCP 195, DICOM PS3.15 B.9
    _load("certificate/key", cert, lambda: ctx.load_cert_chain(cert, key or None))
    if ca:
        _load("CA file", ca, lambda: ctx.load_verify_locations(cafile=ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def tls_failure(node: DimseNode, exc: BaseException) -> str:
    """A failed TLS handshake with ``node`` in words: what failed and what to change."""
    where = f"{node.host}:{node.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or str(exc)
        trust = f"the CA file {node.tls_ca}" if node.tls_ca else "the system's trust store (give the PACS's CA file)"
        hint = (f"the certificate is not for {node.host!r}" if "mismatch" in why.lower()
                else f"its certificate is not signed by a CA in {trust}")
        return f"TLS failure: certificate verify failed for {where} ({why}): {hint}"
    reason = str(getattr(exc, "reason", "") or "")
    if reason in ("WRONG_VERSION_NUMBER", "UNEXPECTED_EOF_WHILE_READING", "RECORD_LAYER_FAILURE") or \
            isinstance(exc, (ssl.SSLEOFError, ConnectionError)):
        return f"TLS failure: {where} broke off the TLS handshake ({reason or exc}): is this port TLS?"
    if "CERTIFICATE_REQUIRED" in reason or ("HANDSHAKE_FAILURE" in reason and not node.tls_cert):
        return (f"TLS failure: {where} requires a client certificate ({reason}): give ours with "
                "--tls-cert/--tls-key")
    if reason in ("TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
                  "TLSV1_ALERT_DECRYPT_ERROR", "SSLV3_ALERT_CERTIFICATE_EXPIRED"):
        return f"TLS failure: {where} does not accept our certificate ({reason}): it must trust our CA"
    return f"TLS failure with {where}: {reason or exc}"


def _where(node: DimseNode) -> str:
    return f"{node.called_ae}@{node.host}:{node.port}"


def diagnose(node: DimseNode, waited_s: float | None = None) -> str:
    """Why an association to ``node`` could not start, in words, from a fresh TCP (and TLS) connection.
    ``waited_s``: how long the failed association took (a quick failure is a dropped, not a silent, peer)."""
    try:
        sock = socket.create_connection((node.host, node.port), timeout=node.timeout_s)
    except socket.gaierror as exc:
        return f"unknown host {node.host!r} ({exc.strerror})"
    except ConnectionRefusedError:
        return f"nothing is listening at {node.host}:{node.port} (connection refused)"
    except TimeoutError:
        return f"no answer from {node.host}:{node.port} within {node.timeout_s:g} s (timeout)"
    except OSError as exc:
        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"no route to host {node.host} ({exc.strerror}): check the address and this computer's network"
        return f"cannot connect to {node.host}:{node.port}: {exc.strerror or exc}"
    try:
        if node.tls:
            try:
                with client_tls_context(node).wrap_socket(sock, server_hostname=node.host) as tls:
                    # TLS 1.3: a server that refuses our certificate says so after the handshake.
                    tls.settimeout(min(node.timeout_s, 2.0))
                    try:
                        if tls.recv(1) == b"":
                            return f"TLS failure: {node.host}:{node.port} closed the connection after the handshake"
                    except TimeoutError:
                        pass
            except OSError as exc:  # ssl.SSLError and its kinds, resets
                return tls_failure(node, exc)
    finally:
        sock.close()
    if waited_s is not None and waited_s < 0.9 * node.timeout_s:
        return (f"{node.host}:{node.port} closed the connection without answering our association request "
                + ("(not a DICOM port?)" if node.tls else "(a DICOM TLS port? then use dimses:// or --tls-ca)"))
    return (f"{node.host}:{node.port} accepts connections but no DICOM association started within "
            f"{node.timeout_s:g} s (not a DICOM port, or the peer is too slow)")


def quiet_identifiers() -> None:
    """pynetdicom logs every request and response identifier (patient names, IDs) at INFO level, and
    formats them for that even when nobody listens (half the time of a 1,000-study C-FIND): no PHI in
    logs, and no formatting."""
    from pynetdicom import _config

    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False


def _new_ae(node: DimseNode, ae_title: str) -> Any:
    from pynetdicom import AE

    quiet_identifiers()
    ae = AE(ae_title=check_ae(node.calling_ae or ae_title, "our AE title"))
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = node.timeout_s
    ae.connection_timeout = node.timeout_s
    return ae


def associate(node: DimseNode, ae_title: str, ae: Any, *, ext_neg: list[Any] | None = None,
              handlers: list[Any] | None = None) -> Any:
    """An established association with ``node`` for the contexts already requested on ``ae``."""
    from pynetdicom import evt

    rejection: dict[str, str] = {}

    def on_acse(event: Any) -> None:
        prim = event.primitive
        if getattr(prim, "result", None) == 0:
            rejection["accepted"] = "yes"
        elif getattr(prim, "result", None) in (1, 2):
            rejection["reason"] = prim.reason_str
            rejection["result"] = prim.result_str

    def on_pdu(event: Any) -> None:
        if type(event.pdu).__name__ == "A_ABORT_RQ":
            event.assoc._peer_aborted = True  # read by _lost: the peer, not the network, ended it

    import time

    tls_args = (client_tls_context(node), node.host) if node.tls else None
    t0 = time.monotonic()
    assoc = ae.associate(node.host, node.port, ae_title=node.called_ae, ext_neg=ext_neg,
                         evt_handlers=[*(handlers or []), (evt.EVT_ACSE_RECV, on_acse),
                                                         (evt.EVT_PDU_RECV, on_pdu)], tls_args=tls_args)
    if assoc.is_established:
        return assoc
    calling = ae.ae_title
    if assoc.is_rejected:
        reason = rejection.get("reason", "no reason given")
        raise PacsError(f"{_where(node)} rejected the association ({rejection.get('result', 'rejected')}): "
                        f"{reason} (we called {node.called_ae!r} as {calling!r})")
    if rejection.get("accepted"):
        # Accepted, then aborted: usually none of our presentation contexts was accepted.
        raise PacsError(f"{_where(node)} accepted none of the services we asked for (as {calling!r})")
    raise PacsError(f"cannot associate with {_where(node)}: {diagnose(node, time.monotonic() - t0)}")


def _lost(assoc: Any, node: DimseNode, op: str, waited_s: float | None = None) -> str:
    """Why a DIMSE exchange ended without a final status, in words. ``waited_s``: since the last message."""
    if getattr(assoc, "_peer_aborted", False) and not getattr(assoc, "_we_aborted", False):
        return (f"{_where(node)} aborted the association on our {op} (we are {assoc.ae.ae_title!r}): a PACS "
                f"does this when it does not know our AE title or our address; add them to its DICOM nodes")
    early = waited_s is not None and waited_s < 0.9 * node.timeout_s
    if assoc.is_aborted or not assoc.is_established or early:
        return f"{_where(node)}: the connection was lost during the {op} (server stopped or network broke)"
    return f"{_where(node)}: no answer to the {op} within {node.timeout_s:g} s (timeout)"


def echo(node: DimseNode, ae_title: str) -> float:
    """C-ECHO; returns the round-trip in seconds. PacsError says what is wrong."""
    import time

    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = _new_ae(node, ae_title)
    ae.add_requested_context(Verification)
    t0 = time.perf_counter()
    assoc = associate(node, ae_title, ae)
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if not status or "Status" not in status:
        raise PacsError(f"{_where(node)} did not answer the C-ECHO within {node.timeout_s:g} s")
    if status.Status != STATUS_OK:
        raise PacsError(f"{_where(node)} answered the C-ECHO with status 0x{status.Status:04X}")
    return time.perf_counter() - t0


def _identifier(level: str, keys: tuple[str, ...], values: dict[str, str]) -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k in keys:
        setattr(ds, k, "")
    for k, v in values.items():
        setattr(ds, k, v)
    return ds


def _find(assoc: Any, node: DimseNode, ds: Any, level: str, cancel: Callable[[], bool] | None) -> Iterator[Match]:
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND  # type: ignore

    responses = assoc.send_c_find(ds, FIND)
    for status, identifier in responses:
        if cancel is not None and cancel():
            assoc.abort()
            raise PacsCancelled("query cancelled")
        if not status or "Status" not in status:
            raise PacsError(_lost(assoc, node, "C-FIND"))
        code = int(status.Status)
        if code in (0xFF00, 0xFF01):
            if identifier is not None:
                yield match_from_dataset(identifier, level.lower())
        elif code == STATUS_OK:
            return
        elif code == 0xFE00:
            raise PacsCancelled("query cancelled")
        else:
            comment = status.get("ErrorComment", "")
            raise PacsError(f"{_where(node)} refused the query: status 0x{code:04X}"
                            + (f" ({comment})" if comment else ""))


def find(node: DimseNode, query: Query, ae_title: str, *, cancel: Callable[[], bool] | None = None
         ) -> Iterator[Match]:
    """C-FIND (Study Root); yields matches as they arrive. Series level queries each matching study."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND  # type: ignore

    ae = _new_ae(node, ae_title)
    ae.add_requested_context(FIND)
    assoc = associate(node, ae_title, ae)
    try:
        if query.level == "study":
            yield from _find(assoc, node, _identifier("STUDY", STUDY_KEYS, study_filters(query)), "STUDY", cancel)
            return
        if query.study_uid:
            studies = [query.study_uid]
        else:
            studies = [m.study_uid for m in _find(assoc, node, _identifier("STUDY", STUDY_KEYS,
                                                                            study_filters(query)), "STUDY", cancel)]
        for uid in studies:
            values = {"StudyInstanceUID": uid}
            if query.modality:
                values["Modality"] = query.modality
            if query.description:
                values["SeriesDescription"] = query.description
            yield from _find(assoc, node, _identifier("SERIES", SERIES_KEYS, values), "SERIES", cancel)
    finally:
        if assoc.is_established:
            assoc.release()


def list_instances(node: DimseNode, ae_title: str, study_uid: str, series_uid: str) -> dict[str, str]:
    """SOP Instance UID -> SOP Class UID ("" when the PACS does not say) of a series (C-FIND, IMAGE level)."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND  # type: ignore

    ae = _new_ae(node, ae_title)
    ae.add_requested_context(FIND)
    assoc = associate(node, ae_title, ae)
    ds = _identifier("IMAGE", ("SOPInstanceUID", "SOPClassUID"),
                     {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid})
    out: dict[str, str] = {}
    try:
        for status, identifier in assoc.send_c_find(ds, FIND):
            if not status or "Status" not in status:
                raise PacsError(_lost(assoc, node, "C-FIND"))
            if int(status.Status) in (0xFF00, 0xFF01) and identifier is not None:
                uid = str(identifier.get("SOPInstanceUID", ""))
                if uid:
                    out[uid] = str(identifier.get("SOPClassUID", "") or "")
            elif int(status.Status) != STATUS_OK:
                raise PacsError(f"{_where(node)} refused the instance query: status 0x{int(status.Status):04X}")
    finally:
        if assoc.is_established:
            assoc.release()
    return out


def _retrieve_identifier(study_uid: str, series_uid: str, sop_uids: list[str] | None) -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    if sop_uids:
        ds.QueryRetrieveLevel = "IMAGE"
        ds.SOPInstanceUID = sop_uids  # list matching (PS3.4 C.2.2.2.2): only the missing ones
    else:
        ds.QueryRetrieveLevel = "SERIES"
    return ds


#: Storage SOP classes (pynetdicom keywords) a series of each modality holds. A C-GET offers only these
#: (plus secondary captures) when the SOP classes are not known yet: negotiating all 120 with every
#: transfer syntax costs Orthanc ~0.6 s per association (one class: 6 ms).
MODALITY_CLASSES: dict[str, tuple[str, ...]] = {
    "CT": ("CTImageStorage", "EnhancedCTImageStorage", "LegacyConvertedEnhancedCTImageStorage"),
    "MR": ("MRImageStorage", "EnhancedMRImageStorage", "EnhancedMRColorImageStorage",
           "LegacyConvertedEnhancedMRImageStorage"),
    "CR": ("ComputedRadiographyImageStorage",),
    "DX": ("DigitalXRayImageStorageForPresentation", "DigitalXRayImageStorageForProcessing"),
    "MG": ("DigitalMammographyXRayImageStorageForPresentation", "DigitalMammographyXRayImageStorageForProcessing",
           "BreastTomosynthesisImageStorage"),
    "US": ("UltrasoundImageStorage", "UltrasoundMultiFrameImageStorage"),
    "PT": ("PositronEmissionTomographyImageStorage", "EnhancedPETImageStorage"),
    "NM": ("NuclearMedicineImageStorage",),
    "XA": ("XRayAngiographicImageStorage",),
    "RF": ("XRayRadiofluoroscopicImageStorage",),
    "SEG": ("SegmentationStorage",),
    "SR": ("BasicTextSRStorage", "EnhancedSRStorage", "ComprehensiveSRStorage", "Comprehensive3DSRStorage"),
    "KO": ("KeyObjectSelectionDocumentStorage",),
    "PR": ("GrayscaleSoftcopyPresentationStateStorage",),
    "RTSTRUCT": ("RTStructureSetStorage",),
    "DOC": ("EncapsulatedPDFStorage",),
}
_ALWAYS = ("SecondaryCaptureImageStorage", "MultiFrameTrueColorSecondaryCaptureImageStorage",
           "MultiFrameGrayscaleWordSecondaryCaptureImageStorage")


def classes_for_modality(modality: str) -> set[str] | None:
    """The SOP Class UIDs a series of ``modality`` likely holds; None when the modality is not known."""
    from pynetdicom import sop_class

    names = MODALITY_CLASSES.get(modality.upper().strip())
    if names is None:
        return None
    return {str(getattr(sop_class, n)) for n in (*names, *_ALWAYS)}


def series_modalities(node: DimseNode, ae_title: str, study_uid: str) -> dict[str, str]:
    """Series Instance UID -> Modality of a study (a series-level C-FIND asking only these two keys)."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND  # type: ignore

    ae = _new_ae(node, ae_title)
    ae.add_requested_context(FIND)
    assoc = associate(node, ae_title, ae)
    try:
        ident = _identifier("SERIES", ("SeriesInstanceUID", "Modality"), {"StudyInstanceUID": study_uid})
        return {m.series_uid: m.modality for m in _find(assoc, node, ident, "SERIES", None)}
    finally:
        if assoc.is_established:
            assoc.release()


def storage_contexts_for_get(sop_classes: set[str] | None = None) -> list[Any]:
    """Storage contexts we offer as SCP within a C-GET association (at most 127 fit beside the GET one).

    The series' own SOP classes when the instance query told them (a small negotiation, and the PACS
    finds its context at once), else the image and object classes a viewer meets; each with every
    transfer syntax we can store untouched, so the PACS need not transcode.
    """
    from pynetdicom import ALL_TRANSFER_SYNTAXES, build_context
    from pynetdicom.presentation import AllStoragePresentationContexts

    if sop_classes:
        return [build_context(c, ALL_TRANSFER_SYNTAXES) for c in sorted(sop_classes)[:120]]

    wanted = ("CT", "MR", "Enhanced", "Computed Radiography", "Digital X-Ray", "Digital Mammography",
              "Ultrasound", "Secondary Capture", "Segmentation", "SR", "Positron", "Nuclear", "X-Ray",
              "RT ", "Encapsulated", "Grayscale Softcopy", "Key Object", "Parametric", "Legacy",
              "Spatial Registration", "VL ", "Ophthalmic", "Breast Tomosynthesis")
    from pydicom.uid import UID

    out = []
    for cx in AllStoragePresentationContexts:
        name = UID(str(cx.abstract_syntax)).name
        if any(w in name for w in wanted):
            out.append(build_context(str(cx.abstract_syntax), ALL_TRANSFER_SYNTAXES))
    return out[:120]


def _store_handler(sink: Sink, errors: list[str]) -> Callable[[Any], int]:
    def handle(event: Any) -> int:
        try:
            data = event.encoded_dataset(include_meta=True)
        except Exception as exc:  # noqa: BLE001 - a peer's malformed message must not kill the association
            errors.append(f"unreadable C-STORE data: {exc}")
            return STATUS_CANNOT_UNDERSTAND
        try:
            sink(data)
        except PacsCancelled:
            return STATUS_OUT_OF_RESOURCES
        except PacsError as exc:
            errors.append(str(exc))
            log.warning("refused instance %s: %s", event.request.AffectedSOPInstanceUID, exc)
            return STATUS_CANNOT_UNDERSTAND
        except OSError as exc:
            errors.append(f"cannot write: {exc}")
            return STATUS_OUT_OF_RESOURCES
        return STATUS_OK
    return handle


class _CancelWatch:
    """Aborts an association when ``cancel()`` turns true (the calling thread is blocked in pynetdicom)."""

    def __init__(self, assoc: Any, cancel: Callable[[], bool] | None) -> None:
        self.fired = False
        self._stop = threading.Event()
        self._assoc, self._cancel = assoc, cancel
        self._thread: threading.Thread | None = None
        if cancel is not None:
            self._thread = threading.Thread(target=self._run, name="pacs-cancel", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._cancel is not None
        while not self._stop.wait(0.05):
            if self._cancel():
                self.fired = True
                self._assoc._we_aborted = True
                self._assoc.abort()
                # The calling thread waits on the DIMSE queue up to dimse_timeout; wake it now.
                self._assoc.dimse.msg_queue.put((None, None))
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _sub_op_outcome(node: DimseNode, op: str, responses: Iterator[tuple[Any, Any]], watch: _CancelWatch,
                    errors: list[str]) -> int | None:
    """Waits for the final response; returns its completed sub-operations (None: not said) on success or
    warning, raises SubOperationsFailed on failure, PacsCancelled, or PacsError when the exchange broke."""
    import time

    final: Any = None
    last = time.monotonic()
    for status, identifier in responses:
        if not status or "Status" not in status:
            if watch.fired:
                raise PacsCancelled(f"{op} cancelled")
            raise PacsError(_lost(watch._assoc, node, op, time.monotonic() - last))
        last = time.monotonic()
        final = status
        if int(status.Status) not in (0xFF00, 0xFF01):
            break
    if watch.fired:
        raise PacsCancelled(f"{op} cancelled")
    code = int(final.Status) if final is not None else -1
    if code in (STATUS_OK, 0xB000):
        if code == 0xB000:
            failed = int(final.get("NumberOfFailedSuboperations", 0) or 0)
            errors.append(f"{_where(node)}: {failed} instance(s) failed in the {op}")
        return _count(final, "NumberOfCompletedSuboperations")
    if code == 0xFE00:
        raise PacsCancelled(f"{op} cancelled")
    raise SubOperationsFailed(node, op, final, errors)


def _count(status: Any, keyword: str) -> int | None:
    value = status.get(keyword) if status is not None else None
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


class SubOperationsFailed(PacsError):
    """The PACS answered a C-GET/C-MOVE with a failure status: its instances (some or all) did not come.

    ``status``: the final status code; ``comment``: its Error Comment (0000,0902), "" when none;
    ``completed``/``failed``/``warning``: its sub-operation counts, None when it did not give them.
    """

    def __init__(self, node: DimseNode, op: str, final: Any, errors: list[str]) -> None:
        from pynetdicom.status import QR_GET_SERVICE_CLASS_STATUS, QR_MOVE_SERVICE_CLASS_STATUS

        self.op = op
        self.status = int(final.Status) if final is not None else -1
        self.comment = str(final.get("ErrorComment", "") or "").strip() if final is not None else ""
        self.completed = _count(final, "NumberOfCompletedSuboperations")
        self.failed = _count(final, "NumberOfFailedSuboperations")
        self.warning = _count(final, "NumberOfWarningSuboperations")
        meanings = QR_GET_SERVICE_CLASS_STATUS if op == "C-GET" else QR_MOVE_SERVICE_CLASS_STATUS
        self.meaning = meanings.get(self.status, ("", "unknown status"))[1]
        counts = [f"{n} {what}" for n, what in ((self.completed, "sent"), (self.failed, "failed"),
                                                (self.warning, "with warnings")) if n]
        self.answer = (f"{_where(node)} answered the {op} with status 0x{self.status:04X} ({self.meaning}"
                       + (f": {self.comment!r}" if self.comment else "")
                       + (f"; sub-operations: {', '.join(counts)}" if counts else "") + ")")
        extra = "; " + "; ".join(errors[:3]) if errors else ""
        super().__init__(self.answer + extra)


def move_failure(node: DimseNode, ae_title: str, port: int, failure: SubOperationsFailed | None,
                 sent: int | None, connected: bool, refused: list[str]) -> str:
    """Why nothing of a C-MOVE arrived, in words, from what is known: the PACS's final status, its Error
    Comment and sub-operation counts (``failure``; None when it answered success, then ``sent``: the
    completed sub-operations it reported, None when it did not say), whether our storage SCP on ``port``
    saw any connection meanwhile (``connected``), and what it refused (``refused``)."""
    dest = node.calling_ae or ae_title  # the destination our C-MOVE names (move_series)
    check = f"check its entry for {dest} (this computer's address, port {port})"
    if failure is None:
        answer = f"{_where(node)} reported the C-MOVE as done" + (f" ({sent} sent)" if sent else "")
    else:
        answer = failure.answer
    if failure is not None and failure.status == 0xA801:
        return f"{answer}: add {dest} with this computer's address and port {port} to the PACS's modalities"
    if refused:
        return f"{answer}; it connected back to {dest} on port {port}, but we refused what it sent: {refused[0]}"
    if connected:
        return f"{answer}; it connected back to {dest} on port {port}, but no instance of the series arrived"
    if failure is None:
        return (f"{answer}, but nothing connected back to {dest} on port {port}: its entry for {dest} points to "
                f"another computer or port; {check}")
    return (f"{answer} and never connected back to {dest} on port {port}: the PACS does not know {dest}, or "
            f"has a wrong address or port for it, or a firewall blocks it; {check}")


def get_series(node: DimseNode, ae_title: str, study_uid: str, series_uid: str, sink: Sink, *,
               sop_uids: list[str] | None = None, sop_classes: set[str] | None = None,
               cancel: Callable[[], bool] | None = None) -> list[str]:
    """C-GET a series (or only ``sop_uids`` of it); each instance goes to ``sink`` on arrival.

    Returns the problems noted along the way (refused instances). Raises PacsError when the PACS does not
    offer C-GET (``NotOffered``), when the association breaks, and PacsCancelled when cancelled.
    """
    from pynetdicom import build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET  # type: ignore

    ae = _new_ae(node, ae_title)
    ae.add_requested_context(GET)
    contexts = storage_contexts_for_get(sop_classes)
    for cx in contexts:
        ae.add_requested_context(cx.abstract_syntax, cx.transfer_syntax)
    roles = [build_role(cx.abstract_syntax, scp_role=True) for cx in contexts]
    errors: list[str] = []
    assoc = associate(node, ae_title, ae, ext_neg=roles,
                      handlers=[(evt.EVT_C_STORE, _store_handler(sink, errors))])
    try:
        if not any(cx.abstract_syntax == GET for cx in assoc.accepted_contexts):
            raise NotOffered(f"{_where(node)} does not offer C-GET")
        watch = _CancelWatch(assoc, cancel)
        try:
            _sub_op_outcome(node, "C-GET", assoc.send_c_get(_retrieve_identifier(study_uid, series_uid, sop_uids),
                                                            GET), watch, errors)
        finally:
            watch.close()
    finally:
        if assoc.is_established:
            assoc.release()
    return errors


class NotOffered(PacsError):
    """The peer accepted the association but not the retrieve service asked for."""


def move_series(node: DimseNode, ae_title: str, study_uid: str, series_uid: str, *,
                sop_uids: list[str] | None = None, cancel: Callable[[], bool] | None = None,
                errors: list[str] | None = None, port: int | None = None) -> int | None:
    """C-MOVE a series to ``ae_title`` (our storage SCP on ``port``, which must be running and routing the
    series).

    Returns the sub-operations the PACS reports as completed (None when it does not say); raises
    SubOperationsFailed when it answers a failure (:func:`move_failure` explains it)."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE  # type: ignore

    ae = _new_ae(node, ae_title)
    ae.add_requested_context(MOVE)
    assoc = associate(node, ae_title, ae)
    errors = errors if errors is not None else []
    try:
        watch = _CancelWatch(assoc, cancel)
        try:
            return _sub_op_outcome(node, "C-MOVE", assoc.send_c_move(
                _retrieve_identifier(study_uid, series_uid, sop_uids), node.calling_ae or ae_title, MOVE),
                watch, errors)
        except PacsError as exc:
            if port is None or not getattr(assoc, "_peer_aborted", False) or getattr(assoc, "_we_aborted", False):
                raise
            dest = node.calling_ae or ae_title
            # Orthanc ends the association this way when it has no entry for the calling AE title.
            raise PacsError(f"{_where(node)} aborted the association on our C-MOVE (we are {dest!r}): it does "
                            f"not know {dest}, or not at this computer's address; add {dest} with this "
                            f"computer's address and port {port} to the PACS's modalities") from exc
        finally:
            watch.close()
    finally:
        if assoc.is_established:
            assoc.release()


class StorageServer:
    """Our storage SCP (C-STORE, and C-ECHO): the C-MOVE destination and the ``pacs listen`` listener.

    Instances of a series that a retrieve registered (:meth:`route`) go to that retrieve's sink; others go
    to ``default_sink`` (the listener's store) or are refused when there is none. ``tls``: a
    :func:`server_tls_context` to accept DICOM TLS only.
    """

    def __init__(self, ae_title: str, port: int, *, bind: str = "", default_sink: Sink | None = None,
                 timeout_s: float = 60.0, tls: ssl.SSLContext | None = None) -> None:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
        from pynetdicom.presentation import AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        quiet_identifiers()
        self.ae_title = check_ae(ae_title, "our AE title")
        self.port = port
        self.errors: list[str] = []
        #: Connections peers opened to us so far (a C-MOVE that brings nothing: did the PACS reach us?).
        self.connections = 0
        self._routes: dict[str, Sink] = {}
        self._lock = threading.Lock()
        self._default = default_sink
        ae = AE(ae_title=self.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
        ae.maximum_associations = 16
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(str(cx.abstract_syntax), ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.require_called_aet = False
        self._ae = ae
        try:
            server = ae.start_server((bind, port), block=False, ssl_context=tls,
                                     evt_handlers=[(evt.EVT_C_STORE, _store_handler(self._dispatch, self.errors)),
                                                   (evt.EVT_CONN_OPEN, self._connected)])
        except OSError as exc:
            raise PacsError(f"cannot listen on port {port}: {exc.strerror or exc}") from exc
        assert server is not None  # block=False returns the server
        self._server = server
        self.port = int(server.server_address[1])

    def _connected(self, event: Any) -> None:
        with self._lock:
            self.connections += 1

    def _dispatch(self, data: bytes) -> None:
        from viewer.io.pacs.store import check_instance

        info = check_instance(data)
        with self._lock:
            sink = self._routes.get(info.series_uid, self._default)
        if sink is None:
            raise PacsError(f"instance {info.sop_uid} of series {info.series_uid} was not asked for")
        sink(data)

    def route(self, series_uid: str, sink: Sink) -> None:
        with self._lock:
            self._routes[series_uid] = sink

    def unroute(self, series_uid: str) -> None:
        with self._lock:
            self._routes.pop(series_uid, None)

    def close(self) -> None:
        # A peer that connected and never asked for an association: pynetdicom's abort on shutdown is an
        # invalid event in that state (a traceback on stderr); closing its connection ends it cleanly.
        for assoc in list(self._server.active_associations):
            if assoc.dul.state_machine.current_state == "Sta2" and assoc.dul.socket is not None:
                assoc.dul.socket.close()
        self._server.shutdown()
        self._ae.shutdown()

    def __enter__(self) -> StorageServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send_files(node: DimseNode, ae_title: str, paths: list[str], *,
               progress: Callable[[int, int], None] | None = None,
               cancel: Callable[[], bool] | None = None) -> tuple[int, list[str]]:
    """C-STORE files (their own transfer syntax, sent without decoding). Returns (sent, problems)."""
    import pydicom
    from pynetdicom import build_context

    metas: list[tuple[str, str, str]] = []
    problems: list[str] = []
    for p in paths:
        try:
            meta = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"])
            metas.append((p, str(meta.SOPClassUID), str(meta.file_meta.TransferSyntaxUID)))
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, the rest sent
            problems.append(f"{p}: not sendable ({exc})")
    pairs = sorted({(c, t) for _, c, t in metas})
    if not metas:
        return 0, problems
    ae = _new_ae(node, ae_title)
    by_class: dict[str, set[str]] = {}
    for c, t in pairs:
        by_class.setdefault(c, set()).add(t)
    if len(by_class) > 127:
        raise PacsError("more than 127 different SOP classes in one send; send them in parts")
    for c, ts in by_class.items():
        ae.add_requested_context(build_context(c, sorted(ts)).abstract_syntax, sorted(ts))
    assoc = associate(node, ae_title, ae)
    sent = 0
    try:
        for i, (p, _c, _t) in enumerate(metas):
            if cancel is not None and cancel():
                raise PacsCancelled(f"send cancelled after {sent} of {len(metas)} files")
            status = assoc.send_c_store(p)
            if not status or "Status" not in status:
                raise PacsError(_lost(assoc, node, "C-STORE") + f" after {sent} of {len(metas)} files")
            code = int(status.Status)
            if code in (STATUS_OK, 0xB000, 0xB007, 0xB006):
                sent += 1
            else:
                problems.append(f"{p}: refused by {_where(node)} with status 0x{code:04X}")
            if progress is not None:
                progress(i + 1, len(metas))
    finally:
        if assoc.is_established:
            assoc.release()
    return sent, problems
