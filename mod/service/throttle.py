"""Failed logins and wrong registration tokens: slowed, then refused for a while.

Failures are counted per (login, client address) and per client address over a sliding
window. Counting per login alone would let anyone lock a victim out by guessing wrong on
purpose; per (login, address), a victim logging in from elsewhere is never refused, and a
refusal ends when the oldest failure leaves the window. Counts live in the memory of each
process: cheap, and bounded by MAX_KEYS.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Hashable

from mod.config.validator import Security
from mod.error import Throttled

MAX_KEYS = 100_000
KEPT = 64  # failures kept per key when its limit is off: enough for the delay


class FailureWindow:
    """The times of recent failures per key, over a sliding window; at most MAX_KEYS keys."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._stamps: dict[Hashable, deque[float]] = {}

    def recent(self, key: Hashable, clock: float) -> deque[float] | None:
        stamps = self._stamps.get(key)
        if stamps is None:
            return None
        horizon = clock - self.window
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if not stamps:
            del self._stamps[key]
            return None
        return stamps

    def wait(self, key: Hashable, limit: int, clock: float) -> float | None:
        """Seconds until `key` may try again, past `limit` failures; None: it may now."""
        stamps = self.recent(key, clock)
        if not limit or stamps is None or len(stamps) < limit:
            return None
        return stamps[-limit] + self.window - clock

    def add(self, key: Hashable, clock: float, keep: int) -> int:
        """Count a failure of `key` (its last `keep` kept); return its recent failures."""
        if len(self._stamps) >= MAX_KEYS:
            for old in list(self._stamps):
                self.recent(old, clock)
            if len(self._stamps) >= MAX_KEYS:
                self._stamps.clear()
        stamps = self.recent(key, clock) or self._stamps.setdefault(key, deque(maxlen=keep))
        stamps.append(clock)
        return len(stamps)

    def forget(self, key: Hashable) -> None:
        self._stamps.pop(key, None)


class LoginThrottle:
    def __init__(self, settings: Security) -> None:
        self.settings = settings
        self._failures = FailureWindow(settings.login_window)

    def _keys(self, login: str, address: str) -> list[tuple[tuple[str, ...], int]]:
        keys: list[tuple[tuple[str, ...], int]] = [
            (("login", login, address), self.settings.login_failures)]
        if address:
            keys.append((("address", address), self.settings.address_failures))
        return keys

    def check(self, login: str, address: str) -> None:
        """Raise `Throttled` while this login from this address may not try again."""
        clock = time.monotonic()
        for key, limit in self._keys(login, address):
            wait = self._failures.wait(key, limit, clock)
            if wait is not None:
                raise Throttled(wait, "Too many failed logins")

    def failed(self, login: str, address: str) -> float:
        """Count a failure; return how long to wait before answering it."""
        clock = time.monotonic()
        count = 0
        for key, limit in self._keys(login, address):
            recent = self._failures.add(key, clock, max(limit, KEPT))
            if key[0] == "login":
                count = recent
        if count <= 1 or not self.settings.login_delay:
            return 0.0
        delay: float = self.settings.login_delay * 2.0 ** (count - 2)
        return min(delay, self.settings.login_delay_max)

    def succeeded(self, login: str, address: str) -> None:
        self._failures.forget(("login", login, address))


class TokenThrottle:
    """Wrong registration tokens, per client address over LOGIN_WINDOW: past TOKEN_FAILURES,
    every registration token check from the address (the validity endpoint, a registration)
    is refused until the oldest failure leaves the window. A token this server never issued
    is a failure; one that is used up or expired is not (it was issued, so nobody guessed it,
    and the losers of a race for its last use are not guessing either)."""

    def __init__(self, settings: Security) -> None:
        self.settings = settings
        self._failures = FailureWindow(settings.login_window)

    def check(self, address: str) -> None:
        """Raise `Throttled` while this address may not try a registration token."""
        if not address:
            return
        wait = self._failures.wait(address, self.settings.token_failures, time.monotonic())
        if wait is not None:
            raise Throttled(wait, "Too many wrong registration tokens")

    def failed(self, address: str) -> None:
        limit = self.settings.token_failures
        if limit and address:
            self._failures.add(address, time.monotonic(), limit)
