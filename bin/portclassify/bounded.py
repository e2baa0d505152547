"""Bounded per-value caches: cleared when full, so memory stays flat however many
distinct images, ports or destinations a search sees."""

# Small enough that every cache reaches its bound within the first chunk of a long search
# (memory at 10 million events is memory at 100,000), large enough to hold the hot set most
# events share. A miss costs one to three microseconds: the lookups are cheap to repeat.
CACHE_LIMIT = 4096


def remember(cache, key, value):
    """cache[key] = value, the cache first cleared when it holds CACHE_LIMIT entries; returns value."""
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value
