"""What a device's /sync carries of end-to-end encryption: `to_device` messages,
`device_lists` (`changed`, `left`), `device_one_time_keys_count` and
`device_unused_fallback_key_types` (from `service.keys.for_sync`)."""

from __future__ import annotations

from mod.protocol.matrix.api import DeviceLists, Events, SyncReply
from mod.protocol.matrix.keys import ids_of
from mod.protocol.matrix.routing import Call
from mod.protocol.matrix.streams import UserStream
from mod.service import SyncKeys


async def read(call: Call, stream: UserStream, since: int | None, upto: int) -> SyncKeys:
    """The device's share of a batch covering (since, upto]: from the last read when the
    user's stream shows nothing changed since (no database round trip), else read."""
    caller = call.caller
    cache = call.matrix.device_keys
    kept = cache.get(stream, caller.device, since, upto)
    if kept is not None:
        return kept
    keys = await call.service.keys.for_sync(caller, since, upto)
    cache.put(caller.uuid, caller.device, since, upto if keys.through is None else keys.through,
              keys)
    return keys


async def add(call: Call, reply: SyncReply, keys: SyncKeys) -> SyncReply:
    """The reply with the device's share of the batch."""
    if not call.caller.device:
        return reply
    names = await ids_of(call, {sender for sender, _, _ in keys.to_device} | set(keys.changed)
                         | set(keys.left))
    reply.device_one_time_keys_count = keys.counts
    reply.device_unused_fallback_key_types = keys.unused_fallback
    if keys.to_device:
        reply.to_device = Events.model_construct(events=[
            {"sender": names.get(sender, ""), "type": kind, "content": content}
            for sender, kind, content in keys.to_device])
    if keys.changed or keys.left:
        reply.device_lists = DeviceLists.model_construct(
            changed=sorted(names[user] for user in keys.changed if user in names),
            left=sorted(names[user] for user in keys.left if user in names))
    return reply
