"""The LRU volume cache: reopening is free, memory stays bounded, least recently used goes first."""

from __future__ import annotations

from tests.state.phantoms import ramp_volume
from viewer.state.volume_cache import VolumeCache, default_limit


def test_lru_bounded_by_bytes() -> None:
    a, b, c = (ramp_volume(shape=(10, 64, 64)) for _ in range(3))  # 80 KiB each (int16)
    cache = VolumeCache(limit_bytes=2 * a.array.nbytes)
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # a is now the most recent
    cache.put("c", c)  # over the limit: b, the least recently used, goes
    assert "b" not in cache and cache.get("a") is a and cache.get("c") is c
    assert cache.nbytes <= cache.limit_bytes
    assert (cache.hits, cache.misses) == (3, 0)
    assert cache.get("b") is None and cache.misses == 1
    big = ramp_volume(shape=(40, 64, 64))
    cache.put("big", big)  # larger than the whole cache: not kept, nothing else evicted for it
    assert "big" not in cache and len(cache) == 2


def test_default_limit_is_a_share_of_memory() -> None:
    assert 0 < default_limit() <= 4 << 30
