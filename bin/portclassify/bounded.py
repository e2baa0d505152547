"""Bounded per-value caches: cleared when full, so memory stays flat however many
distinct images, ports or destinations a search sees."""

# The CSV reader's image and destination caches by cell text (portclassify.csvchunk), which
# every event of an unlisted process passes, and the allowlist's candidate caches, which every
# labelled event passes: room for most of a busy network's working set, 2 to 3 MB each when
# full. They fill within the first chunks of a long search; a larger bound filled later and let
# memory grow 9% over 10 million events (BENCHMARKS.md, long run).
LARGE_CACHE_LIMIT = 16384

# Every other cache: the reader's port cache (ports are many and quick to read again) and the
# classifier's and reply cells', which serve the few percent of events of listed processes and
# so fill slowly. A small bound keeps a long search's memory where it was after
# its first chunks; a miss costs a microsecond or two.
CACHE_LIMIT = 4096


def remember(cache, key, value, limit=None):
    """cache[key] = value, the cache first cleared when it holds `limit` (default CACHE_LIMIT)
    entries; returns value."""
    if len(cache) >= (limit or CACHE_LIMIT):
        cache.clear()
    cache[key] = value
    return value
