"""Text from files, made safe to print on a terminal."""

from __future__ import annotations

import re

# C0 and C1 control characters (ESC, CSI 0x9b, BEL, CR, ...), DEL, and lone surrogates (bytes of a file
# name that are not UTF-8, PEP 383): none may reach a terminal as they are.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with every control character and undecodable byte shown as a visible escape
    (``\\x1b``, ``\\udcff``), so that a DICOM string or a file name cannot move the cursor, clear the
    screen, retitle the window or end a line on a terminal."""
    return _UNSAFE.sub(lambda m: repr(m.group())[1:-1], text)
