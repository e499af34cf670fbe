"""JSON logs with request ids and no personal data, in-process and through a real uvicorn."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from fhir_gateway.observability.logging import JsonFormatter, uvicorn_log_config

from .demo_app import create_app
from .support import REPO_ROOT, demo_server_command, free_port, running

# A fake credential that must never be logged.
TOKEN = "Bearer eyJ-super-secret-token"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def entries(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Lines logged by the server side (the test client's own httpx lines are not the server's)."""
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [e for e in lines if not e["logger"].startswith(("httpx", "httpcore"))]


def server_text(buffer: io.StringIO) -> str:
    return "\n".join(json.dumps(e) for e in entries(buffer))


def test_access_line_has_id_route_status_latency_and_no_request_data(captured: io.StringIO) -> None:
    client = TestClient(create_app())
    response = client.get(
        "/fhir/Patient/pat-4711?name=Jane&birthdate=1970-01-01", headers={"Authorization": TOKEN}
    )
    assert response.status_code == 200
    request_id = response.headers["X-Request-ID"]
    assert len(request_id) == 32

    logged = entries(captured)
    access = [e for e in logged if e["logger"] == "fhir_gateway.access"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == request_id
    assert line["route"] == "/fhir/Patient/{patient_id}"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    # The endpoint's own log line is correlated with the same id.
    (endpoint_line,) = [e for e in logged if e["logger"] == "demo"]
    assert endpoint_line["request_id"] == request_id
    assert endpoint_line["resource_type"] == "Patient"
    text = server_text(captured)
    for secret in ("pat-4711", "Jane", "1970-01-01", "super-secret"):
        assert secret not in text


def test_valid_incoming_request_id_is_kept_and_invalid_one_replaced(captured: io.StringIO) -> None:
    client = TestClient(create_app())
    kept = client.get("/fhir/Patient/1", headers={"X-Request-ID": "ehr-trace.42:abc"})
    assert kept.headers["X-Request-ID"] == "ehr-trace.42:abc"
    assert kept.json()["request_id"] == "ehr-trace.42:abc"
    for bad in ('"quoted" <value>', "x" * 200):
        replaced = client.get("/fhir/Patient/1", headers={"X-Request-ID": bad})
        assert replaced.headers["X-Request-ID"] != bad
        assert len(replaced.headers["X-Request-ID"]) == 32
    assert "<value>" not in server_text(captured)


def test_sensitive_extra_fields_are_dropped() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "event", None, None)
    record.__dict__.update(
        {"authorization": TOKEN, "query_string": "name=Jane", "request_body": "{}", "count": 3}
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["count"] == 3
    assert not {"authorization", "query_string", "request_body"} & set(line)


def test_unhandled_error_is_logged_with_id_and_type_but_not_its_message(
    captured: io.StringIO,
) -> None:
    client = TestClient(create_app(), raise_server_exceptions=False)
    assert client.get("/fhir/Patient/MRN-5550123/boom").status_code == 500
    logged = entries(captured)
    (error,) = [e for e in logged if e.get("error_type")]
    assert error["logger"] == "fhir_gateway.error"
    assert error["error_type"] == "RuntimeError"
    assert error["route"] == "/fhir/Patient/{patient_id}/boom"
    assert "in boom" in error["error_stack"]
    (access,) = [e for e in logged if e["logger"] == "fhir_gateway.access"]
    assert access["status"] == 500 and access["request_id"] == error["request_id"]
    assert "MRN-5550123" not in server_text(captured)


def test_uvicorn_with_our_log_config_writes_only_json_without_request_data(tmp_path: Path) -> None:
    config = tmp_path / "log.json"
    config.write_text(json.dumps(uvicorn_log_config("INFO")))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [c for c in demo_server_command(port) if c != "--no-access-log"]
    command += ["--log-config", str(config)]
    log = tmp_path / "server.log"
    with running(command, f"{base}/health", log=log):
        response = httpx.get(
            f"{base}/fhir/Patient/pat-4711?name=Jane", headers={"Authorization": TOKEN}
        )
        assert response.status_code == 200
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert any(e["logger"] == "fhir_gateway.access" and e["status"] == 200 for e in lines)
    assert any(e["logger"].startswith("uvicorn") for e in lines)
    text = log.read_text()
    assert "pat-4711" not in text and "Jane" not in text and "super-secret" not in text


def test_configure_logging_writes_json_lines_and_silences_the_raw_access_log() -> None:
    script = (
        "import logging\n"
        "from fhir_gateway.observability.logging import configure_logging\n"
        "configure_logging('INFO')\n"
        "logging.getLogger('fhir_gateway.cli').info('started', extra={'workers': 2})\n"
        "logging.getLogger('uvicorn.access').info('GET /fhir/Patient?name=Jane 200')\n"
        "logging.getLogger('httpx').info('HTTP Request: GET https://ehr/fhir/Patient?name=Jane')\n"
        "logging.getLogger('fhir_gateway.cli').debug('not at INFO')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["logger"], e["message"], e.get("workers")) for e in lines] == [
        ("fhir_gateway.cli", "started", 2)
    ]
    assert "Jane" not in result.stdout + result.stderr
