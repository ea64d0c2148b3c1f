"""Matrix errors as the spec gives them, over raw HTTP where nio cannot produce the input."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nio
import pytest

from tests.test_matrix_support import Matrix, login_name

pytestmark = pytest.mark.anyio

V3 = "/_matrix/client/v3"
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
    "access-control-allow-headers": "X-Requested-With, Content-Type, Authorization",
}


def expect(response: object, status: int, errcode: str) -> dict[str, object]:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["errcode"] == errcode, body
    assert isinstance(body["error"], str) and body["error"], body
    assert "Traceback" not in body["error"]
    return body  # type: ignore[no-any-return]


async def test_missing_and_bad_tokens(mx: Matrix) -> None:
    for method, path in (("GET", "/sync"), ("GET", "/account/whoami"), ("POST", "/createRoom"),
                         ("GET", "/joined_rooms")):
        expect(await mx.raw(method, V3 + path), 401, "M_MISSING_TOKEN")
        expect(await mx.raw(method, V3 + path, "not-a-token"), 401, "M_UNKNOWN_TOKEN")
    expect(await mx.raw("GET", V3 + "/account/whoami", headers={"Authorization": "Basic x"}),
           401, "M_MISSING_TOKEN")
    user = await mx.user()
    by_query = await mx.raw("GET", V3 + "/account/whoami",
                            params={"access_token": user.access_token})
    assert by_query.status_code == 200 and by_query.json()["user_id"] == user.user_id
    # The token passed in the query string never reaches the access log.
    assert user.access_token not in mx.server.log()


async def test_unknown_endpoints_and_methods(mx: Matrix) -> None:
    expect(await mx.raw("GET", V3 + "/no/such/thing"), 404, "M_UNRECOGNIZED")
    expect(await mx.raw("POST", "/_matrix/federation/v1/version"), 404, "M_UNRECOGNIZED")
    expect(await mx.raw("GET", "/_matrix/client/v9/sync"), 404, "M_UNRECOGNIZED")
    expect(await mx.raw("DELETE", V3 + "/login"), 405, "M_UNRECOGNIZED")
    expect(await mx.raw("GET", V3 + "/createRoom"), 405, "M_UNRECOGNIZED")
    assert (await mx.raw("GET", "/_matrix/client/r0/login")).status_code == 200


async def test_bad_bodies(mx: Matrix) -> None:
    user = await mx.user()
    token = user.access_token
    expect(await mx.raw("POST", V3 + "/login", content=b"{not json"), 400, "M_NOT_JSON")
    expect(await mx.raw("POST", V3 + "/login", content=b"[1, 2]"), 400, "M_NOT_JSON")
    expect(await mx.raw("POST", V3 + "/createRoom", token, content=b"\xff\xfe"), 400,
           "M_NOT_JSON")
    expect(await mx.raw("POST", V3 + "/createRoom", token, json={"name": 5}), 400,
           "M_BAD_JSON")
    expect(await mx.raw("POST", V3 + "/createRoom", token, json={"invite": "@a:b"}), 400,
           "M_BAD_JSON")
    expect(await mx.raw("POST", V3 + "/login", json={"type": "m.login.password",
                                                     "user": user.user, "password": 123}),
           400, "M_BAD_JSON")
    expect(await mx.raw("PUT", f"{V3}/profile/{user.user_id}/displayname", token,
                        json={"displayname": ["x"]}), 400, "M_BAD_JSON")
    expect(await mx.raw("PUT", f"{V3}/profile/{user.user_id}/displayname", token, json={}),
           400, "M_MISSING_PARAM")
    expect(await mx.raw("POST", V3 + "/createRoom", token, content=b"x" * 70000), 413,
           "M_TOO_LARGE")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1000

    expect(await mx.raw("POST", V3 + "/createRoom", token, content=chunks()), 413,
           "M_TOO_LARGE")
    room = await mx.room(user)
    send = f"{V3}/rooms/{room}/send/m.room.message/txn1"
    expect(await mx.raw("PUT", send, token, json={"msgtype": "m.text"}), 400,
           "M_MISSING_PARAM")
    expect(await mx.raw("PUT", send, token, json={"msgtype": "m.text", "body": 1}), 400,
           "M_BAD_JSON")
    expect(await mx.raw("GET", V3 + "/sync", token, params={"since": "bogus"}), 400,
           "M_INVALID_PARAM")
    expect(await mx.raw("GET", V3 + "/sync", token, params={"timeout": "soon"}), 400,
           "M_INVALID_PARAM")
    expect(await mx.raw("GET", V3 + "/sync", token, params={"filter": "{bad"}), 400,
           "M_NOT_JSON")
    expect(await mx.raw("GET", V3 + "/sync", token,
                        params={"filter": '{"room": {"timeline": {"limit": "ten"}}}'}),
           400, "M_BAD_JSON")
    expect(await mx.raw("GET", f"{V3}/rooms/{room}/messages", token, params={"dir": "x"}),
           400, "M_INVALID_PARAM")
    expect(await mx.raw("GET", f"{V3}/rooms/{room}/messages", token, params={"limit": "-1"}),
           400, "M_INVALID_PARAM")
    capped = await mx.raw("GET", f"{V3}/rooms/{room}/messages", token,
                          params={"limit": "99999"})
    assert capped.status_code == 200 and capped.json()["chunk"]


async def test_empty_post_bodies_count_as_empty_objects(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice)
    joined = await mx.raw("POST", f"{V3}/join/{room}", bob.access_token, content=b"")
    assert joined.status_code == 200 and joined.json() == {"room_id": room}
    left = await mx.raw("POST", f"{V3}/rooms/{room}/leave", bob.access_token)
    assert left.status_code == 200 and left.json() == {}
    out = await mx.raw("POST", V3 + "/logout", bob.access_token)
    assert out.status_code == 200 and out.json() == {}


async def test_forbidden_and_not_found(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, name="private talk")
    sent = await bob.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert isinstance(sent, nio.RoomSendError) and sent.status_code == "M_FORBIDDEN"
    messages = await bob.room_messages(room, start="")
    assert isinstance(messages, nio.RoomMessagesError) and messages.status_code == "M_FORBIDDEN"
    members = await bob.joined_members(room)
    assert isinstance(members, nio.JoinedMembersError) and members.status_code == "M_FORBIDDEN"
    left = await alice.room_leave(room)  # the owner cannot leave (as in MTP)
    assert isinstance(left, nio.RoomLeaveError) and left.status_code == "M_FORBIDDEN"
    missing = "!1234:morelia.test"
    for response in (await bob.join(missing), await bob.join("#alias:morelia.test"),
                     await bob.join("!1234:elsewhere.org"), await bob.room_leave(missing)):
        assert isinstance(response, nio.ErrorResponse), response
        assert response.status_code == "M_NOT_FOUND", response
    invite = await alice.room_invite(room, f"@{login_name('ghost')}:morelia.test")
    assert isinstance(invite, nio.RoomInviteError) and invite.status_code == "M_NOT_FOUND"
    created = await alice.room_create(invite=[f"@{login_name('ghost')}:morelia.test"])
    assert isinstance(created, nio.RoomCreateError) and created.status_code == "M_NOT_FOUND"
    rooms = await alice.joined_rooms()
    assert isinstance(rooms, nio.JoinedRoomsResponse) and rooms.rooms == [room]  # none made
    event = await alice.room_get_event(room, "$m1")
    assert isinstance(event, nio.RoomGetEventError) and event.status_code == "M_NOT_FOUND"


async def test_cors(mx: Matrix) -> None:
    preflight = await mx.raw("OPTIONS", V3 + "/sync", headers={
        "Origin": "https://app.element.io", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200
    for key, value in CORS.items():
        assert preflight.headers[key] == value
    for response in (await mx.raw("GET", "/_matrix/client/versions"),
                     await mx.raw("GET", "/.well-known/matrix/client"),
                     await mx.raw("GET", V3 + "/sync"),
                     await mx.raw("GET", V3 + "/nothing/here")):
        for key, value in CORS.items():
            assert response.headers[key] == value
    status_page = await mx.raw("GET", "/")
    assert "access-control-allow-origin" not in status_page.headers
