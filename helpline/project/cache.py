"""A Redis cache that fails open: when Redis is down or slow, the process carries on with a cache of its own.

What reads the cache on the request path (the public intake's per-address throttle, the API's throttles, the
console's login throttle) must never turn a Redis outage into a 500 or a wait. Every Redis call is bounded by short
socket timeouts (settings.py), and after one failure the process stops asking Redis for a few seconds and uses a
local in-memory cache instead: counters are then per process for a while, so the limits are looser, never stricter.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

logger = logging.getLogger(__name__)

# How long a process leaves Redis alone after a failure before trying it again.
RETRY_REDIS_AFTER_SECONDS = 5.0
# Per Redis location, when this process may ask it again. Django makes a cache object per thread; they share this.
_redis_resumes_at: dict[str, float] = {}
_lock = threading.Lock()


class _OneClientPerPool(RedisCacheClient):
    """Django's client builds a new redis.Redis for every cache call, and with it its table of about eighty
    response callbacks: 2 % of intake's CPU, which asks the cache twice a contact. A redis.Redis is safe to share
    between threads (each command takes a connection from the pool), so one per pool serves every call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)  # a random replica for a read, with several servers
        client = self._clients.get(index)
        if client is None:
            if index not in self._pools:  # the pool of the server chosen, not a second random choice
                self._pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)
            client = self._clients[index] = self._client(connection_pool=self._pools[index])
        return client


class FailOpenRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _OneClientPerPool
        self._location = str(server)
        # LocMemCache objects of one name share their storage, so every thread of the process sees one fallback.
        self._local = LocMemCache(f"fail-open:{self._location}", {"TIMEOUT": params.get("TIMEOUT", 300)})

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() >= _redis_resumes_at.get(self._location, 0.0):
            try:
                return getattr(super(), method)(*args, **kwargs)
            except ValueError:  # incr() of a missing key: an answer, not an outage
                raise
            except Exception as error:  # redis ConnectionError, TimeoutError, a full or read-only server, ...
                with _lock:
                    first = time.monotonic() >= _redis_resumes_at.get(self._location, 0.0)
                    _redis_resumes_at[self._location] = time.monotonic() + RETRY_REDIS_AFTER_SECONDS
                if first:
                    logger.warning(
                        "cache unavailable (%s); using a local cache for %.0f s", type(error).__name__,
                        RETRY_REDIS_AFTER_SECONDS,
                    )  # fmt: skip
        return getattr(self._local, method)(*args, **kwargs)

    def add(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("add", *args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get", *args, **kwargs)

    def set(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("set", *args, **kwargs)

    def touch(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("touch", *args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("delete", *args, **kwargs)

    def get_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get_many", *args, **kwargs)

    def has_key(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("has_key", *args, **kwargs)

    def incr(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("incr", *args, **kwargs)

    def set_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("set_many", *args, **kwargs)

    def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("delete_many", *args, **kwargs)

    def clear(self) -> Any:
        self._local.clear()
        return self._call("clear")
