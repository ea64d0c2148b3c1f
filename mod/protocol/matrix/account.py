"""Matrix accounts: discovery, registration, login, logout, whoami, display names.

A Matrix user is an MTP user (`@<login>:<server name>`, the same password); a Matrix access
token is an MTP auth_id whose `device` is the Matrix device ID.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from mod.error import ServiceError
from mod.protocol.matrix import ids
from mod.protocol.matrix.api import (
    AuthData,
    AuthFlows,
    Available,
    AvatarUrl,
    AvatarUrlRequest,
    BaseUrl,
    DisplayName,
    DisplayNameRequest,
    Empty,
    LoginFlow,
    LoginFlows,
    LoginReply,
    LoginRequest,
    Profile,
    RegisterRequest,
    Stages,
    Validity,
    Versions,
    WellKnown,
    WhoAmI,
)
from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.routing import Call, new_device_id
from mod.protocol.matrix.uia import new_session, with_password

SPEC_VERSIONS = ["r0.6.1", *(f"v1.{minor}" for minor in range(1, 12))]
DUMMY = "m.login.dummy"
TOKEN = "m.login.registration_token"


async def versions(call: Call) -> Versions:
    """GET /_matrix/client/versions"""
    return Versions(versions=SPEC_VERSIONS)


async def well_known(call: Call) -> WellKnown:
    """GET /.well-known/matrix/client"""
    base = call.matrix.settings.base_url
    if not base:
        url = call.request.url
        base = f"{url.scheme}://{url.netloc}"
    return WellKnown.model_validate({"m.homeserver": BaseUrl(base_url=base.rstrip("/"))})


async def login_flows(call: Call) -> LoginFlows:
    """GET /_matrix/client/v3/login"""
    return LoginFlows(flows=[LoginFlow(type="m.login.password")])


async def login(call: Call) -> LoginReply:
    """POST /_matrix/client/v3/login"""
    body = await call.body(LoginRequest)
    if body.type != "m.login.password":
        raise MatrixError(400, Code.UNKNOWN, f"Unknown login type {body.type}")
    if body.identifier is not None and body.identifier.type != "m.id.user":
        raise MatrixError(400, Code.UNKNOWN, "Only m.id.user identifiers are supported")
    user = body.identifier.user if body.identifier is not None else body.user
    if not user:
        raise MatrixError(400, Code.MISSING_PARAM, "Missing field: identifier.user")
    if body.password is None:
        raise MatrixError(400, Code.MISSING_PARAM, "Missing field: password")
    name = ids.login_of(user, call.server_name)
    if name is None:
        raise MatrixError(403, Code.FORBIDDEN, "Wrong login or password")
    device = body.device_id or new_device_id()
    signed_in = await call.service.accounts.login(
        name, body.password, device=device, address=_address(call),
        device_name=body.initial_device_display_name or "")
    return LoginReply(user_id=ids.user_id(signed_in.user.login, call.server_name),
                      access_token=signed_in.token, device_id=device,
                      home_server=call.server_name)


def _check_username(username: str) -> None:
    if not ids.valid_localpart(username) or username.startswith("_"):
        raise MatrixError(400, Code.INVALID_USERNAME,
                          "A user ID may hold only a-z, 0-9, and . _ = - / + "
                          "(not first: _)")


async def _check_available(call: Call, username: str) -> None:
    _check_username(username)
    try:
        await call.service.profiles.by_login(username)
    except ServiceError as exc:
        if exc.code == 404:
            return
        raise
    raise MatrixError(400, Code.USER_IN_USE, f"The login {username!r} is already taken")


async def register_available(call: Call) -> Available:
    """GET /_matrix/client/v3/register/available"""
    username = call.query("username")
    if not username:
        raise MatrixError(400, Code.MISSING_PARAM, "Missing parameter: username")
    await _check_available(call, username)
    return Available(available=True)


async def register(call: Call) -> LoginReply | Response:
    """POST /_matrix/client/v3/register"""
    kind = call.query("kind") or "user"
    if kind == "guest":
        raise MatrixError(403, Code.GUEST_ACCESS_FORBIDDEN, "Guest access is disabled")
    if kind != "user":
        raise MatrixError(400, Code.INVALID_PARAM, f"Unknown kind {kind}")
    accounts = call.service.accounts
    if accounts.registration == "closed":
        raise MatrixError(403, Code.FORBIDDEN, "Registration is closed on this server")
    body = await call.body(RegisterRequest)
    if body.username is not None:
        await _check_available(call, body.username)
    token = await _authenticated(call, body.auth)
    if isinstance(token, Response):
        return token
    if not body.password:
        raise MatrixError(400, Code.MISSING_PARAM, "Missing field: password")
    username = body.username or f"user-{new_session()[:10].lower()}"
    device = body.device_id or new_device_id()
    signed_in = await accounts.register(username, body.password, device=device,
                                        registration_token=token, address=_address(call),
                                        device_name=body.initial_device_display_name or "")
    user_id = ids.user_id(signed_in.user.login, call.server_name)
    if body.inhibit_login:
        return LoginReply(user_id=user_id, home_server=call.server_name)
    return LoginReply(user_id=user_id, access_token=signed_in.token, device_id=device,
                      home_server=call.server_name)


async def _authenticated(call: Call, auth: AuthData | None) -> str | Response | None:
    """User-interactive authentication of a registration: m.login.dummy when registration is
    open; m.login.registration_token then m.login.dummy when it needs a token (the stage's
    token is held for the session in the database, so any process finishes it). The
    registration token once done (None when open), or the 401 telling what is left."""
    session = auth.session if auth is not None and auth.session else None
    stages = [DUMMY] if call.service.accounts.registration == "open" else [TOKEN, DUMMY]
    held = None
    if TOKEN in stages and session is not None:
        if auth is not None and auth.type == TOKEN:
            given = (auth.model_extra or {}).get("token")
            if not isinstance(given, str) or not given:
                raise MatrixError(400, Code.MISSING_PARAM, "Missing field: auth.token")
            await call.service.accounts.hold_registration_token(session, given, _address(call))
        held = await call.service.accounts.held_registration_token(session)
    done = [TOKEN] if held is not None else []
    if auth is not None and auth.type == DUMMY and len(done) == len(stages) - 1:
        return held
    flows = AuthFlows(flows=[Stages(stages=stages)], params={}, completed=done or None,
                      session=session or new_session())
    if auth is not None and auth.type not in (None, DUMMY, TOKEN):
        flows.errcode, flows.error = str(Code.UNRECOGNIZED), f"Unknown stage {auth.type}"
    return JSONResponse(flows.dump(), status_code=401)


async def registration_token_validity(call: Call) -> Validity:
    """GET /_matrix/client/v1/register/m.login.registration_token/validity"""
    token = call.query("token")
    if not token:
        raise MatrixError(400, Code.MISSING_PARAM, "Missing parameter: token")
    if call.service.accounts.registration != "token":
        raise MatrixError(403, Code.FORBIDDEN, "This server does not register with tokens")
    return Validity(valid=await call.service.accounts.registration_token_valid(
        token, _address(call)))


def _address(call: Call) -> str:
    """The client's address (wrong registration tokens are counted per address)."""
    return call.request.client.host if call.request.client else ""


async def change_password(call: Call) -> Response:
    """POST /_matrix/client/v3/account/password (after the current password: user-interactive
    authentication). `logout_devices` (default true) ends every other session."""
    body = await call.json()
    new, logout_devices = body.get("new_password"), body.get("logout_devices", True)
    if not isinstance(new, str):
        raise MatrixError(400, Code.MISSING_PARAM, "new_password must be a string")
    if not isinstance(logout_devices, bool):
        raise MatrixError(400, Code.BAD_JSON, "logout_devices must be true or false")

    async def change(password: str) -> None:
        await call.service.accounts.change_password(call.caller, password, new, logout_devices,
                                                    address=_address(call))

    needed = await with_password(body, change)
    return needed if needed is not None else JSONResponse({})


async def whoami(call: Call) -> WhoAmI:
    """GET /_matrix/client/v3/account/whoami"""
    user = await call.service.profiles.profile(call.caller.uuid)
    return WhoAmI(user_id=ids.user_id(user.login, call.server_name),
                  device_id=call.caller.device or None)


async def logout(call: Call) -> Empty:
    """POST /_matrix/client/v3/logout"""
    await call.json()
    await call.service.accounts.logout(call.caller)
    return Empty()


async def logout_all(call: Call) -> Empty:
    """POST /_matrix/client/v3/logout/all"""
    await call.json()
    await call.service.accounts.logout_all(call.caller)
    return Empty()


async def _profile_user(call: Call) -> tuple[str, str]:
    """(uuid, username) of the user the path names; 404 for anyone unknown here."""
    name = ids.login_of(call.param("userId"), call.server_name)
    if name is None or not call.param("userId").startswith("@"):
        raise MatrixError(404, Code.NOT_FOUND, "Profile not found")
    user = await call.service.profiles.by_login(name)
    return user.uuid, user.username


async def get_profile(call: Call) -> Profile:
    """GET /_matrix/client/v3/profile/{userId}"""
    uuid, username = await _profile_user(call)
    return Profile(displayname=username,
                   avatar_url=await call.service.avatars.url(uuid) or None)


async def get_avatar_url(call: Call) -> AvatarUrl:
    """GET /_matrix/client/v3/profile/{userId}/avatar_url"""
    uuid, _ = await _profile_user(call)
    return AvatarUrl(avatar_url=await call.service.avatars.url(uuid) or None)


async def set_avatar_url(call: Call) -> Empty:
    """PUT /_matrix/client/v3/profile/{userId}/avatar_url"""
    body = await call.body(AvatarUrlRequest)
    uuid, _ = await _profile_user(call)
    await call.service.avatars.set(call.caller, uuid, body.avatar_url)
    call.matrix.users.forget(call.caller.uuid)
    return Empty()


async def get_displayname(call: Call) -> DisplayName:
    """GET /_matrix/client/v3/profile/{userId}/displayname"""
    _, username = await _profile_user(call)
    return DisplayName(displayname=username)


async def set_displayname(call: Call) -> Empty:
    """PUT /_matrix/client/v3/profile/{userId}/displayname"""
    body = await call.body(DisplayNameRequest)
    uuid, _ = await _profile_user(call)
    await call.service.profiles.set_username(call.caller, uuid, body.displayname)
    call.matrix.users.forget(call.caller.uuid)
    return Empty()
