"""The viewer as a DICOM network node: nodes, echo, query, retrieve, receive and send.

DIMSE (C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE) runs on pynetdicom (:mod:`.dimse`), DICOMweb (QIDO-RS,
WADO-RS, STOW-RS) on dicomweb-client (:mod:`.web`). What is retrieved or received lands in a local store
(:mod:`.store`: ``<root>/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm``, ordinary DICOM files, each written
to a hidden temporary name, fsynced and renamed, then put into the scan index). :mod:`.retrieve` chooses
the method (C-GET when offered, else C-MOVE to our own storage SCP; WADO-RS for DICOMweb nodes), skips
instances already on disk (resume) and runs series concurrently.

Every slow function is synchronous and takes ``progress``/``cancel`` callbacks; errors are
:class:`PacsError` with a message meant for the user. Logs name UIDs, never patient names or IDs.
"""

from __future__ import annotations

from viewer.io.pacs.errors import PacsCancelled, PacsError
from viewer.io.pacs.nodes import DimseNode, Node, WebNode, parse_node

__all__ = ["DimseNode", "Node", "PacsCancelled", "PacsError", "WebNode", "parse_node"]
