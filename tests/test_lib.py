"""mod.lib: identifiers, tokens and password hashing (PROTOCOL.md "Authentication")."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher

from mod import lib
from mod.config.validator import Security


@pytest.fixture(autouse=True)
def default_cost() -> None:
    """The default cost, whatever a server run earlier in this process set."""
    defaults = Security()
    lib.set_password_cost(defaults.password_time_cost, defaults.password_memory_kib)


def test_uuids_are_decimal_128_bit_integers_and_unique() -> None:
    uuids = [lib.new_uuid() for _ in range(2000)]
    assert len(set(uuids)) == len(uuids)
    for uuid in uuids:
        assert isinstance(uuid, str) and uuid.isdigit() and uuid.isascii()
        assert 0 < int(uuid) < 2**128
        assert str(int(uuid)) == uuid  # no leading zeros
    # A uuid4 integer has its version nibble set: the values are spread over 128 bits.
    assert max(int(uuid) for uuid in uuids).bit_length() > 120


def test_tokens_carry_at_least_128_random_bits() -> None:
    tokens = [lib.new_token() for _ in range(2000)]
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 >= 128
        assert token.isascii() and " " not in token


def test_token_hash_is_a_stable_digest_that_hides_the_token() -> None:
    token = lib.new_token()
    digest = lib.token_hash(token)
    assert digest == lib.token_hash(token)
    assert digest != lib.token_hash(lib.new_token())
    assert token not in digest
    assert len(digest) == 64 and int(digest, 16) >= 0


def test_passwords_are_hashed_with_argon2id_and_salted() -> None:
    first = lib.hash_password("correct horse battery staple")
    second = lib.hash_password("correct horse battery staple")
    assert first.startswith("$argon2id$") and second.startswith("$argon2id$")
    assert first != second
    assert "correct horse" not in first
    assert lib.verify_password(first, "correct horse battery staple")
    assert lib.verify_password(second, "correct horse battery staple")
    assert not lib.verify_password(first, "correct horse battery stapl")
    assert not lib.verify_password(first, "")


def test_hashing_is_slow_enough_to_resist_guessing() -> None:
    started = time.perf_counter()
    lib.hash_password("a password")
    assert time.perf_counter() - started > 0.005
    parameters = PasswordHasher().hash("x").split("$")[3]
    assert "m=" in parameters and "t=" in parameters


def test_the_cost_of_new_hashes_is_a_setting_and_old_hashes_still_verify() -> None:
    made_before = lib.hash_password("old password")
    assert "$m=65536,t=3," in made_before
    lib.set_password_cost(1, 64)
    cheap = lib.hash_password("new password")
    assert cheap.startswith("$argon2id$") and "$m=64,t=1," in cheap
    assert lib.verify_password(made_before, "old password")
    assert lib.verify_password(cheap, "new password")
    assert not lib.verify_password(made_before, "new password")
    with pytest.raises(ValueError):
        Security(password_memory_kib=8)
    with pytest.raises(ValueError):
        Security(password_time_cost=0)


@pytest.mark.parametrize("stored", ["", "plain-text", "$argon2id$v=19$broken", "$2b$12$abc"])
def test_a_missing_destroyed_or_foreign_hash_never_matches(stored: str) -> None:
    assert lib.verify_password(stored, stored) is False
    assert lib.verify_password(stored, "anything") is False


def test_verifying_an_unknown_login_costs_about_as_much_as_a_known_one() -> None:
    stored = lib.hash_password("secret")

    def cost(fn: Callable[..., object], *args: str) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            fn(*args)
            best = min(best, time.perf_counter() - started)
        return best

    known = cost(lib.verify_password, stored, "wrong")
    unknown = cost(lib.verify_unknown, "wrong")
    destroyed = cost(lib.verify_password, "", "wrong")
    assert unknown > known / 3
    assert destroyed > known / 3
