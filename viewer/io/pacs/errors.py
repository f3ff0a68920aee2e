"""Errors of the PACS side of ``viewer.io``: one message a user can act on."""

from __future__ import annotations


class PacsError(Exception):
    """A network operation failed; the message says what, where (host, port, AE) and, when known, why."""


class PacsCancelled(PacsError):
    """The caller's ``cancel()`` returned True; what was complete before stays stored."""
