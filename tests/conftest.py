"""Shared fixtures: a real embedded PostgreSQL and a real uvicorn server on a free port.

One database and one server per test session keep the suite fast; tests isolate themselves
with fresh ids and identifiers rather than by truncating tables.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FHIR_GATEWAY_SHARED_DATA", REPO.parent / "shared" / "data"))

TENANT_KEYS = {"dkfz": "test-key-dkfz", "ukhd": "test-key-ukhd", "embl": "test-key-embl"}


def shared_path(*parts: str) -> Path:
    """A path under the shared data folder; skips the test when that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available ({'/'.join(parts)}): the clone has no ../shared")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from fhir_gateway.store.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    url = pg.start()
    yield url
    pg.stop()


@dataclass
class LiveServer:
    base_url: str  # http://127.0.0.1:PORT
    fhir_base: str  # .../fhir
    keys: dict[str, str]
    database_url: str

    def client(self, tenant: str = "dkfz", **kwargs: object) -> httpx.Client:
        headers = {"X-API-Key": self.keys[tenant], "Accept": "application/fhir+json"}
        return httpx.Client(base_url=self.fhir_base, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]


def start_server(
    database_url: str, extra_env: dict[str, str] | None = None
) -> tuple[LiveServer, object, threading.Thread]:
    import uvicorn

    from fhir_gateway.app import create_app
    from fhir_gateway.bootstrap import prepare
    from fhir_gateway.settings import Settings

    port = free_port()
    env = {
        "database_url": database_url,
        "host": "127.0.0.1",
        "port": port,
        "api_keys": ",".join(f"{t}:{k}" for t, k in TENANT_KEYS.items()),
    }
    settings = Settings(**env, **(extra_env or {}))  # type: ignore[arg-type]
    asyncio.run(prepare(settings, database_url))
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    return LiveServer(base, base + "/fhir", dict(TENANT_KEYS), database_url), server, thread


@pytest.fixture(scope="session")
def live_fhir_server(postgres_url: str) -> Iterator[LiveServer]:
    """A real running instance of our FHIR server (uvicorn, embedded PostgreSQL)."""
    live, server, thread = start_server(postgres_url)
    yield live
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(timeout=30)


@pytest.fixture
def app_client(live_fhir_server: LiveServer) -> Iterator[httpx.Client]:
    """An httpx client on the live server's FHIR base, authenticated as tenant dkfz."""
    with live_fhir_server.client("dkfz") as client:
        yield client


@pytest.fixture
def other_tenant_client(live_fhir_server: LiveServer) -> Iterator[httpx.Client]:
    with live_fhir_server.client("ukhd") as client:
        yield client
