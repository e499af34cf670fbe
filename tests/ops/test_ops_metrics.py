"""HTTP and domain metrics as a scraper sees them, in one process and across uvicorn workers."""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from fhir_gateway.observability import metrics

from .demo_app import MODEL_SHA256, MODEL_VERSION, create_app
from .support import demo_server_command, free_port, running

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_http_metrics_use_route_templates_not_raw_paths() -> None:
    client = TestClient(create_app())
    before = scrape(client.get("/metrics").text)
    for patient_id in ("abc123", "xyz789", "abc123"):
        assert client.get(f"/fhir/Patient/{patient_id}?name=Jane").status_code == 200
    assert client.get("/no/such/thing/4711").status_code == 404
    client.get("/health")
    client.get("/ready")
    after = scrape(client.get("/metrics").text)

    template = "/fhir/Patient/{patient_id}"
    key = {"handler": template, "method": "GET", "status": "200"}
    assert (
        value(after, "http_requests_total", **key) - value(before, "http_requests_total", **key)
        == 3
    )
    assert value(after, "http_requests_total", handler="none", method="GET", status="404") >= 1
    labels_seen = {v for (_, labels) in after for (_, v) in labels}
    assert not any("abc123" in v or "4711" in v or "Jane" in v for v in labels_seen)
    handlers = {dict(labels).get("handler") for (name, labels) in after}
    assert not handlers & {"/health", "/ready", "/metrics"}
    # Latency buckets fine enough to see the 50 ms operation budget.
    assert (
        "http_request_duration_seconds_bucket",
        (("handler", template), ("le", "0.05"), ("method", "GET")),
    ) in after


def test_domain_metrics_are_exported_under_the_contract_names() -> None:
    client = TestClient(create_app())
    before = scrape(client.get("/metrics").text)
    metrics.record_prediction("high", "t-1", 0.002)
    metrics.record_prediction("high", "t-1", 0.003)
    metrics.count_prediction("low", "t-1")
    metrics.count_bundle_entries("transaction", 7)
    metrics.count_transaction_rollback()
    metrics.set_db_pool_in_use(3)
    metrics.set_dependency_up("database", False)
    metrics.set_model_info("t-0", "a" * 64)
    metrics.set_model_info("t-1", "b" * 64)
    after = scrape(client.get("/metrics").text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("fhir_gateway_predictions_total", band="high", model_version="t-1") == 2
    assert delta("fhir_gateway_predictions_total", band="low", model_version="t-1") == 1
    assert delta("fhir_gateway_prediction_latency_seconds_count") == 2
    assert delta("fhir_gateway_bundle_entries_total", bundle_type="transaction") == 7
    assert delta("fhir_gateway_transaction_rollbacks_total") == 1
    assert value(after, "fhir_gateway_db_pool_in_use") == 3
    assert value(after, "fhir_gateway_dependency_up", dependency="database") == 0
    info = {labels: v for (name, labels), v in after.items() if name == "fhir_gateway_model_info"}
    assert info == {(("sha256", "b" * 64), ("version", "t-1")): 1.0}
    metrics.set_model_info(MODEL_VERSION, MODEL_SHA256)


def test_cds_metrics_are_left_to_the_cds_package() -> None:
    own = {
        getattr(obj, "_name", None)
        for obj in vars(metrics).values()
        if type(obj).__module__ == "prometheus_client.metrics"
    }
    assert "fhir_gateway_predictions" in own
    assert not any(name and name.startswith("fhir_gateway_cds") for name in own)


def test_prepare_multiprocess_dir_clears_files_of_a_previous_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "prom"
    directory.mkdir()
    (directory / "counter_4242.db").write_bytes(b"stale")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(directory))
    assert metrics.prepare_multiprocess_dir() == directory
    assert list(directory.iterdir()) == []
    monkeypatch.delenv(metrics.MULTIPROC_ENV)
    assert metrics.prepare_multiprocess_dir() is None


def test_workers_in_multiprocess_mode_report_one_aggregate(tmp_path: Path) -> None:
    directory = tmp_path / "prom"
    directory.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {metrics.MULTIPROC_ENV: str(directory)}
    with running(demo_server_command(port, workers=2), f"{base}/health", env=env):
        # /slow blocks a worker's event loop, so concurrent calls must be served by both workers.
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            pids = set(pool.map(lambda _: httpx.get(f"{base}/slow").json()["pid"], range(24)))
        samples = scrape(httpx.get(f"{base}/metrics").text)

    assert len(pids) == 2, "both workers should have served requests"
    assert value(samples, "http_requests_total", handler="/slow", method="GET", status="200") == 24
    info = [
        (labels, v) for (name, labels), v in samples.items() if name == "fhir_gateway_model_info"
    ]
    assert info == [((("sha256", MODEL_SHA256), ("version", MODEL_VERSION)), 1.0)]
    assert any(path.name.startswith("counter_") for path in directory.iterdir())
    assert os.environ.get(metrics.MULTIPROC_ENV) is None


def test_every_app_instrumented_in_one_process_records_requests() -> None:
    first, second = TestClient(create_app()), TestClient(create_app())
    key = {"handler": "/fhir/Patient/{patient_id}", "method": "GET", "status": "200"}
    before = value(scrape(second.get("/metrics").text), "http_requests_total", **key)
    first.get("/fhir/Patient/1")
    second.get("/fhir/Patient/2")
    after = value(scrape(first.get("/metrics").text), "http_requests_total", **key)
    assert after - before == 2
