"""Token buckets per key (a user's uuid): a rate with a burst above it, in each process's
memory. Cheap (one dictionary entry per key, at most MAX_KEYS of them) and lost on restart,
like the login throttle: a bound against floods, not an accounting."""

from __future__ import annotations

import time

from mod.error import Throttled

MAX_KEYS = 100_000


class Buckets:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._levels: dict[str, tuple[float, float]] = {}  # key -> (tokens, monotonic time)

    def take(self, key: str, what: str, cost: float = 1.0) -> None:
        """Spend `cost` tokens of `key`'s bucket, or raise `Throttled` (nothing spent) with
        the time until there are enough."""
        clock = time.monotonic()
        tokens, then = self._levels.get(key, (float(self.burst), clock))
        tokens = min(float(self.burst), tokens + (clock - then) * self.rate)
        if tokens < cost:
            raise Throttled((cost - tokens) / self.rate, what)
        if len(self._levels) >= MAX_KEYS and key not in self._levels:
            self._levels = {k: v for k, v in self._levels.items()
                            if v[0] + (clock - v[1]) * self.rate < self.burst}
            if len(self._levels) >= MAX_KEYS:
                self._levels.clear()
        self._levels[key] = (tokens - cost, clock)
