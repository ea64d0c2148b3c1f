"""Matrix accounts end to end: discovery, registration, login, whoami, logout, profiles."""

from __future__ import annotations

import nio
import pytest

from tests.test_matrix_support import (
    PASSWORD,
    SERVER_NAME,
    Matrix,
    login_name,
    user_id,
)

pytestmark = pytest.mark.anyio


async def test_versions_and_well_known(mx: Matrix) -> None:
    client = mx.client()
    versions = await mx.raw("GET", "/_matrix/client/versions")
    assert versions.status_code == 200
    assert "v1.1" in versions.json()["versions"] and "r0.6.1" in versions.json()["versions"]
    discovery = await client.discovery_info()
    assert isinstance(discovery, nio.DiscoveryInfoResponse), discovery
    assert discovery.homeserver_url == mx.server.http


async def test_login_offers_password(mx: Matrix) -> None:
    flows = await mx.client().login_info()
    assert isinstance(flows, nio.LoginInfoResponse), flows
    assert flows.flows == ["m.login.password"]


async def test_register_in_one_request_and_login(mx: Matrix) -> None:
    login = login_name("reg")
    client = mx.client(login)
    registered = await client.register(login, PASSWORD, device_name="laptop")
    assert isinstance(registered, nio.RegisterResponse), registered
    assert registered.user_id == user_id(login) and registered.access_token
    assert registered.device_id

    other = mx.client(login)
    logged_in = await other.login(PASSWORD, device_name="phone")
    assert isinstance(logged_in, nio.LoginResponse), logged_in
    assert logged_in.user_id == user_id(login)
    assert logged_in.access_token != registered.access_token
    assert logged_in.device_id != registered.device_id

    full_id = mx.client(user_id(login))
    assert isinstance(await full_id.login(PASSWORD), nio.LoginResponse)
    assert isinstance(await full_id.whoami(), nio.WhoamiResponse)


async def test_register_user_interactive_round(mx: Matrix) -> None:
    login = login_name("uia")
    first = await mx.raw("POST", "/_matrix/client/v3/register",
                         json={"username": login, "password": PASSWORD})
    assert first.status_code == 401
    body = first.json()
    assert body["flows"] == [{"stages": ["m.login.dummy"]}]
    assert body["params"] == {} and body["session"]
    second = await mx.raw("POST", "/_matrix/client/v3/register", json={
        "username": login, "password": PASSWORD,
        "auth": {"type": "m.login.dummy", "session": body["session"]},
        "device_id": "MYDEVICE"})
    assert second.status_code == 200, second.text
    done = second.json()
    assert done["user_id"] == user_id(login) and done["device_id"] == "MYDEVICE"
    whoami = await mx.raw("GET", "/_matrix/client/v3/account/whoami", done["access_token"])
    assert whoami.json() == {"user_id": user_id(login), "device_id": "MYDEVICE",
                             "is_guest": False}


async def test_register_unknown_stage_and_guest(mx: Matrix) -> None:
    response = await mx.raw("POST", "/_matrix/client/v3/register", json={
        "username": login_name(), "password": PASSWORD,
        "auth": {"type": "m.login.recaptcha", "session": "abc"}})
    assert response.status_code == 401
    assert response.json()["session"] == "abc"
    assert response.json()["errcode"] == "M_UNRECOGNIZED"
    guest = await mx.raw("POST", "/_matrix/client/v3/register?kind=guest", json={})
    assert guest.status_code == 403 and guest.json()["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"


async def test_register_taken_and_invalid_logins(mx: Matrix) -> None:
    first = await mx.user("taken")
    again = await mx.client().register(first.user, PASSWORD)
    assert isinstance(again, nio.responses.RegisterErrorResponse)
    assert again.status_code == "M_USER_IN_USE"
    for bad in ("Upper", "with space", "_reserved", "x" * 300):
        response = await mx.raw("POST", "/_matrix/client/v3/register", json={
            "username": bad, "password": PASSWORD, "auth": {"type": "m.login.dummy"}})
        assert response.status_code == 400, bad
        assert response.json()["errcode"] == "M_INVALID_USERNAME", bad
    available = await mx.raw("GET", "/_matrix/client/v3/register/available",
                             params={"username": login_name()})
    assert available.json() == {"available": True}
    taken = await mx.raw("GET", "/_matrix/client/v3/register/available",
                         params={"username": first.user})
    assert taken.status_code == 400 and taken.json()["errcode"] == "M_USER_IN_USE"


async def test_mtp_user_logs_in_over_matrix(mx: Matrix) -> None:
    mtp = await mx.mtp.user("mtp")
    client = mx.client(mtp.login)
    response = await client.login("secret-password")
    assert isinstance(response, nio.LoginResponse), response
    assert response.user_id == user_id(mtp.login)


async def test_wrong_password_is_forbidden(mx: Matrix) -> None:
    user = await mx.user()
    for login in (user.user, login_name("nobody"), "@someone:elsewhere.org"):
        response = await mx.client(login).login("wrong-password")
        assert isinstance(response, nio.LoginError), login
        assert response.status_code == "M_FORBIDDEN", login
    raw = await mx.raw("POST", "/_matrix/client/v3/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user.user},
        "password": "wrong"})
    assert raw.status_code == 403 and raw.json()["errcode"] == "M_FORBIDDEN"
    unknown_type = await mx.raw("POST", "/_matrix/client/v3/login",
                                json={"type": "m.login.token", "token": "x"})
    assert unknown_type.status_code == 400 and unknown_type.json()["errcode"] == "M_UNKNOWN"


async def test_whoami_and_logout(mx: Matrix) -> None:
    user = await mx.user()
    token = user.access_token
    whoami = await user.whoami()
    assert isinstance(whoami, nio.WhoamiResponse), whoami
    assert whoami.user_id == user.user_id and whoami.device_id == user.device_id
    assert isinstance(await user.logout(), nio.LogoutResponse)
    after = await mx.raw("GET", "/_matrix/client/v3/account/whoami", token)
    assert after.status_code == 401
    assert after.json()["errcode"] == "M_UNKNOWN_TOKEN"
    assert after.json()["soft_logout"] is False


async def test_logout_all_devices(mx: Matrix) -> None:
    user = await mx.user()
    second = mx.client(user.user)
    assert isinstance(await second.login(PASSWORD), nio.LoginResponse)
    tokens = (user.access_token, second.access_token)
    assert isinstance(await second.logout(all_devices=True), nio.LogoutResponse)
    for token in tokens:
        response = await mx.raw("GET", "/_matrix/client/v3/account/whoami", token)
        assert response.status_code == 401 and response.json()["errcode"] == "M_UNKNOWN_TOKEN"


async def whoami_status(mx: Matrix, token: str) -> int:
    return (await mx.raw("GET", "/_matrix/client/v3/account/whoami", token)).status_code


async def test_password_change_after_the_current_password(mx: Matrix) -> None:
    user = await mx.user()
    phone = mx.client(user.user)
    assert isinstance(await phone.login(PASSWORD), nio.LoginResponse)
    path, token = "/_matrix/client/v3/account/password", user.access_token
    capabilities = await mx.raw("GET", "/_matrix/client/v3/capabilities", token)
    assert capabilities.json()["capabilities"]["m.change_password"] == {"enabled": True}

    asked = await mx.raw("POST", path, token, json={"new_password": "matrix-secret-2"})
    assert asked.status_code == 401 and asked.json()["flows"] == [
        {"stages": ["m.login.password"]}]
    session = asked.json()["session"]
    auth = {"type": "m.login.password", "session": session,
            "identifier": {"type": "m.id.user", "user": user.user_id}}
    wrong = await mx.raw("POST", path, token, json={
        "new_password": "matrix-secret-2", "auth": {**auth, "password": "wrong"}})
    assert wrong.status_code == 401 and wrong.json()["errcode"] == "M_FORBIDDEN"
    for body, code in [({"new_password": 5}, "M_MISSING_PARAM"),
                       ({"new_password": "x", "logout_devices": "yes"}, "M_BAD_JSON")]:
        bad = await mx.raw("POST", path, token, json={**body, "auth": {**auth,
                                                                       "password": PASSWORD}})
        assert bad.status_code == 400 and bad.json()["errcode"] == code
    assert await whoami_status(mx, phone.access_token) == 200

    done = await mx.raw("POST", path, token, json={
        "new_password": "matrix-secret-2", "auth": {**auth, "password": PASSWORD}})
    assert done.status_code == 200 and done.json() == {}
    # The phone's session ended (logout_devices defaults to true) and its device with it.
    assert await whoami_status(mx, token) == 200
    assert await whoami_status(mx, phone.access_token) == 401
    devices = await user.devices()
    assert isinstance(devices, nio.DevicesResponse), devices
    assert [device.id for device in devices.devices] == [user.device_id]
    assert isinstance(await mx.client(user.user).login(PASSWORD), nio.LoginError)
    assert isinstance(await mx.client(user.user).login("matrix-secret-2"), nio.LoginResponse)


async def test_password_change_may_keep_the_other_devices(mx: Matrix) -> None:
    user = await mx.user()
    phone = mx.client(user.user)
    assert isinstance(await phone.login(PASSWORD), nio.LoginResponse)
    done = await mx.raw("POST", "/_matrix/client/v3/account/password", user.access_token, json={
        "new_password": "matrix-secret-2", "logout_devices": False,
        "auth": {"type": "m.login.password", "password": PASSWORD}})
    assert done.status_code == 200
    assert await whoami_status(mx, phone.access_token) == 200


async def test_display_names(mx: Matrix) -> None:
    alice, bob = await mx.user("alice"), await mx.user("bob")
    name = await bob.get_displayname(alice.user_id)
    assert isinstance(name, nio.ProfileGetDisplayNameResponse), name
    assert name.displayname == alice.user
    assert isinstance(await alice.set_displayname("Alice Ä"), nio.ProfileSetDisplayNameResponse)
    name = await bob.get_displayname(alice.user_id)
    assert isinstance(name, nio.ProfileGetDisplayNameResponse)
    assert name.displayname == "Alice Ä"
    profile = await bob.get_profile(alice.user_id)
    assert isinstance(profile, nio.ProfileGetResponse), profile
    assert profile.displayname == "Alice Ä"

    path = f"/_matrix/client/v3/profile/{alice.user_id}/displayname"
    forbidden = await mx.raw("PUT", path, bob.access_token, json={"displayname": "hijack"})
    assert forbidden.status_code == 403 and forbidden.json()["errcode"] == "M_FORBIDDEN"
    unknown = await bob.get_displayname(f"@{login_name('ghost')}:{SERVER_NAME}")
    assert isinstance(unknown, nio.ProfileGetDisplayNameError)
    assert unknown.status_code == "M_NOT_FOUND"
    elsewhere = await bob.get_displayname("@alice:elsewhere.org")
    assert isinstance(elsewhere, nio.ProfileGetDisplayNameError)
    assert elsewhere.status_code == "M_NOT_FOUND"
