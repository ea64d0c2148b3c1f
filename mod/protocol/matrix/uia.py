"""User-interactive authentication with the password stage, for what needs the user's
password again (deleting devices, replacing cross-signing keys)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import JSONResponse, Response

from mod.error import ServiceError
from mod.protocol.matrix.routing import new_device_id

PASSWORD = "m.login.password"


def new_session() -> str:
    """A user-interactive authentication session's ID. Only a registration token stage
    carries anything (held in the database by session ID); any other session the client
    names is good."""
    return new_device_id() + new_device_id()


def password_of(body: dict[str, Any]) -> tuple[str | None, str]:
    """The password an `auth` dict carries (None without one), and its session."""
    auth = body.get("auth")
    if not isinstance(auth, dict):
        return None, new_session()
    given = auth.get("session")
    session = given if isinstance(given, str) else new_session()
    password = auth.get("password")
    if auth.get("type") != PASSWORD or not isinstance(password, str):
        return None, session
    return password, session


def challenge(session: str, error: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"flows": [{"stages": [PASSWORD]}], "params": {},
                            "session": session}
    if error:
        body.update(errcode="M_FORBIDDEN", error=error)
    return JSONResponse(body, status_code=401)


async def with_password(body: dict[str, Any], act: Callable[[str], Awaitable[None]]
                        ) -> Response | None:
    """Run `act(password)` once the body authenticates; else the 401 that asks for it."""
    password, session = password_of(body)
    if password is None:
        return challenge(session)
    try:
        await act(password)
    except ServiceError as exc:
        if exc.code == 401:
            return challenge(session, exc.detail)
        raise
    return None
