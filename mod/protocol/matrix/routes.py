"""Every route of the Matrix API: method, path template, handler, and whether it needs an
access token and how its service errors translate. The router (`dispatch.MatrixRouter`) is
built from this list with the Matrix context in the app's lifespan; the handlers live in
their areas' modules and register nothing themselves.

`client(...)` lists a route under both client API prefixes (`/_matrix/client/v3` and `/r0`),
`at(...)` at one absolute path. Within one index bucket of the router (same segment count and
first endpoint segment) templates are tried in the order listed here.
"""

from __future__ import annotations

from mod.protocol.matrix import (
    account,
    accountdata,
    backup,
    compat,
    devices,
    directory,
    keys,
    media,
    receipts,
    relations,
    rooms,
    search,
    send,
    sync,
    users,
)
from mod.protocol.matrix.dispatch import Endpoint
from mod.protocol.matrix.errors import LOGIN, REGISTER, UPLOAD_TO, Translation
from mod.protocol.matrix.routing import Handler, Spec

CLIENT = "/_matrix/client"
PREFIXES = (f"{CLIENT}/v3", f"{CLIENT}/r0")
V1 = f"{CLIENT}/v1"
MEDIA = "/_matrix/media"
LEGACY_MEDIA = (f"{MEDIA}/v3", f"{MEDIA}/r0")
AUTHENTICATED_MEDIA = f"{V1}/media"
ONE = "{serverName}/{mediaId}"


def under(prefixes: tuple[str, ...], method: str, path: str, handler: Handler, *,
          auth: bool = True, errors: Translation | None = None) -> tuple[Endpoint, ...]:
    spec = Spec(handler, auth, errors)
    return tuple(Endpoint(method, prefix + path, spec) for prefix in prefixes)


def client(method: str, path: str, handler: Handler, *, auth: bool = True,
           errors: Translation | None = None) -> tuple[Endpoint, ...]:
    return under(PREFIXES, method, path, handler, auth=auth, errors=errors)


def at(method: str, path: str, handler: Handler, *, auth: bool = True,
       errors: Translation | None = None) -> tuple[Endpoint, ...]:
    return under(("",), method, path, handler, auth=auth, errors=errors)


ROUTES: tuple[Endpoint, ...] = (
    # accounts: discovery, login, registration, profile
    *at("GET", f"{CLIENT}/versions", account.versions, auth=False),
    *at("GET", "/.well-known/matrix/client", account.well_known, auth=False),
    *client("GET", "/login", account.login_flows, auth=False),
    *client("POST", "/login", account.login, auth=False, errors=LOGIN),
    *client("GET", "/register/available", account.register_available, auth=False),
    *client("POST", "/register", account.register, auth=False, errors=REGISTER),
    *at("GET", f"{V1}/register/m.login.registration_token/validity",
        account.registration_token_validity, auth=False),
    *client("GET", "/account/whoami", account.whoami),
    *client("POST", "/account/password", account.change_password),
    *client("POST", "/logout", account.logout),
    *client("POST", "/logout/all", account.logout_all),
    *client("GET", "/profile/{userId}", account.get_profile),
    *client("GET", "/profile/{userId}/avatar_url", account.get_avatar_url),
    *client("PUT", "/profile/{userId}/avatar_url", account.set_avatar_url),
    *client("GET", "/profile/{userId}/displayname", account.get_displayname),
    *client("PUT", "/profile/{userId}/displayname", account.set_displayname),
    # rooms: membership, state, events
    *client("POST", "/createRoom", rooms.create_room),
    *client("POST", "/rooms/{roomId}/invite", rooms.invite),
    *client("POST", "/join/{roomIdOrAlias}", rooms.join),
    *client("POST", "/rooms/{roomId}/join", rooms.join_room),
    *client("POST", "/rooms/{roomId}/leave", rooms.leave),
    *client("POST", "/rooms/{roomId}/forget", rooms.forget),
    *client("GET", "/joined_rooms", rooms.joined_rooms),
    *client("GET", "/rooms/{roomId}/joined_members", rooms.joined_members),
    *client("GET", "/rooms/{roomId}/members", rooms.members),
    *client("GET", "/rooms/{roomId}/state", rooms.state),
    *client("GET", "/rooms/{roomId}/state/{eventType}/", rooms.state_event_empty_key),
    *client("PUT", "/rooms/{roomId}/state/{eventType}/", rooms.put_state_empty_key),
    *client("GET", "/rooms/{roomId}/state/{eventType}", rooms.state_event_empty_key),
    *client("PUT", "/rooms/{roomId}/state/{eventType}", rooms.put_state_empty_key),
    *client("GET", "/rooms/{roomId}/state/{eventType}/{stateKey}", rooms.state_event),
    *client("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}", rooms.put_state),
    *client("GET", "/rooms/{roomId}/event/{eventId}", rooms.get_event),
    *client("GET", "/rooms/{roomId}/messages", rooms.messages),
    # typing notices, receipts, read markers
    *client("PUT", "/rooms/{roomId}/typing/{userId}", receipts.typing),
    *client("POST", "/rooms/{roomId}/receipt/{receiptType}/{eventId}", receipts.receipt),
    *client("POST", "/rooms/{roomId}/read_markers", receipts.read_markers),
    # account data, push rules, pushers
    *client("PUT", "/user/{userId}/account_data/{type}", accountdata.put_global),
    *client("GET", "/user/{userId}/account_data/{type}", accountdata.get_global),
    *client("PUT", "/user/{userId}/rooms/{roomId}/account_data/{type}", accountdata.put_room),
    *client("GET", "/user/{userId}/rooms/{roomId}/account_data/{type}", accountdata.get_room),
    *client("GET", "/user/{userId}/rooms/{roomId}/tags", accountdata.get_tags),
    *client("PUT", "/user/{userId}/rooms/{roomId}/tags/{tag}", accountdata.put_tag),
    *client("DELETE", "/user/{userId}/rooms/{roomId}/tags/{tag}", accountdata.delete_tag),
    *client("GET", "/pushrules", accountdata.all_rules),
    *client("GET", "/pushrules/", accountdata.all_rules),
    *client("GET", "/pushrules/global/", accountdata.global_rules),
    *client("GET", "/pushrules/{scope}/{kind}/{ruleId}", accountdata.get_rule),
    *client("PUT", "/pushrules/{scope}/{kind}/{ruleId}", accountdata.put_rule),
    *client("DELETE", "/pushrules/{scope}/{kind}/{ruleId}", accountdata.delete_rule),
    *client("GET", "/pushrules/{scope}/{kind}/{ruleId}/enabled", accountdata.get_enabled),
    *client("PUT", "/pushrules/{scope}/{kind}/{ruleId}/enabled", accountdata.put_enabled),
    *client("GET", "/pushrules/{scope}/{kind}/{ruleId}/actions", accountdata.get_actions),
    *client("PUT", "/pushrules/{scope}/{kind}/{ruleId}/actions", accountdata.put_actions),
    *client("GET", "/pushers", accountdata.pushers),
    *client("POST", "/pushers/set", accountdata.set_pusher),
    # server-side key backup
    *client("POST", "/room_keys/version", backup.create_version),
    *client("GET", "/room_keys/version", backup.newest_version),
    *client("GET", "/room_keys/version/{version}", backup.get_version),
    *client("PUT", "/room_keys/version/{version}", backup.update_version),
    *client("DELETE", "/room_keys/version/{version}", backup.delete_version),
    *client("PUT", "/room_keys/keys/{roomId}/{sessionId}", backup.put_keys),
    *client("GET", "/room_keys/keys/{roomId}/{sessionId}", backup.get_keys),
    *client("DELETE", "/room_keys/keys/{roomId}/{sessionId}", backup.delete_keys),
    *client("PUT", "/room_keys/keys/{roomId}", backup.put_keys),
    *client("GET", "/room_keys/keys/{roomId}", backup.get_keys),
    *client("DELETE", "/room_keys/keys/{roomId}", backup.delete_keys),
    *client("PUT", "/room_keys/keys", backup.put_keys),
    *client("GET", "/room_keys/keys", backup.get_keys),
    *client("DELETE", "/room_keys/keys", backup.delete_keys),
    # what clients ask and the server answers with little or nothing
    *client("GET", "/capabilities", compat.capabilities),
    *client("PUT", "/presence/{userId}/status", compat.accepted),
    *client("GET", "/thirdparty/protocols", compat.nothing),
    *client("GET", "/voip/turnServer", compat.nothing),
    # devices
    *client("GET", "/devices", devices.devices),
    *client("GET", "/devices/{deviceId}", devices.device),
    *client("PUT", "/devices/{deviceId}", devices.rename),
    *client("DELETE", "/devices/{deviceId}", devices.delete_device),
    *client("POST", "/delete_devices", devices.delete_devices),
    # the room directory
    *client("GET", "/publicRooms", directory.public_rooms, auth=False),
    *client("POST", "/publicRooms", directory.search_public_rooms),
    # end-to-end encryption keys, to-device messages
    *client("POST", "/keys/upload", keys.upload),
    *client("POST", "/keys/query", keys.query),
    *client("POST", "/keys/claim", keys.claim),
    *client("GET", "/keys/changes", keys.changes),
    *client("POST", "/keys/device_signing/upload", keys.device_signing_upload),
    *client("POST", "/keys/signatures/upload", keys.signatures_upload),
    *client("PUT", "/sendToDevice/{eventType}/{txnId}", keys.send_to_device),
    # the content repository
    *under(LEGACY_MEDIA, "POST", "/upload", media.upload),
    *under(LEGACY_MEDIA, "PUT", f"/upload/{ONE}", media.upload_to, errors=UPLOAD_TO),
    *under(LEGACY_MEDIA, "GET", "/config", media.config),
    *under(LEGACY_MEDIA, "GET", f"/download/{ONE}", media.legacy_download, auth=False),
    *under(LEGACY_MEDIA, "GET", f"/download/{ONE}/{{fileName?}}", media.legacy_download,
           auth=False),
    *under(LEGACY_MEDIA, "GET", f"/thumbnail/{ONE}", media.legacy_thumbnail, auth=False,
           errors=media.THUMBNAIL_ERRORS),
    *at("POST", f"{MEDIA}/v1/create", media.create),
    *at("GET", f"{AUTHENTICATED_MEDIA}/config", media.config),
    *at("GET", f"{AUTHENTICATED_MEDIA}/download/{ONE}", media.download),
    *at("GET", f"{AUTHENTICATED_MEDIA}/download/{ONE}/{{fileName?}}", media.download),
    *at("GET", f"{AUTHENTICATED_MEDIA}/thumbnail/{ONE}", media.thumbnail,
        errors=media.THUMBNAIL_ERRORS),
    # context and relations of events
    *client("GET", "/rooms/{roomId}/context/{eventId}", relations.context),
    *at("GET", f"{V1}/rooms/{{roomId}}/relations/{{eventId}}/{{relType}}/{{eventType}}",
        relations.relations),
    *at("GET", f"{V1}/rooms/{{roomId}}/relations/{{eventId}}/{{relType}}",
        relations.relations),
    *at("GET", f"{V1}/rooms/{{roomId}}/relations/{{eventId}}", relations.relations),
    # sending and redacting
    *client("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", send.send),
    *client("PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}", send.redact),
    # /sync and its filters
    *client("GET", "/sync", sync.sync),
    *client("POST", "/user/{userId}/filter", sync.create_filter),
    *client("GET", "/user/{userId}/filter/{filterId}", sync.get_filter),
    # the user directory
    *client("POST", "/user_directory/search", users.search),
    # searching messages
    *client("POST", "/search", search.search),
    *client("GET", "/account/3pid", users.third_party_ids),
)
