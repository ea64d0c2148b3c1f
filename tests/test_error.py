"""mod.error: status phrases as PROTOCOL.md spells them, and the service's error type."""

from __future__ import annotations

import pytest

from mod.error import ServiceError, Unavailable, phrase

# From PROTOCOL.md, "Envelope".
PHRASES = {
    200: "OK", 201: "Created", 206: "Partial Content", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 415: "Unsupported Media Type", 429: "Too Many Requests",
    500: "Internal Server Error", 499: "Client Closed Request", 505: "Version Not Supported",
    520: "Unknown Error", 526: "Invalid SSL Certificate",
}


@pytest.mark.parametrize(("code", "text"), sorted(PHRASES.items()))
def test_phrases_are_spelled_as_the_protocol_says(code: int, text: str) -> None:
    assert phrase(code) == text


def test_the_protocol_codes_win_over_http() -> None:
    # HTTP's 505 is "HTTP Version Not Supported"; the protocol says "Version Not Supported".
    assert phrase(505) == "Version Not Supported"


@pytest.mark.parametrize("code", [0, 299, 599, 999, -1])
def test_an_unknown_code_reads_unknown_error(code: int) -> None:
    assert phrase(code) == "Unknown Error"


def test_service_error_carries_code_detail_and_payload() -> None:
    error = ServiceError(409, "A chat between these two users already exists",
                         payload={"uuid": "1"})
    assert error.code == 409
    assert error.detail == str(error) == "A chat between these two users already exists"
    assert error.payload == {"uuid": "1"}
    assert repr(error) == "ServiceError(409, 'A chat between these two users already exists')"
    assert ServiceError(404, "No flow 1").payload is None
    with pytest.raises(ServiceError) as excinfo:
        raise error
    assert excinfo.value is error


def test_unavailable_is_a_503_service_error() -> None:
    error = Unavailable()
    assert isinstance(error, ServiceError)
    assert error.code == 503 and phrase(503) == "Service Unavailable"
    assert error.detail
    assert Unavailable("down for maintenance").detail == "down for maintenance"
