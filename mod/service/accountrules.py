"""What an account's login, username, email and password may be, for both protocols, the
operator's tool and the import."""

from __future__ import annotations

from mod.error import ServiceError

# What an MTP client can send (mod.protocol.mtp.api): an account beyond could never be used.
MAX_LOGIN = 256
MAX_USERNAME = 256
MAX_PASSWORD = 4096
MAX_BIO = 65536


def valid_email(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and "." in domain and " " not in address
                and not domain.startswith(".") and not domain.endswith("."))


def check_profile(username: str, email: str, bio: str = "") -> None:
    """The profile rules, for both protocols."""
    if len(username) > MAX_USERNAME:
        raise ServiceError(400, f"A username is at most {MAX_USERNAME} characters")
    if len(bio) > MAX_BIO:
        raise ServiceError(400, f"A bio is at most {MAX_BIO} characters")
    if email and not valid_email(email):
        raise ServiceError(415, "The email is not a valid address")


def check_password(password: str) -> None:
    """Refuse a new password that no client could log in with."""
    if not password:
        raise ServiceError(400, "the password cannot be empty")
    if len(password) > MAX_PASSWORD:
        raise ServiceError(400, f"the password is at most {MAX_PASSWORD} characters")
