"""The kinds of change-log entries, and the named sets of them every layer asks about.

A change-log row (`db.engine.ChangeRow`) stores its kind as the member's value, so the
database holds the same strings as before this module existed; a `Kind` compares equal to
its string. This is the only module that spells a kind out (tests/test_layout.py holds the
rest of `mod/` to that).
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """What one committed change did."""

    # messages (MTP and Matrix)
    MESSAGE_SENT = "message_sent"
    MESSAGE_EDITED = "message_edited"
    MESSAGE_DELETED = "message_deleted"
    # flows and their membership
    FLOW_CREATED = "flow_created"
    FLOW_JOINED = "flow_joined"
    FLOW_LEFT = "flow_left"
    FLOW_INVITED = "flow_invited"
    INVITE_DECLINED = "invite_declined"
    FLOW_CHANGED = "flow_changed"
    FLOW_ENCRYPTED = "flow_encrypted"
    FLOW_DELETED = "flow_deleted"
    # users
    PROFILE_CHANGED = "profile_changed"
    USER_CHANGED = "user_changed"
    TOKENS_REVOKED = "tokens_revoked"
    # the Matrix side only (mod.db.userdata)
    TYPING = "typing"
    RECEIPT = "receipt"
    PRIVATE_RECEIPT = "private_receipt"
    ACCOUNT_DATA = "account_data"
    ROOM_EVENT = "room_event"
    # end-to-end encryption: no flow, the payload's "users" names whom they concern
    DEVICE_KEYS_CHANGED = "device_keys_changed"
    ONE_TIME_KEYS_CHANGED = "one_time_keys_changed"
    TO_DEVICE = "to_device"


MESSAGE_KINDS = frozenset({Kind.MESSAGE_SENT, Kind.MESSAGE_EDITED, Kind.MESSAGE_DELETED})

# Pushed to MTP connections that asked for pushes; each is the frame's `meta.event`, as
# PROTOCOL.md lists them.
MTP_PUSHED = frozenset({
    *MESSAGE_KINDS,
    Kind.FLOW_CREATED, Kind.FLOW_JOINED, Kind.FLOW_LEFT, Kind.FLOW_CHANGED,
    Kind.FLOW_INVITED, Kind.INVITE_DECLINED, Kind.FLOW_DELETED,
})

# No MTP message or flow change, so get_update and MTP pushes pass them over. Those without
# a flow concern their subject alone.
MATRIX_ONLY = frozenset({Kind.TYPING, Kind.RECEIPT, Kind.PRIVATE_RECEIPT, Kind.ACCOUNT_DATA,
                         Kind.ROOM_EVENT})
# Of no flow, and told to their subject alone.
PERSONAL = frozenset({Kind.PRIVATE_RECEIPT, Kind.ACCOUNT_DATA})
# In a flow but on no timeline: read from memory or the receipts table, never paged.
EPHEMERAL = frozenset({Kind.TYPING, Kind.RECEIPT})
# What Matrix /sync carries outside the timeline (its `ephemeral` and `account_data`).
SIDELINE = frozenset({*EPHEMERAL, *PERSONAL})
# A user's own message or room event ends their typing notice.
ENDS_TYPING = frozenset({Kind.MESSAGE_SENT, Kind.ROOM_EVENT})

# A flow's state: creation, membership, title and info, encryption, members' profiles.
STATE = frozenset({Kind.FLOW_CREATED, Kind.FLOW_JOINED, Kind.FLOW_LEFT, Kind.FLOW_INVITED,
                   Kind.INVITE_DECLINED, Kind.FLOW_CHANGED, Kind.FLOW_ENCRYPTED,
                   Kind.PROFILE_CHANGED})

# Users start or stop sharing a flow (device lists follow them). A deleted flow's members
# each leave it first, so `flow_deleted` adds nothing here.
SHARING = frozenset({Kind.FLOW_CREATED, Kind.FLOW_JOINED, Kind.FLOW_LEFT})
# After these a flow's member set, as cached by the hub, must be read again.
MEMBER_SET = frozenset({*SHARING, Kind.FLOW_DELETED})
# Told to their subject besides the flow's members (who left, was invited, or declined).
TOLD_SUBJECT = frozenset({Kind.FLOW_LEFT, Kind.FLOW_INVITED, Kind.INVITE_DECLINED})

# Of no flow; their payload's "users" names whom they concern (the hub delivers to them).
ADDRESSED = frozenset({Kind.DEVICE_KEYS_CHANGED, Kind.ONE_TIME_KEYS_CHANGED, Kind.TO_DEVICE})
# May alter what a device's /sync carries of its keys: key changes, and a membership change
# in a flow of the user's (`device_lists.changed` or `left`).
KEY_SYNC = frozenset({*ADDRESSED, *SHARING})
