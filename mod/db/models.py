"""SQLObject tables. Rows are read and written only by mod.db.dbhandler."""

from __future__ import annotations

from sqlobject import (
    BigIntCol,
    BoolCol,
    DatabaseIndex,
    SQLObject,
    StringCol,
    UnicodeCol,
)


class User(SQLObject):
    class sqlmeta:
        table = "users"

    uuid = StringCol(length=40, notNone=True, unique=True)
    login = UnicodeCol(notNone=True)
    # Unique while the account exists; NULL once deleted, so anonymised logins never collide.
    login_key = UnicodeCol(default=None, unique=True)
    password_hash = StringCol(notNone=True, default="")
    username = UnicodeCol(notNone=True, default="")
    bio = UnicodeCol(notNone=True, default="")
    avatar = UnicodeCol(notNone=True, default="")
    email = UnicodeCol(notNone=True, default="")
    is_bot = BoolCol(notNone=True, default=False)
    is_superuser = BoolCol(notNone=True, default=False)
    token_ttl = BigIntCol(notNone=True)
    time_created = BigIntCol(notNone=True)
    deleted = BoolCol(notNone=True, default=False)
    # Locked by an operator (`manage.py user lock`): no logins, no tokens. Added after the
    # first release: `dbhandler.create_tables` adds it to older databases.
    locked = BoolCol(notNone=True, default=False)


class Flow(SQLObject):
    class sqlmeta:
        table = "flows"

    uuid = StringCol(length=40, notNone=True, unique=True)
    time_created = BigIntCol(notNone=True)
    flow_type = StringCol(length=16, notNone=True)
    title = UnicodeCol(notNone=True, default="")
    info = UnicodeCol(notNone=True, default="")
    owner = StringCol(length=40, notNone=True)
    # "<smaller uuid>:<larger uuid>" for chats, so one pair of users has at most one chat.
    chat_key = StringCol(length=90, default=None, unique=True)
    # Joined only by invitation and seen only by members (chats are so by nature). Added
    # in schema version 2 (mod.db.schema).
    invite_only = BoolCol(notNone=True, default=False)
    # End-to-end encrypted (Matrix m.room.encryption): plaintext can no longer be posted.
    # Added in schema version 6, with the tables of end-to-end encryption below.
    encrypted = BoolCol(notNone=True, default=False)


class Member(SQLObject):
    class sqlmeta:
        table = "members"

    flow_uuid = StringCol(length=40, notNone=True)
    user_uuid = StringCol(length=40, notNone=True)
    time_joined = BigIntCol(notNone=True)
    pair = DatabaseIndex("flow_uuid", "user_uuid", unique=True)
    by_user = DatabaseIndex("user_uuid")


class Invite(SQLObject):
    class sqlmeta:
        table = "invites"

    flow_uuid = StringCol(length=40, notNone=True)
    user_uuid = StringCol(length=40, notNone=True)
    inviter = StringCol(length=40, notNone=True)
    time_created = BigIntCol(notNone=True)
    pair = DatabaseIndex("flow_uuid", "user_uuid", unique=True)
    by_user = DatabaseIndex("user_uuid")


class Message(SQLObject):
    class sqlmeta:
        table = "messages"

    uuid = StringCol(length=40, notNone=True, unique=True)
    flow_uuid = StringCol(length=40, notNone=True)
    user_uuid = StringCol(length=40, notNone=True)
    client_id = BigIntCol(notNone=True, default=0)
    text = UnicodeCol(notNone=True, default="")
    file_picture = UnicodeCol(notNone=True, default="")
    file_video = UnicodeCol(notNone=True, default="")
    file_audio = UnicodeCol(notNone=True, default="")
    file_document = UnicodeCol(notNone=True, default="")
    emoji = UnicodeCol(notNone=True, default="")
    time_created = BigIntCol(notNone=True)
    edited_time = BigIntCol(notNone=True, default=0)
    edited_status = BoolCol(notNone=True, default=False)
    # Hash of what makes a send a retry of an earlier one (sender's token, flow, content).
    retry_key = StringCol(length=64, default=None)  # unused since retries use `txns`
    deleted = BoolCol(notNone=True, default=False)
    reply_to = StringCol(length=40, notNone=True, default="")  # the uuid of the message answered
    file_name = UnicodeCol(length=255, notNone=True, default="")  # its file's, when it has one
    file_type = UnicodeCol(length=255, notNone=True, default="")
    by_flow = DatabaseIndex("flow_uuid", {"expression": "id"})


class Reaction(SQLObject):
    """A user's reaction (a short text, usually an emoji) to a message; `position` is the
    change-log row that added it, which a Matrix client redacts to take it back."""

    class sqlmeta:
        table = "reactions"

    flow_uuid = StringCol(length=40, notNone=True)
    message_uuid = StringCol(length=40, notNone=True)
    user_uuid = StringCol(length=40, notNone=True)
    reaction_key = UnicodeCol(length=64, notNone=True)
    position = BigIntCol(notNone=True)
    unique_key = DatabaseIndex("message_uuid", "user_uuid", "reaction_key", unique=True)
    by_position = DatabaseIndex("position")


class Mention(SQLObject):
    """A member a message names (MTP `mentions`, Matrix `m.mentions.user_ids`)."""

    class sqlmeta:
        table = "mentions"

    flow_uuid = StringCol(length=40, notNone=True)
    message_uuid = StringCol(length=40, notNone=True)
    user_uuid = StringCol(length=40, notNone=True)
    pair = DatabaseIndex("message_uuid", "user_uuid", unique=True)
    by_user = DatabaseIndex("user_uuid", "flow_uuid")


class Token(SQLObject):
    class sqlmeta:
        table = "tokens"

    token_hash = StringCol(length=64, notNone=True, unique=True)
    user_uuid = StringCol(length=40, notNone=True)
    device = UnicodeCol(notNone=True, default="")
    time_created = BigIntCol(notNone=True)
    expires = BigIntCol(notNone=True)
    by_user = DatabaseIndex("user_uuid")


class Txn(SQLObject):
    """The result of a request's first run, returned again when the request is retried."""

    class sqlmeta:
        table = "txns"

    txn_key = StringCol(length=64, notNone=True, unique=True)
    result = UnicodeCol(notNone=True)
    time_created = BigIntCol(notNone=True)


class Change(SQLObject):
    """The ordered change log: one row per committed change; `id` is its position."""

    class sqlmeta:
        table = "changes"

    time_created = BigIntCol(notNone=True)
    flow_uuid = StringCol(length=40, notNone=True)
    kind = StringCol(length=32, notNone=True)
    actor = StringCol(length=40, notNone=True)
    subject = StringCol(length=40, notNone=True, default="")
    payload = UnicodeCol(notNone=True, default="{}")
    by_time = DatabaseIndex("time_created")
    by_flow = DatabaseIndex("flow_uuid", {"expression": "id"})


class Heartbeat(SQLObject):
    """A running server process, refreshed every few seconds: restores refuse while any is
    fresh. Added in schema version 4 (mod.db.schema)."""

    class sqlmeta:
        table = "heartbeats"

    process = StringCol(length=64, notNone=True, unique=True)
    host = UnicodeCol(notNone=True, default="")
    pid = BigIntCol(notNone=True, default=0)
    time_started = BigIntCol(notNone=True)
    time_seen = BigIntCol(notNone=True)


class RegistrationToken(SQLObject):
    """A token that lets one register while `[SECURITY] REGISTRATION = token`."""

    class sqlmeta:
        table = "registration_tokens"

    token = StringCol(length=64, notNone=True, unique=True)
    uses_allowed = BigIntCol(default=None)  # NULL: any number of uses
    uses = BigIntCol(notNone=True, default=0)
    expires = BigIntCol(notNone=True, default=0)  # 0: never
    time_created = BigIntCol(notNone=True)


class AccountData(SQLObject):
    """A user's Matrix account data: global (`room` empty) or for one room (its flow uuid)."""

    class sqlmeta:
        table = "account_data"

    user_uuid = StringCol(length=40, notNone=True)
    room = StringCol(length=40, notNone=True, default="")
    data_type = UnicodeCol(length=255, notNone=True)
    content = UnicodeCol(notNone=True, default="{}")
    time_created = BigIntCol(notNone=True)
    unique_key = DatabaseIndex("user_uuid", "room", "data_type", unique=True)


class Receipt(SQLObject):
    """The latest read receipt of each user, receipt type and thread in a flow."""

    class sqlmeta:
        table = "receipts"

    flow_uuid = StringCol(length=40, notNone=True)
    user_uuid = StringCol(length=40, notNone=True)
    receipt_type = StringCol(length=40, notNone=True)
    thread = UnicodeCol(length=255, notNone=True, default="")
    event_id = UnicodeCol(length=255, notNone=True)
    ts = BigIntCol(notNone=True)
    unique_key = DatabaseIndex("flow_uuid", "user_uuid", "receipt_type", "thread", unique=True)


class Device(SQLObject):
    """A Matrix device of a user: its name, its end-to-end identity keys (JSON, "" before
    the device uploads them) and when and from where it was last seen (0 and "": not yet).
    Tokens name their device; this row outlives a token."""

    class sqlmeta:
        table = "devices"

    user_uuid = StringCol(length=40, notNone=True)
    device_id = UnicodeCol(notNone=True)
    display_name = UnicodeCol(notNone=True, default="")
    keys = UnicodeCol(notNone=True, default="")
    time_created = BigIntCol(notNone=True)
    last_seen_ts = BigIntCol(notNone=True, default=0)  # milliseconds
    last_seen_ip = UnicodeCol(notNone=True, default="")
    pair = DatabaseIndex("user_uuid", "device_id", unique=True)


class OneTimeKey(SQLObject):
    """A device's one-time key (claimed once) or fallback key (served when none is left)."""

    class sqlmeta:
        table = "one_time_keys"

    user_uuid = StringCol(length=40, notNone=True)
    device_id = UnicodeCol(notNone=True)
    algorithm = UnicodeCol(notNone=True)
    key_id = UnicodeCol(notNone=True)
    key_json = UnicodeCol(notNone=True)
    fallback = BoolCol(notNone=True, default=False)
    used = BoolCol(notNone=True, default=False)
    by_device = DatabaseIndex("user_uuid", "device_id", "algorithm")
    by_key = DatabaseIndex("user_uuid", "device_id", "key_id")


class ToDevice(SQLObject):
    """A to-device message waiting for its device; `position` is the change that woke the
    device's /sync. Deleted once a /sync's `since` passes it."""

    class sqlmeta:
        table = "to_device"

    user_uuid = StringCol(length=40, notNone=True)
    device_id = UnicodeCol(notNone=True)
    position = BigIntCol(notNone=True)
    sender = StringCol(length=40, notNone=True)
    event_type = UnicodeCol(notNone=True)
    content = UnicodeCol(notNone=True)
    by_device = DatabaseIndex("user_uuid", "device_id", "position")
    by_sender = DatabaseIndex("user_uuid", "sender")


class CrossSigningKey(SQLObject):
    """A user's master, self-signing or user-signing key (JSON)."""

    class sqlmeta:
        table = "cross_signing_keys"

    user_uuid = StringCol(length=40, notNone=True)
    key_type = StringCol(length=16, notNone=True)
    key_json = UnicodeCol(notNone=True)
    pair = DatabaseIndex("user_uuid", "key_type", unique=True)


class KeyBackup(SQLObject):
    """A version of a user's server-side room-key backup."""

    class sqlmeta:
        table = "key_backups"

    user_uuid = StringCol(length=40, notNone=True)
    version = BigIntCol(notNone=True)
    algorithm = UnicodeCol(notNone=True)
    auth_data = UnicodeCol(notNone=True)
    etag = BigIntCol(notNone=True, default=0)
    deleted = BoolCol(notNone=True, default=False)
    pair = DatabaseIndex("user_uuid", "version", unique=True)


class BackupKey(SQLObject):
    """One backed-up room key (encrypted by the client) of a backup version."""

    class sqlmeta:
        table = "backup_keys"

    user_uuid = StringCol(length=40, notNone=True)
    version = BigIntCol(notNone=True)
    room_id = UnicodeCol(notNone=True)
    session_id = UnicodeCol(notNone=True)
    key_json = UnicodeCol(notNone=True)
    by_session = DatabaseIndex("user_uuid", "version", "room_id", "session_id", unique=True)


class Media(SQLObject):
    """An uploaded file: `mxc://<server name>/<media_id>`. The bytes are on disk under
    `[MEDIA] PATH`, named by `sha256` (empty while an asynchronous upload waits for them)."""

    class sqlmeta:
        table = "media"

    media_id = StringCol(length=64, notNone=True, unique=True)
    sha256 = StringCol(length=64, notNone=True, default="")
    content_type = UnicodeCol(notNone=True, default="application/octet-stream")
    size = BigIntCol(notNone=True, default=0)
    name = UnicodeCol(notNone=True, default="")
    uploader = StringCol(length=40, notNone=True)
    time_created = BigIntCol(notNone=True)
    width = BigIntCol(notNone=True, default=0)
    height = BigIntCol(notNone=True, default=0)
    by_hash = DatabaseIndex("sha256")
    by_uploader = DatabaseIndex("uploader")


class MediaRef(SQLObject):
    """What refers to a file: a message (`owner` its uuid) or an avatar (`owner` the user's
    uuid); `manage.py media purge` removes files nothing refers to."""

    class sqlmeta:
        table = "media_refs"

    media_id = StringCol(length=64, notNone=True)
    kind = StringCol(length=16, notNone=True)
    owner = StringCol(length=40, notNone=True)
    by_owner = DatabaseIndex("kind", "owner")
    by_media = DatabaseIndex("media_id")


class MediaQuota(SQLObject):
    """One user's own media quota, set by an operator; a user without a row has
    `[MEDIA] QUOTA_BYTES` and `QUOTA_FILES`. NULL: that limit is the configured default."""

    class sqlmeta:
        table = "media_quotas"

    user_uuid = StringCol(length=40, notNone=True, unique=True)
    max_bytes = BigIntCol(default=None)
    max_files = BigIntCol(default=None)


TABLES: tuple[type[SQLObject], ...] = (User, Flow, Member, Invite, Message, Token, Txn, Change,
                                       Heartbeat, RegistrationToken, AccountData, Receipt,
                                       Device, OneTimeKey, ToDevice, CrossSigningKey, KeyBackup,
                                       BackupKey, Media, MediaRef, MediaQuota, Reaction,
                                       Mention)
