"""Which series a ``--series`` argument names: one rule for every command and the viewer.

Series are numbered from 1 in the scan's order (``viewer.io.series.find_stacks``), as the browser, the
viewport overlay, ``scan``'s tree, ``info``'s ``[N]`` lines and the ``--series N`` of ``info``,
``screenshot``, ``infer`` and ``export`` number them. 0-based indices stay inside the code and in JSON
fields named ``index``.
"""

from __future__ import annotations

from collections.abc import Sequence


class SeriesNotFound(ValueError):
    """``--series`` names no series; the message says what was found and how to name one."""


def pick_series(uids: Sequence[str], wanted: str | int) -> list[int]:
    """0-based positions in ``uids`` (the scan's order) of the series ``wanted`` names.

    ``wanted`` is a SeriesInstanceUID (every stack of that series: a series split into several stacks
    gives several), or a number N counted from 1 (an int, or a string of digits that is no series' UID),
    which gives ``[N - 1]``. Raises :class:`SeriesNotFound` with a message fit for the user.
    """
    n = len(uids)
    text = str(wanted).strip()
    if isinstance(wanted, str):
        found = [i for i, uid in enumerate(uids) if uid and uid == text]
        if found:
            return found
    if isinstance(wanted, int) or text.isdigit():
        number = int(text)
        if 1 <= number <= n:
            return [number - 1]
        raise SeriesNotFound(f"series {number} is outside 1..{n}: {n} series found, numbered from 1 in the "
                             "scan's order as the viewer, `scan` and `info` number them")
    known = ", ".join(uid or "(empty)" for uid in uids[:10]) + (", ..." if n > 10 else "")
    raise SeriesNotFound(f"no series with SeriesInstanceUID {text!r} among the {n} found ({known}); give its "
                         f"UID or its number 1..{n}")
