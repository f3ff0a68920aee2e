"""DICOMweb on dicomweb-client: QIDO-RS probe and query, WADO-RS retrieve (streamed), STOW-RS send.

HTTP failures become :class:`PacsError` in words: refused, no route, timeout, TLS, 401/403 (credentials),
404 (wrong base URL). Retrieval asks for the stored transfer syntax (``transfer-syntax=*``) so nothing
is transcoded, and hands on each part of the multipart answer as soon as it has arrived.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from viewer.io.pacs.errors import PacsCancelled, PacsError
from viewer.io.pacs.nodes import WebNode
from viewer.io.pacs.query import SERIES_KEYS, STUDY_KEYS, Match, Query, match_from_dataset, study_filters

log = logging.getLogger(__name__)

#: Results asked per QIDO request: a small first page shows quickly (Orthanc spends ~9 ms a study on a
#: QIDO answer: 5 results 34 ms, 100 results 0.9 s), then pages ten times larger up to PAGE.
FIRST_PAGE = 5
PAGE = 200
_ACCEPT_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'


class _RedactQueries(logging.Filter):
    """Drops URL query strings from a library's log records: a QIDO URL carries the patient's name or ID."""

    _QUERY = re.compile(r"\?[^\s'\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "?" in text:
            record.msg, record.args = self._QUERY.sub("?<query>", text), ()
        return True


_REDACTING: list[logging.Filter] = []


def _redact_library_logs() -> None:
    if not _REDACTING:
        _REDACTING.append(_RedactQueries())
        for name in ("dicomweb_client.web", "dicomweb_client", "urllib3.connectionpool"):
            logging.getLogger(name).addFilter(_REDACTING[0])


def client(node: WebNode) -> Any:
    """A dicomweb-client for ``node`` with its auth and a timeout on every request."""
    import requests
    from dicomweb_client.api import DICOMwebClient

    _redact_library_logs()
    session = requests.Session()
    if node.auth == "basic":
        session.auth = (node.username, node.password)
    elif node.auth == "bearer":
        session.headers["Authorization"] = f"Bearer {node.token}"
    if node.tls_ca:
        session.verify = node.tls_ca
    c = DICOMwebClient(url=node.base_url, session=session, timeout=node.timeout_s)
    # dicomweb-client retries failed requests with exponential back-off (minutes against a hung server);
    # we report at once and the next retrieve resumes.
    c.set_http_retry_params(retry=False)
    return c


def http_error(node: WebNode, exc: BaseException, what: str) -> PacsError:
    """``exc`` from requests/dicomweb-client as a PacsError in words."""
    import requests

    where = node.base_url
    if isinstance(exc, requests.exceptions.SSLError):
        return PacsError(f"TLS failure talking to {where}: {exc}")
    if isinstance(exc, requests.exceptions.Timeout):
        return PacsError(f"{where}: no answer to the {what} within {node.timeout_s:g} s (timeout)")
    if isinstance(exc, requests.exceptions.ConnectionError):
        from urllib.parse import urlsplit

        parts, text = urlsplit(where), str(exc)
        if "Connection refused" in text:
            return PacsError(f"nothing is listening at {where} (connection refused)")
        if "No route" in text or "unreachable" in text:
            return PacsError(f"no route to host {parts.hostname} ({where}): check the address and this "
                             "computer's network")
        if "Name or service not known" in text or "getaddrinfo" in text:
            return PacsError(f"unknown host in {where}")
        return PacsError(f"the connection to {where} broke during the {what}: {text[:200]}")
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        if code == 401:
            return PacsError(f"{where} answered 401 Unauthorized: the {what} needs credentials "
                             "(set the node's basic or bearer auth)")
        if code == 403:
            return PacsError(f"{where} answered 403 Forbidden: these credentials may not do the {what}")
        if code == 404:
            return PacsError(f"{where} answered 404 Not Found to the {what}: wrong DICOMweb base URL, or "
                             "the object is not there")
        return PacsError(f"{where} answered HTTP {code} to the {what}: {exc.response.reason}")
    return PacsError(f"{where}: the {what} failed: {exc}")


@contextmanager
def _catch(node: WebNode, what: str) -> Iterator[None]:
    """Turn requests' exceptions inside the block into a PacsError in words."""
    import requests

    try:
        yield
    except (requests.exceptions.RequestException, OSError) as exc:
        raise http_error(node, exc, what) from exc


def echo(node: WebNode) -> float:
    """A QIDO-RS probe (``GET studies?limit=1``); the round trip in seconds."""
    import time

    t0 = time.perf_counter()
    with _catch(node, "QIDO-RS probe"):
        client(node).search_for_studies(limit=1)
    return time.perf_counter() - t0


def _datasets(results: list[dict[str, Any]]) -> Iterator[Any]:
    from pydicom.dataset import Dataset

    for item in results:
        yield Dataset.from_json(item)


def _qido(c: Any, path: str, filters: dict[str, str], fields: tuple[str, ...], **extra: Any) -> list[dict[str, Any]]:
    """One QIDO-RS request. The query string is built here: wildcards stay literal (``*``), because some
    servers (Orthanc's plugin 1.7) do not decode ``%2A`` and would match nothing."""
    from urllib.parse import urlencode

    params: list[tuple[str, Any]] = [*filters.items(), *(("includefield", f) for f in fields), *extra.items()]
    url = f"{c.base_url}/{path}?{urlencode(params, safe='*')}"
    return list(c._http_get_application_json(url) or [])


def find(node: WebNode, query: Query, *, cancel: Callable[[], bool] | None = None,
         page: int = PAGE) -> Iterator[Match]:
    """QIDO-RS, one page of ``page`` results at a time, yielded as each page arrives."""
    c = client(node)

    def pages(path: str, level: str, filters: dict[str, str], fields: tuple[str, ...]) -> Iterator[Match]:
        offset, size = 0, min(FIRST_PAGE, page)
        while True:
            if cancel is not None and cancel():
                raise PacsCancelled("query cancelled")
            with _catch(node, f"{level} query"):
                got = _qido(c, path, filters, fields, limit=size, offset=offset)
            for ds in _datasets(got):
                yield match_from_dataset(ds, level)
            if len(got) < size:
                return
            offset, size = offset + len(got), min(page, size * 10)

    filters = study_filters(query)
    if query.level == "study":
        yield from pages("studies", "study", filters, STUDY_KEYS)
        return
    studies = [query.study_uid] if query.study_uid else [
        m.study_uid for m in pages("studies", "study", filters, STUDY_KEYS)]
    series_filters = {k: v for k, v in (("Modality", query.modality), ("SeriesDescription", query.description)) if v}
    for uid in studies:
        yield from pages(f"studies/{uid}/series", "series", series_filters, SERIES_KEYS)


def list_instances(node: WebNode, study_uid: str, series_uid: str) -> dict[str, str]:
    """SOP Instance UID -> SOP Class UID of a series (QIDO-RS)."""
    c = client(node)
    out: dict[str, str] = {}
    offset = 0
    while True:
        with _catch(node, "instance query"):
            got = _qido(c, f"studies/{study_uid}/series/{series_uid}/instances", {}, ("SOPClassUID",),
                        limit=1000, offset=offset)
        for ds in _datasets(got):
            out[str(ds.get("SOPInstanceUID", ""))] = str(ds.get("SOPClassUID", ""))
        if len(got) < 1000:
            break
        offset += len(got)
    out.pop("", None)
    return out


def count_instances(node: WebNode, study_uid: str, series_uid: str) -> int | None:
    """How many instances the server holds in a series (one series-level QIDO-RS: ~4 ms on loopback Orthanc,
    against ~150 ms of its CPU to list 134 instances); None when it does not say."""
    with _catch(node, "series query"):
        got = _qido(client(node), f"studies/{study_uid}/series", {"SeriesInstanceUID": series_uid},
                    ("NumberOfSeriesRelatedInstances",))
    for ds in _datasets(got):
        value = ds.get("NumberOfSeriesRelatedInstances")
        if str(ds.get("SeriesInstanceUID", "")) == series_uid and value not in (None, ""):
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


#: WADO-RS requests at a time when single instances are fetched (a resume): one request per instance costs
#: Orthanc a few ms of lookup each, hidden by running several (bench_pacs.py: resume).
PARALLEL = 4


def retrieve_series(node: WebNode, study_uid: str, series_uid: str, sink: Callable[[bytes], None], *,
                    sop_uids: list[str] | None = None, cancel: Callable[[], bool] | None = None) -> list[str]:
    """WADO-RS: the whole series in one multipart stream, or only ``sop_uids`` (one request each, up to
    ``PARALLEL`` at a time, so a resume fetches exactly what is missing).

    Each part goes to ``sink`` as soon as it has arrived, from whichever request thread (a refused part,
    PacsError from the sink, is noted and the stream goes on). Returns the problems noted.
    """
    base = f"{node.base_url}/studies/{study_uid}/series/{series_uid}"
    if not sop_uids:
        return _stream(client(node), node, base, sink, cancel)
    stop = threading.Event()
    local = threading.local()

    def stopped() -> bool:
        return stop.is_set() or (cancel is not None and cancel())

    def one(uid: str) -> list[str]:
        if not hasattr(local, "client"):
            local.client = client(node)  # a requests session per thread: keep-alive, no shared state
        try:
            return _stream(local.client, node, f"{base}/instances/{uid}", sink, stopped)
        except BaseException:
            stop.set()  # the first failure stops the other requests
            raise

    problems: list[str] = []
    errors: list[PacsError] = []
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(sop_uids)), thread_name_prefix="pacs-wado") as ex:
        for future in [ex.submit(one, u) for u in sop_uids]:
            try:
                problems += future.result()
            except PacsError as exc:
                errors.append(exc)
    # The failure that stopped the others, not the cancellations it caused (unless the user cancelled).
    real = [e for e in errors if not isinstance(e, PacsCancelled)]
    if real or errors:
        raise (real or errors)[0]
    return problems


def _stream(c: Any, node: WebNode, url: str, sink: Callable[[bytes], None],
            cancel: Callable[[], bool] | None) -> list[str]:
    """One WADO-RS request; each part of the multipart answer to ``sink`` as it arrives."""
    problems: list[str] = []
    if cancel is not None and cancel():
        raise PacsCancelled("retrieve cancelled")
    with _catch(node, "WADO-RS retrieve"):
        # dicomweb-client's own multipart reader, on the raw parts: iter_series would parse every
        # instance into a pydicom Dataset that we would only write back out.
        # No HTTP compression: Orthanc gzips a single-instance answer on the fly, ~100 ms of its CPU per
        # 0.5 MB CT slice (3.5 ms without), for little gain on pixel data.
        response = c._http_get(url, headers={"Accept": _ACCEPT_DICOM, "Accept-Encoding": "identity"}, stream=True)
        try:
            for part in c._decode_multipart_message(response, stream=True):
                if cancel is not None and cancel():
                    raise PacsCancelled("retrieve cancelled")
                try:
                    sink(part)
                except PacsCancelled:
                    raise
                except PacsError as exc:
                    problems.append(str(exc))
        finally:
            response.close()
    return problems


def send_files(node: WebNode, paths: list[str], *, progress: Callable[[int, int], None] | None = None,
               cancel: Callable[[], bool] | None = None, batch: int = 16) -> tuple[int, list[str]]:
    """STOW-RS the files, ``batch`` per request. Returns (stored, problems)."""
    import pydicom

    c = client(node)
    sent, problems = 0, []
    for start in range(0, len(paths), batch):
        if cancel is not None and cancel():
            raise PacsCancelled(f"send cancelled after {sent} of {len(paths)} files")
        datasets = []
        for p in paths[start:start + batch]:
            try:
                datasets.append(pydicom.dcmread(p))
            except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, the rest sent
                problems.append(f"{p}: not sendable ({exc})")
        if not datasets:
            continue
        with _catch(node, "STOW-RS store"):
            result = c.store_instances(datasets)
        failed = result.get("FailedSOPSequence", []) if result is not None else []
        for item in failed:
            problems.append(f"{item.get('ReferencedSOPInstanceUID', '?')}: refused "
                            f"(reason 0x{int(item.get('FailureReason', 0)):04X})")
        sent += len(datasets) - len(failed)
        if progress is not None:
            progress(min(start + batch, len(paths)), len(paths))
    return sent, problems
