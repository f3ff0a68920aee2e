"""Loaded volumes kept for reopening: least recently used first out, bounded by memory.

Reopening a series (back to a prior, another viewport, MPR and back) must not decode it again; keeping
every volume would exhaust memory over a reading session. The bound counts the bytes of the cached
arrays (a volume also shown in a viewport costs nothing extra while it is shown, but counts the same).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Hashable

from viewer.core.volume import Volume

# A quarter of the machine's memory, at most 4 GiB: room for a dozen 512x512x300 CT series.
MAX_DEFAULT_BYTES = 4 << 30


def default_limit() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 1 << 30
    return int(min(MAX_DEFAULT_BYTES, total // 4))


class VolumeCache:
    """An LRU map from a series' key to its loaded :class:`Volume`, holding at most ``limit_bytes``.

    A volume larger than the limit is not kept. ``hits``/``misses`` count lookups (for tests and logs).
    """

    def __init__(self, limit_bytes: int | None = None) -> None:
        self.limit_bytes = default_limit() if limit_bytes is None else int(limit_bytes)
        self._items: OrderedDict[Hashable, Volume] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        return sum(v.array.nbytes for v in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable) -> Volume | None:
        vol = self._items.get(key)
        if vol is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return vol

    def put(self, key: Hashable, volume: Volume) -> None:
        self._items.pop(key, None)
        if volume.array.nbytes > self.limit_bytes:
            return
        self._items[key] = volume
        while self.nbytes > self.limit_bytes:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()
