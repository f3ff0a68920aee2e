"""Remote nodes: how they are written on the command line and kept in the user's settings.

A DIMSE node is written ``dimse://CALLED_AE@host:port`` (``dimses://`` for TLS), a DICOMweb node by its
base URL (``http://host:8042/dicom-web``). Saved nodes live in ``pacs-nodes.json`` in the config folder
(``$VIEWER_CONFIG_DIR``, else the platform's: ``~/.config/dicom-viewer`` on Linux) and can be named on the
command line by their ``name``. The file is written atomically and readable by its owner only (it may
hold a password or token).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from viewer.core.atomic import write_atomically
from viewer.core.paths import platform_config_dir
from viewer.io.pacs.errors import PacsError

DEFAULT_AE = "DICOMVIEWER"
DEFAULT_PORT = 11112
DEFAULT_TIMEOUT_S = 30.0
RETRIEVE_METHODS = ("auto", "get", "move")


@dataclass(frozen=True)
class DimseNode:
    """A DIMSE peer. ``retrieve``: ``auto`` (C-GET when offered, else C-MOVE), ``get`` or ``move``.

    ``calling_ae`` overrides the command's ``--ae`` for this node (some PACS know us under another
    title). TLS: ``tls`` on, the server's certificate checked against ``tls_ca`` (PEM; empty: the system's
    trust store) and its host name unless ``tls_verify`` is off; ``tls_cert``/``tls_key``: our client
    certificate (PEM), for a PACS that requires one.
    """

    called_ae: str
    host: str
    port: int
    name: str = ""
    calling_ae: str = ""
    retrieve: str = "auto"
    tls: bool = False
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_verify: bool = True
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def kind(self) -> str:
        return "dimse"

    @property
    def url(self) -> str:
        return f"{'dimses' if self.tls else 'dimse'}://{self.called_ae}@{self.host}:{self.port}"


@dataclass(frozen=True)
class WebNode:
    """A DICOMweb service. ``auth``: ``""``, ``basic`` (``username``/``password``) or ``bearer`` (``token``)."""

    base_url: str
    name: str = ""
    auth: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    tls_ca: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def kind(self) -> str:
        return "dicomweb"

    @property
    def url(self) -> str:
        return self.base_url


Node = DimseNode | WebNode


def node_label(node: Node) -> str:
    """How a node is shown: its saved name with its URL, or the URL."""
    return f"{node.name} ({node.url})" if node.name else node.url

_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # VR AE: 16 chars, no backslash or control chars


def check_ae(title: str, what: str = "AE title") -> str:
    """``title`` if it is a valid AE title (1-16 printable characters, no backslash), else PacsError."""
    if not _AE_RE.match(title) or not title.strip():
        raise PacsError(f"{what} {title!r} is not valid: 1 to 16 printable characters, no backslash")
    return title


def parse_node(text: str, saved: list[Node] | None = None) -> Node:
    """A node from ``dimse://AE@host:port``, ``dimses://...``, ``http(s)://...`` or a saved node's name.

    Raises PacsError with what is wrong (missing AE, port, unknown scheme or name).
    """
    if saved is None and "://" not in text:
        saved = load_nodes()
    for node in saved or []:
        if node.name and node.name == text:
            return node
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("dimse", "dimses"):
        if not parts.username:
            raise PacsError(f"node {text!r}: the called AE title is missing (dimse://CALLED_AE@host:port)")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or not port:
            raise PacsError(f"node {text!r}: host and port are needed (dimse://CALLED_AE@host:port)")
        return DimseNode(called_ae=check_ae(parts.username, "called AE title"), host=parts.hostname, port=port,
                         tls=scheme == "dimses")
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise PacsError(f"node {text!r}: no host in the URL")
        return WebNode(base_url=text.rstrip("/"))
    raise PacsError(f"node {text!r} is neither a saved node nor dimse://CALLED_AE@host:port nor a "
                    "DICOMweb URL (http:// or https://)")


def with_tls(node: Node, *, ca: str = "", cert: str = "", key: str = "", verify: bool = True) -> Node:
    """``node`` with the command line's TLS options: any of them turns TLS on for a DIMSE node (as
    ``dimses://`` does); a DICOMweb node takes only the CA (``https://`` is its TLS)."""
    import dataclasses

    if isinstance(node, WebNode):
        if cert or key or not verify:
            raise PacsError("--tls-cert, --tls-key and --tls-no-verify are for DIMSE nodes; a DICOMweb node "
                            "takes --tls-ca")
        return dataclasses.replace(node, tls_ca=ca or node.tls_ca)
    if key and not (cert or node.tls_cert):
        raise PacsError("--tls-key needs --tls-cert (our certificate)")
    if not (ca or cert or key or not verify):
        return node
    return dataclasses.replace(node, tls=True, tls_ca=ca or node.tls_ca, tls_cert=cert or node.tls_cert,
                               tls_key=key or node.tls_key, tls_verify=verify and node.tls_verify)


def nodes_path() -> Path:
    """``$VIEWER_CONFIG_DIR/pacs-nodes.json``, else in the platform config folder."""
    base = os.environ.get("VIEWER_CONFIG_DIR")
    return (Path(base) if base else platform_config_dir()) / "pacs-nodes.json"


def node_to_dict(node: Node) -> dict[str, Any]:
    d = {"kind": node.kind, **asdict(node)}
    return d


def node_from_dict(d: dict[str, Any]) -> Node:
    kind = d.get("kind", "dimse")
    cls: type[DimseNode] | type[WebNode] = DimseNode if kind == "dimse" else WebNode
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names - {"kind"}
    if unknown:
        raise PacsError(f"saved node {d.get('name', '?')!r}: unknown settings {sorted(unknown)}")
    node = cls(**{k: v for k, v in d.items() if k in names})
    if isinstance(node, DimseNode):
        check_ae(node.called_ae, "called AE title")
        if node.retrieve not in RETRIEVE_METHODS:
            raise PacsError(f"saved node {node.name!r}: retrieve must be one of {RETRIEVE_METHODS}")
    return node


def load_nodes(path: Path | None = None) -> list[Node]:
    """The saved nodes; an absent file is an empty list, an unreadable one a PacsError naming the file."""
    path = path or nodes_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise PacsError(f"cannot read the saved PACS nodes in {path}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("nodes"), list):
        raise PacsError(f"{path}: expected {{\"nodes\": [...]}}")
    return [node_from_dict(d) for d in raw["nodes"]]


def save_nodes(nodes: list[Node], path: Path | None = None) -> Path:
    """Write the node list atomically (temp file, fsync, rename), mode 0600."""
    path = path or nodes_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"nodes": [node_to_dict(n) for n in nodes]}, indent=1)
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), mode=0o600)
    return path
