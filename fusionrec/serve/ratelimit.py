"""Token-bucket rate limits, one bucket per key (or per client address), bounded in number."""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict


class RateLimiter:
    """``rate`` tokens per second, at most ``burst`` held; :meth:`take` says how long to wait (0: go).

    Buckets live in an LRU of at most ``max_buckets`` entries: a client inventing addresses or
    keys cannot grow it, and a forgotten bucket is simply full again.
    """

    def __init__(self, rate: float, burst_seconds: float, max_buckets: int = 50_000) -> None:
        self.rate = float(rate)
        self.burst = max(1.0, self.rate * burst_seconds)
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: object) -> float:
        """Spend one token of ``key``'s bucket; 0.0 when allowed, else seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                wait, tokens = 0.0, tokens - 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        return wait


def retry_after(wait: float) -> str:
    """``Retry-After`` takes whole seconds: round up, at least 1."""
    return str(max(1, math.ceil(wait)))
