"""Every setting of the server, with its default and its checks."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_SECTION = ConfigDict(extra="forbid", frozen=True)

Positive = Annotated[int, Field(gt=0)]


class Server(BaseModel):
    model_config = _SECTION

    name: str = "Morelia Server"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    max_frame_size: Positive = 16 * 1024 * 1024
    rate_limit: Positive = 200
    rate_burst: Positive = 400
    send_queue: Positive = 256
    send_queue_bytes: Positive = 8 * 1024 * 1024
    ping_interval: Annotated[float, Field(gt=0)] = 20.0
    ping_timeout: Annotated[float, Field(gt=0)] = 20.0
    compression: bool = False
    header_timeout: Annotated[float, Field(ge=0)] = 10.0
    # A request body, once its head is in: cut after BODY_TIMEOUT seconds without a byte, or
    # when it averages under BODY_MIN_RATE bytes/s once BODY_GRACE seconds have passed.
    body_timeout: Annotated[float, Field(ge=0)] = 60.0
    body_min_rate: Annotated[int, Field(ge=0)] = 1024
    body_grace: Annotated[float, Field(ge=0)] = 10.0
    max_connections_per_address: Annotated[int, Field(ge=0)] = 500


class Database(BaseModel):
    model_config = _SECTION

    uri: str = "sqlite:morelia.db"
    readers: Annotated[int, Field(ge=1, le=64)] = 2
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 256
    batch_wait: Annotated[float, Field(ge=0, le=0.1)] = 0.0005
    timeout: Annotated[float, Field(gt=0)] = 5.0

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split(":", 1)[0]
        if scheme not in ("sqlite", "postgres", "postgresql") or ":" not in value:
            raise ValueError("must start with sqlite: or postgres://")
        return value


class Broker(BaseModel):
    model_config = _SECTION

    uri: str = "memory://"
    channel: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "morelia"
    check_interval: Annotated[float, Field(gt=0, le=3600)] = 5.0

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "postgres://", "postgresql://")):
            raise ValueError("must start with memory://, redis:// or postgres://")
        return value


class Security(BaseModel):
    model_config = _SECTION

    token_ttl: Positive = 30 * 24 * 3600
    token_cache_seconds: Annotated[float, Field(ge=0)] = 5.0
    registration: Literal["open", "token", "closed"] = "open"
    # Failed logins: counted per (login, client address) and per address over LOGIN_WINDOW
    # seconds; past LOGIN_FAILURES (ADDRESS_FAILURES) further tries are refused (429) until
    # the oldest failure leaves the window. Each failure past the first waits LOGIN_DELAY
    # seconds, doubling, at most LOGIN_DELAY_MAX, before it is answered. 0 turns a limit off.
    login_window: Annotated[float, Field(gt=0)] = 300.0
    login_failures: Annotated[int, Field(ge=0)] = 5
    address_failures: Annotated[int, Field(ge=0)] = 50
    login_delay: Annotated[float, Field(ge=0, le=10)] = 0.25
    login_delay_max: Annotated[float, Field(ge=0, le=60)] = 2.0
    # Registration tokens this server never issued, tried from one address (the validity
    # endpoint, MTP and Matrix registrations) over LOGIN_WINDOW; past it, 429. 0: no limit.
    token_failures: Annotated[int, Field(ge=0)] = 10
    # argon2id's cost for new password hashes: passes, and memory in KiB (argon2's defaults).
    password_time_cost: Annotated[int, Field(ge=1, le=64)] = 3
    password_memory_kib: Annotated[int, Field(ge=64, le=4 * 1024 * 1024)] = 65536

    @field_validator("registration", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class Protocol(BaseModel):
    model_config = _SECTION

    min_version: str = "1.0"
    max_version: str = "1.9"
    messages_limit: Positive = 100
    users_limit: Positive = 100
    reactions_limit: Positive = 20
    mentions_limit: Positive = 100

    @field_validator("min_version", "max_version")
    @classmethod
    def _version(cls, value: str) -> str:
        major, _, minor = value.partition(".")
        if not (major.isdigit() and minor.isdigit()):
            raise ValueError("must look like 1.0")
        return value


class Search(BaseModel):
    """Message search (MTP search_messages, Matrix POST /search; docs/BOUNDS.md)."""

    model_config = _SECTION

    # The longest search text in characters, and the most words in one (past either: 400).
    max_length: Annotated[int, Field(ge=1, le=10_000)] = 256
    max_words: Annotated[int, Field(ge=1, le=100)] = 16
    # Most results in one answer; a client asking for more gets a page this long.
    results_limit: Annotated[int, Field(ge=1, le=1000)] = 50
    # Searches running at once in one process (the others wait, so that readers stay free
    # for everything else), searches waiting at most (more: 429), and the seconds one search
    # may run before it is stopped (503).
    at_once: Annotated[int, Field(ge=1, le=64)] = 1
    queue: Annotated[int, Field(ge=0, le=10_000)] = 32
    timeout: Annotated[float, Field(gt=0, le=60)] = 3.0


class Logging(BaseModel):
    model_config = _SECTION

    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    file: str = ""
    rotation: str = "10 MB"
    retention: str = "10 days"
    format: Literal["text", "json"] = "text"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class Matrix(BaseModel):
    model_config = _SECTION

    server_name: str = "localhost"
    base_url: str = ""
    sync_timeout_max: Annotated[float, Field(ge=0)] = 60.0
    user_directory: Literal["shared", "all"] = "shared"
    # End-to-end encryption bounds (docs/BOUNDS.md). Unclaimed one-time keys a device may
    # hold (clients keep about 50; an upload past it is refused whole).
    max_one_time_keys: Annotated[int, Field(ge=1, le=100_000)] = 200
    # To-device messages one sender may have waiting for one recipient user (past it: 429).
    to_device_pending: Annotated[int, Field(ge=1, le=1_000_000)] = 100
    # To-device messages one /sync carries at most (the rest come in the next ones).
    to_device_per_sync: Annotated[int, Field(ge=1, le=10_000)] = 100
    # sendToDevice requests per second one user may make, and the burst allowed above it.
    to_device_rate: Annotated[float, Field(gt=0)] = 10.0
    to_device_burst: Annotated[int, Field(ge=1)] = 100
    # Pieces of account data (global and per room) one user may keep (past it: 400).
    max_account_data: Annotated[int, Field(ge=1)] = 5000
    max_room_tags: Annotated[int, Field(ge=1)] = 100


class Media(BaseModel):
    model_config = _SECTION

    # Where files are kept; empty: `media` beside the SQLite file (PostgreSQL: the working
    # directory). Several processes may share one directory.
    path: str = ""
    max_upload_size: Positive = 50 * 1024 * 1024
    # Serve the older unauthenticated /_matrix/media/v3/download and thumbnail paths.
    legacy_downloads: bool = True
    # Files up to this size reach MTP clients inline (base64); larger ones as a text note.
    mtp_inline_limit: Annotated[int, Field(ge=0)] = 8 * 1024 * 1024
    # Images with more pixels than this are not thumbnailed (decompression bombs).
    max_image_pixels: Positive = 64_000_000
    # The thumbnail sizes made of a picture (all of them, from one decode, kept on disk); a
    # request gets the nearest one at least as large as asked, of its method.
    thumbnail_sizes: str = ("32x32 crop, 96x96 crop, 320x240 scale, 640x480 scale, "
                            "800x600 scale")
    # Worker processes that make thumbnails (0: none are made, 503), the seconds one
    # picture may take before its worker is stopped (504), and the pictures waiting for or
    # being thumbnailed at once, per process (more: 429).
    thumbnail_workers: Annotated[int, Field(ge=0, le=16)] = 1
    thumbnail_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    thumbnail_queue: Annotated[int, Field(ge=1, le=10_000)] = 32
    # Asynchronous uploads (/create) a user may have waiting for their bytes at once, and
    # the seconds a created media ID waits before it expires (the hourly purge drops it).
    max_pending_uploads: Positive = 10
    unused_expires: Positive = 24 * 3600
    # Each user's media quota: bytes and files stored (uploads, MTP files; 0: unlimited).
    # More is refused (413). `manage.py media quota LOGIN` sets one user's own quota.
    quota_bytes: Annotated[int, Field(ge=0)] = 1024 * 1024 * 1024
    quota_files: Annotated[int, Field(ge=0)] = 10_000

    @field_validator("thumbnail_sizes")
    @classmethod
    def _sizes(cls, value: str) -> str:
        from mod.imaging import parse_sizes

        parse_sizes(value)
        return value


class Metrics(BaseModel):
    model_config = _SECTION

    # Addresses or networks (CIDR) that may read /metrics, separated by commas or spaces.
    allow: str = "127.0.0.1, ::1"

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in value.replace(",", " ").split():
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an address or network") from None
        return value

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(item, strict=False)
                for item in self.allow.replace(",", " ").split()]


class Settings(BaseModel):
    model_config = _SECTION

    server: Server = Server()
    database: Database = Database()
    broker: Broker = Broker()
    security: Security = Security()
    protocol: Protocol = Protocol()
    search: Search = Search()
    logging: Logging = Logging()
    matrix: Matrix = Matrix()
    media: Media = Media()
    metrics: Metrics = Metrics()
