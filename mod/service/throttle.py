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

from mod.config.validator import Security
from mod.error import Throttled

MAX_KEYS = 100_000
KEPT = 64  # failures kept per key when its limit is off: enough for the delay


class LoginThrottle:
    def __init__(self, settings: Security) -> None:
        self.settings = settings
        self._failures: dict[tuple[str, ...], deque[float]] = {}

    def _recent(self, key: tuple[str, ...], clock: float) -> deque[float] | None:
        stamps = self._failures.get(key)
        if stamps is None:
            return None
        horizon = clock - self.settings.login_window
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
            return None
        return stamps

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
            stamps = self._recent(key, clock)
            if limit and stamps is not None and len(stamps) >= limit:
                raise Throttled(stamps[-limit] + self.settings.login_window - clock,
                                "Too many failed logins")

    def failed(self, login: str, address: str) -> float:
        """Count a failure; return how long to wait before answering it."""
        clock = time.monotonic()
        if len(self._failures) >= MAX_KEYS:
            for key in list(self._failures):
                self._recent(key, clock)
            if len(self._failures) >= MAX_KEYS:
                self._failures.clear()
        count = 0
        for key, limit in self._keys(login, address):
            stamps = self._recent(key, clock) or self._failures.setdefault(
                key, deque(maxlen=max(limit, KEPT)))
            stamps.append(clock)
            if key[0] == "login":
                count = len(stamps)
        if count <= 1 or not self.settings.login_delay:
            return 0.0
        delay: float = self.settings.login_delay * 2.0 ** (count - 2)
        return min(delay, self.settings.login_delay_max)

    def succeeded(self, login: str, address: str) -> None:
        self._failures.pop(("login", login, address), None)


class TokenThrottle:
    """Wrong registration tokens, per client address over LOGIN_WINDOW: past TOKEN_FAILURES,
    every registration token check from the address (the validity endpoint, a registration)
    is refused until the oldest failure leaves the window. A token this server never issued
    is a failure; one that is used up or expired is not (it was issued, so nobody guessed it,
    and the losers of a race for its last use are not guessing either)."""

    def __init__(self, settings: Security) -> None:
        self.settings = settings
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, clock: float) -> deque[float] | None:
        stamps = self._failures.get(address)
        if stamps is None:
            return None
        horizon = clock - self.settings.login_window
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if not stamps:
            del self._failures[address]
            return None
        return stamps

    def check(self, address: str) -> None:
        """Raise `Throttled` while this address may not try a registration token."""
        limit = self.settings.token_failures
        if not limit or not address:
            return
        clock = time.monotonic()
        stamps = self._recent(address, clock)
        if stamps is not None and len(stamps) >= limit:
            raise Throttled(stamps[-limit] + self.settings.login_window - clock,
                            "Too many wrong registration tokens")

    def failed(self, address: str) -> None:
        limit = self.settings.token_failures
        if not limit or not address:
            return
        clock = time.monotonic()
        if len(self._failures) >= MAX_KEYS:
            for key in list(self._failures):
                self._recent(key, clock)
            if len(self._failures) >= MAX_KEYS:
                self._failures.clear()
        stamps = self._recent(address, clock) or self._failures.setdefault(
            address, deque(maxlen=limit))
        stamps.append(clock)
