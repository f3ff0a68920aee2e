"""Composition root of the desktop application (built by the UI work; see viewer/ui)."""

from __future__ import annotations


def run_app(argv: list[str]) -> int:
    raise SystemExit("the desktop application is not built yet")
