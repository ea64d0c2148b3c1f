"""The original's rows, checked by this server's rules before `importer` writes them: each
check says why a row is refused (one line of the import's report), or None."""

from __future__ import annotations

from mod import content
from mod.db.original import OldFlow, OldMessage, OldUser
from mod.service.accountrules import MAX_LOGIN, MAX_PASSWORD, MAX_USERNAME
from mod.service.flows import FLOW_TYPES

# What an MTP client can send (mod.protocol.mtp.api): rows beyond could never be used.
MAX_UUID = 64
MAX_TITLE = 4096
MAX_INFO = 65536
MAX_BIO = 65536
MAX_TEXT = 16 * 1024 * 1024
# The integers both databases store (BIGINT, SQLite's INTEGER): a value beyond is refused by
# the database, and with it the whole batch, so rows holding one are skipped before.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def _unstorable(**fields: str) -> str | None:
    """Why one of these texts cannot be stored (NUL, a lone surrogate), or None."""
    for name, value in fields.items():
        try:
            content.check(value, name)
        except content.ContentError as exc:
            return f"its {exc.where} {exc.problem}"
    return None


def _out_of_range(**numbers: int | None) -> str | None:
    """Why one of these integers cannot be stored (beyond 64 bits), or None."""
    for name, value in numbers.items():
        if value is not None and not INT_MIN <= value <= INT_MAX:
            return f"its {name} {value} is beyond the 64-bit integers this server stores"
    return None


def user_problem(user: OldUser) -> str | None:
    """Why this server refuses the account, or None."""
    if not user.uuid or len(user.uuid) > MAX_UUID:
        return "its uuid is empty or longer than 64 characters"
    if not user.login.strip():
        return "its login is empty"
    if len(user.login) > MAX_LOGIN or len(user.username) > MAX_USERNAME:
        return f"its login or username is longer than {MAX_LOGIN} characters"
    if len(user.password) > MAX_PASSWORD:
        return f"its password is longer than {MAX_PASSWORD} characters"
    if len(user.bio) > MAX_BIO or len(user.avatar) > MAX_TEXT:
        return "its bio or avatar is too long"
    return _unstorable(uuid=user.uuid, login=user.login, username=user.username,
                       bio=user.bio, email=user.email, password=user.password)


def flow_problem(flow: OldFlow) -> str | None:
    if not flow.uuid or len(flow.uuid) > MAX_UUID:
        return "its uuid is empty or longer than 64 characters"
    if flow.flow_type not in FLOW_TYPES:
        return f"its type {flow.flow_type!r} is none of {', '.join(FLOW_TYPES)}"
    if len(flow.title) > MAX_TITLE or len(flow.info) > MAX_INFO:
        return f"its title or info is longer than {MAX_TITLE} or {MAX_INFO} characters"
    return _out_of_range(time=flow.time_created) or _unstorable(
        uuid=flow.uuid, title=flow.title, info=flow.info)


def message_problem(message: OldMessage) -> str | None:
    if not message.uuid or len(message.uuid) > MAX_UUID:
        return "its uuid is empty or longer than 64 characters"
    if message.flow_id is None:
        return "it has no flow"
    if message.user_id is None:
        return "it has no author"
    if message.time is None:
        return "it has no time"
    if len(message.text) > MAX_TEXT or any(len(v) > MAX_TEXT for v in message.files.values()):
        return "its text or a file is larger than 16 MiB"
    return _out_of_range(time=message.time, edited_time=message.edited_time) or _unstorable(
        uuid=message.uuid, text=message.text)
