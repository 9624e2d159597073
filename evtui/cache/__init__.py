"""Exact and semantic caption cache on diskcache.

`SemanticCache.open(dir)` then `lookup(...)` before captioning a frame and `put(...)` after;
see `evtui.cache.semantic` for the cost model and `evtui.cache.quality` for how the default
threshold was measured.
"""

from evtui.cache.keys import SCOPES, scope_key
from evtui.cache.semantic import CacheError, CacheHit, SemanticCache, default_cache_dir

__all__ = ["SCOPES", "CacheError", "CacheHit", "SemanticCache", "default_cache_dir", "scope_key"]
