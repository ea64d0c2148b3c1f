"""Fixed bounds on strings clients name their devices and keys with (docs/BOUNDS.md).

These are protocol-level limits, not settings: no real client comes near them, and the
database and every reader of these strings can count on them. Past one: `TooLong` (400,
Matrix M_TOO_LARGE), nothing stored.
"""

from __future__ import annotations

from mod.error import TooLong

MAX_DEVICE_NAME = 100  # characters of a device's display name (Synapse's bound too)
MAX_DEVICE_ID = 255  # characters of a device ID a client chooses
MAX_KEY_NAME = 255  # characters of "<algorithm>:<key id>" of a one-time or fallback key
MAX_EVENT_TYPE = 255  # characters of a to-device message's type
MAX_KEY_JSON = 65536  # characters of one stored key object (device keys with signatures)
MAX_FALLBACK_ALGORITHMS = 8  # fallback keys (one per algorithm) a device may hold
MAX_RULE_ID = 255  # characters of a push rule's ID
MAX_PUSH_RULES = 256 * 1024  # bytes of a user's whole push rule set (JSON), kept as one row
MAX_TAG = 255  # characters of a room tag's name


def check_device(device_id: str, name: str) -> None:
    """Refuse a device ID or display name past its bound."""
    if len(device_id) > MAX_DEVICE_ID:
        raise TooLong(f"A device ID is at most {MAX_DEVICE_ID} characters")
    check_device_name(name)


def check_device_name(name: str) -> None:
    if len(name) > MAX_DEVICE_NAME:
        raise TooLong(f"A device display name is at most {MAX_DEVICE_NAME} characters")
