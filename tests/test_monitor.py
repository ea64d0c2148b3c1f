"""GET /health, GET /metrics (and who may read it), and the status page at /status."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import ValidationError

from mod.config.validator import Metrics
from tests.support import Client, ServerProcess, http_client, unique_login
from tests.test_faults import PG_BIN, postgres_cluster

# server_process: metrics are counted per process.
pytestmark = [pytest.mark.anyio, pytest.mark.server_process]


def value(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text `text` (0 when absent)."""
    wanted = ",".join(f'{key}="{item}"' for key, item in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def http_from(server: ServerProcess, source: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return http_client(base_url=server.http, timeout=10, transport=transport)


async def test_health_status_and_metrics(server: ServerProcess) -> None:
    async with http_from(server) as http:
        health = await http.get("/health")
        assert health.status_code == 200 and health.text == "ok\n"
        page = await http.get("/status")
        assert page.status_code == 200 and "<th>Users</th>" in page.text
        assert "href='/'" in page.text  # the way to the web client
        assert "<th>Users</th>" not in (await http.get("/")).text  # "/" is the web client

        client = await Client.connect(server.url)
        try:
            await client.register(unique_login())
            await client.group("counted")  # a change for the hub to deliver
            assert (await client.call("ping_pong"))["errors"]["code"] == 200
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")
            text = metrics.text
            assert value(text, "morelia_open_connections", protocol="mtp") == 1
            assert value(text, "morelia_requests_total", protocol="mtp", method="ping_pong",
                         code="200") == 1
            assert value(text, "morelia_requests_total", protocol="mtp",
                         method="register_user", code="201") == 1
            assert value(text, "morelia_requests_total", protocol="http", method="GET",
                         code="200") >= 3
            assert value(text, "morelia_request_seconds_count", protocol="mtp") == 3
            assert value(text, "morelia_writer_batch_jobs_count") >= 1
            assert value(text, "morelia_writer_batch_seconds_count") >= 1
            assert value(text, "morelia_hub_delivery_lag_seconds_count") >= 1
            for name in ("morelia_broker_reconnects_total", "morelia_clients_dropped_slow_total",
                         "morelia_matrix_syncs_waiting"):
                assert f"\n{name} " in text
        finally:
            await client.close()

        async def closed() -> bool:
            text = (await http.get("/metrics")).text
            return value(text, "morelia_open_connections", protocol="mtp") == 0

        deadline = time.monotonic() + 5
        while not await closed():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)


async def test_metrics_only_for_allowed_addresses(tmp_path: Path) -> None:
    env = {"MORELIA_DATABASE_URI": f"sqlite:{tmp_path / 'm.db'}",
           "MORELIA_METRICS_ALLOW": "127.0.0.2/32, 10.0.0.0/8"}
    with ServerProcess(tmp_path, env=env) as server:
        async with http_from(server) as http:
            refused = await http.get("/metrics")
            assert refused.status_code == 403 and "morelia" not in refused.text
            assert (await http.get("/health")).status_code == 200  # for anyone
        async with http_from(server, "127.0.0.2") as http:
            assert (await http.get("/metrics")).status_code == 200


def test_allow_is_checked() -> None:
    assert [str(n) for n in Metrics(allow="127.0.0.1, ::1 10.0.0.0/8").networks()] == [
        "127.0.0.1/32", "::1/128", "10.0.0.0/8"]
    with pytest.raises(ValidationError):
        Metrics(allow="127.0.0.1, example.org")


def served_per_process(shared: Path) -> list[float]:
    """The HTTP GET 200s each process counted, from its own file in PROMETHEUS_MULTIPROC_DIR."""
    counts = []
    for path in sorted(shared.glob("counter_*.db")):
        counts.append(sum(
            sample.value for metric in MultiProcessCollector.merge([str(path)])
            for sample in metric.samples if sample.name == "morelia_requests_total"
            and sample.labels == {"protocol": "http", "method": "GET", "code": "200"}))
    return counts


async def test_metrics_add_up_across_workers(tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {"MORELIA_DATABASE_URI": f"sqlite:{tmp_path / 'm.db'}",
           "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    with ServerProcess(tmp_path, env=env, args=["--workers", "2"]) as server:
        answered = 0
        deadline = time.monotonic() + 20
        # A new connection each time, which either worker may take, until both have counted
        # what they answered.
        while True:
            counts = served_per_process(shared)
            if len([count for count in counts if count]) == 2 and sum(counts) == answered:
                break
            assert time.monotonic() < deadline, (counts, answered)
            async with http_from(server) as http:
                answered += (await http.get("/health")).status_code == 200
        async with http_from(server) as http:
            text = (await http.get("/metrics")).text
        assert value(text, "morelia_requests_total", protocol="http", method="GET",
                     code="200") == answered


@pytest.mark.skipif(not PG_BIN or os.geteuid() != 0 or not shutil.which("runuser"),
                    reason="needs PostgreSQL binaries and root (to run them as postgres)")
async def test_health_is_503_while_the_database_is_gone(tmp_path: Path) -> None:
    with postgres_cluster() as cluster, ServerProcess(
            tmp_path, env={"MORELIA_DATABASE_URI": cluster.uri}) as server:
        async with http_from(server) as http:
            assert (await http.get("/health")).status_code == 200
            cluster.stop()
            started = time.monotonic()
            gone = await http.get("/health")
            assert gone.status_code == 503 and time.monotonic() - started < 4
            cluster.start()
            deadline = time.monotonic() + 20
            while (await http.get("/health")).status_code != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        assert "Traceback" not in server.log()
