"""The event IDs of a flow's messages and changes, as both protocols and the stored receipts,
relations and read markers name them: a message's `m.room.message` event is `$m<message
uuid>` (so edits and redactions name their target without a lookup); every other event is
`$<position>` of the change-log row it renders, or `$<position>.<n>` when one change renders
as several events (a new room)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_UUID = 40  # digits of a uuid (a 128-bit integer has 39)
MAX_NUMBER = 18  # digits of a position, a timeout or a limit: always fits in 64 bits


def is_number(text: str, max_digits: int = MAX_NUMBER) -> bool:
    """Whether `text` is a non-negative decimal integer of ASCII digits, not too long
    (`str.isdigit` also takes "²" and other digits `int` refuses)."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def message_event_id(message_uuid: str) -> str:
    return f"$m{message_uuid}"


def change_event_id(position: int, index: int | None = None) -> str:
    return f"${position}" if index is None else f"${position}.{index}"


@dataclass(frozen=True, slots=True)
class EventRef:
    """What an event ID points at: a message, or the n-th event of a change."""

    message: str = ""
    position: int = 0
    index: int | None = None


def parse_event_id(event_id: str) -> EventRef | None:
    body = event_id[1:] if event_id.startswith("$") else ""
    if body.startswith("m") and is_number(body[1:], MAX_UUID):
        return EventRef(message=body[1:])
    head, dot, tail = body.partition(".")
    if is_number(head) and (not dot or is_number(tail)):
        return EventRef(position=int(head), index=int(tail) if dot else None)
    return None
