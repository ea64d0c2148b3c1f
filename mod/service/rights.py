"""Who may do what, for both protocols: PROTOCOL.md's "Rights" table as code.

Each rule takes what the database said of the flow (and message) in the same job as the
write it guards, and raises `ServiceError` with the refusal; nothing else decides rights.
"""

from __future__ import annotations

from dataclasses import dataclass

from mod.db import dbhandler as db
from mod.db.engine import Conn
from mod.error import ServiceError
from mod.service.common import Caller


@dataclass(slots=True, frozen=True)
class Access:
    """A flow as the rules see it, and the caller's place in it."""

    flow: str
    flow_type: str
    owner: str
    member: bool
    encrypted: bool = False


def access(conn: Conn, flow_uuid: str, caller: Caller) -> Access:
    """The flow and the caller's membership; 404 for an unknown flow."""
    found = db.flow_access(conn, flow_uuid, caller.uuid)
    if found is None:
        raise ServiceError(404, f"No flow {flow_uuid}")
    flow_type, owner, member, encrypted = found
    return Access(flow_uuid, flow_type, owner, member, encrypted)


def leads(flow: Access, caller: Caller) -> bool:
    """The owner, or a superuser who is a member, runs a channel."""
    return flow.owner == caller.uuid or (caller.is_superuser and flow.member)


def read(flow: Access, caller: Caller) -> None:
    if not flow.member:
        raise ServiceError(403, "Only the members of this flow may read it")


def send(flow: Access, caller: Caller) -> None:
    if not flow.member:
        raise ServiceError(403, "Only the members of this flow may write in it")
    if flow.flow_type == "channel" and not leads(flow, caller):
        raise ServiceError(403, "Only the owner may write in a channel")


def react(flow: Access, caller: Caller, other: str = "") -> None:
    """Add or take back a reaction: members (in a channel too); `other`, the user whose
    reaction is taken back, when it is not the caller's: the flow's owner or a superuser."""
    if not flow.member:
        raise ServiceError(403, "Only the members of this flow may react in it")
    if other and other != caller.uuid and flow.owner != caller.uuid and not caller.is_superuser:
        raise ServiceError(403, "Only the author or the flow's owner may take a reaction back")


def plaintext(flow: Access) -> None:
    """Nothing readable goes into an end-to-end encrypted flow: its members' Matrix clients
    expect only ciphertext there, and MTP cannot encrypt."""
    if flow.encrypted:
        raise ServiceError(403, "This flow is end-to-end encrypted: only a Matrix client with "
                                "encryption can post in it")


def encrypt(flow: Access, caller: Caller) -> None:
    if not flow.member:
        raise ServiceError(403, "Only members may change this flow")
    if flow.flow_type != "group" and not leads(flow, caller):
        raise ServiceError(403, "Only the owner may turn on encryption in this flow")


def edit(flow: Access, caller: Caller, message: db.MessageRow, deleted: bool) -> None:
    if deleted:
        raise ServiceError(404, f"Message {message['uuid']} was deleted")
    if message["from_user"] != caller.uuid:
        raise ServiceError(403, "Only the author may edit a message")
    if not flow.member:
        raise ServiceError(403, "Only the members of this flow may edit in it")


def delete(flow: Access, caller: Caller, message: db.MessageRow, deleted: bool) -> None:
    if deleted:
        raise ServiceError(404, f"Message {message['uuid']} was deleted")
    if caller.is_superuser or flow.owner == caller.uuid:
        return
    if message["from_user"] != caller.uuid:
        raise ServiceError(403, "Only the author or the flow's owner may delete it")
    if not flow.member:
        raise ServiceError(403, "Only the members of this flow may delete in it")


def invite(flow: Access, caller: Caller) -> None:
    if not flow.member:
        raise ServiceError(403, "Only members may invite to this flow")
    if flow.flow_type == "chat":
        raise ServiceError(403, "Nobody can be invited to a chat")
    if flow.flow_type == "channel" and not leads(flow, caller):
        raise ServiceError(403, "Only the owner may invite to a channel")


def rename(flow: Access, caller: Caller) -> None:
    if not flow.member:
        raise ServiceError(403, "Only members may change this flow")
    if flow.flow_type != "group" and not leads(flow, caller):
        raise ServiceError(403, "Only the owner may change this flow")


def join(flow: Access, private: bool, invited: bool) -> None:
    if flow.flow_type == "chat":
        raise ServiceError(403, "Nobody can join a chat")
    if private and not invited:
        raise ServiceError(403, "This flow is invite-only: only those invited may join it")


def leave(flow: Access, caller: Caller) -> None:
    if flow.flow_type != "chat" and flow.owner == caller.uuid:
        raise ServiceError(403, "The owner cannot leave their own flow")
