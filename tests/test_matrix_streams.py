"""`protocol.matrix.streams.DeviceKeysCache`: a /sync skips the device-keys read while the
user's stream shows nothing that could change it, sync after sync, and reads again when
something does."""

from __future__ import annotations

import pytest

from mod.changes import Change
from mod.protocol.matrix.streams import DeviceKeysCache, UserStream
from mod.service import SyncKeys

pytestmark = pytest.mark.anyio


def change(position: int, kind: str) -> Change:
    return Change(position, 0, "flow" if kind == "message" else "", kind, "u", "u", "{}")


async def test_skips_the_read_sync_after_sync_until_a_key_change() -> None:
    stream = UserStream("u", 10)
    cache = DeviceKeysCache()
    counts = SyncKeys([], [], {"signed_curve25519": 5}, [])
    cache.put("u", "D", 10, 11, counts)
    since = 11
    for position in range(12, 20):  # one message a sync, each acknowledged by the next
        stream.deliver(change(position, "message"))
        stream.acknowledge(since)
        kept = cache.get(stream, "D", since, position)
        assert kept is not None and kept.counts == counts.counts
        since = position
    stream.deliver(change(20, "flow_joined"))  # may make device_lists news
    stream.acknowledge(since)
    assert cache.get(stream, "D", since, 20) is None
    news = SyncKeys([], ["v"], {}, [])
    cache.put("u", "D", since, 20, news)
    stream.acknowledge(20)
    assert cache.get(stream, "D", 20, 20) is None  # the last read had news: read again
