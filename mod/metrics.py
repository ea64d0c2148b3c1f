"""The server's Prometheus metrics (with the official `prometheus_client`).

With several worker processes, set PROMETHEUS_MULTIPROC_DIR to an empty directory shared by
them (cleared before each start): every process then writes its values there and /metrics,
whichever process answers, adds them up (`MultiProcessCollector`). Without it each process
reports only its own.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

disable_created_metrics()  # *_created samples: noise for counters that start with the process

CONNECTIONS = Gauge("morelia_open_connections", "Open client connections (MTP websockets, "
                    "HTTP requests in progress)", ["protocol"], multiprocess_mode="livesum")
REQUESTS = Counter("morelia_requests", "Requests answered, by protocol, method and status code",
                   ["protocol", "method", "code"])
LATENCY = Histogram("morelia_request_seconds", "Time to answer a request", ["protocol"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                             5, 10, 30, 60))
BATCH_SIZE = Histogram("morelia_writer_batch_jobs", "Write jobs committed per transaction",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
COMMIT_SECONDS = Histogram("morelia_writer_batch_seconds", "Time to run and commit one batch",
                           buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                    0.5, 1, 5))
DELIVERY_LAG = Histogram("morelia_hub_delivery_lag_seconds", "From the commit of a change in "
                         "this process to its hand-over to the connections",
                         buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                  0.5, 1, 5))
BROKER_RECONNECTS = Counter("morelia_broker_reconnects", "Broker connections lost and retried")
DROPPED_SLOW = Counter("morelia_clients_dropped_slow", "Connections closed because the client "
                       "stopped reading")
SYNCS_WAITING = Gauge("morelia_matrix_syncs_waiting", "Matrix /sync long-polls waiting for news",
                      multiprocess_mode="livesum")


# Labelled children looked up once: `labels()` costs more than the increment itself, and an
# MTP request is answered in tens of microseconds. (Methods are the known ones or "other";
# so are HTTP's.)
_MTP_COUNTS: dict[tuple[str, int], Any] = {}
_MTP_LATENCY = LATENCY.labels("mtp")


def mtp_answered(method: str, code: int, seconds: float) -> None:
    counter = _MTP_COUNTS.get((method, code))
    if counter is None:
        counter = _MTP_COUNTS[(method, code)] = REQUESTS.labels("mtp", method, str(code))
    counter.inc()
    _MTP_LATENCY.observe(seconds)


_HTTP_COUNTS: dict[tuple[str, str, int], Any] = {}
_HTTP_LATENCY: dict[str, Any] = {}
_OPEN: dict[str, Any] = {}


def connections(protocol: str) -> Any:
    """The open-connections gauge of `protocol` (looked up once)."""
    gauge = _OPEN.get(protocol)
    if gauge is None:
        gauge = _OPEN[protocol] = CONNECTIONS.labels(protocol)
    return gauge


def http_answered(protocol: str, method: str, status: int, seconds: float) -> None:
    counter = _HTTP_COUNTS.get((protocol, method, status))
    if counter is None:
        counter = _HTTP_COUNTS[(protocol, method, status)] = REQUESTS.labels(
            protocol, method, str(status))
    counter.inc()
    latency = _HTTP_LATENCY.get(protocol)
    if latency is None:
        latency = _HTTP_LATENCY[protocol] = LATENCY.labels(protocol)
    latency.observe(seconds)


def render() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(DEFAULT_REGISTRY)
