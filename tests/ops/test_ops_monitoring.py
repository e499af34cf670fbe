"""Alert rules and the Grafana dashboard refer only to metrics the app exports, and Prometheus
itself loads the rules and scrapes a running server."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from fhir_gateway.observability import metrics

from .demo_app import create_app
from .promql import metric_names
from .support import MONITORING_DIR, demo_server_command, free_port, running

RULES = MONITORING_DIR / "alert-rules.yaml"
RULE_TESTS = MONITORING_DIR / "alert-rules.test.yaml"
DASHBOARD = MONITORING_DIR / "grafana-dashboard.json"
# Registered by cds_services.metrics (the CDS package), counters by contract.
CDS_COUNTERS = ("fhir_gateway_cds_cards_total", "fhir_gateway_cds_feedback_total")
REQUIRED_ALERTS = {
    "FhirGatewayDown",
    "FhirGatewayHighErrorRate",
    "FhirGatewayReadmissionRiskSlow",
    "FhirGatewayCdsServiceSlow",
    "FhirGatewayDatabaseDown",
    "FhirGatewayModelNotLoaded",
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`, see .ci/ops-setup)")
    return found


def exported_sample_names() -> set[str]:
    """Every sample name a scrape of our app can contain, from a real scrape after use."""
    client = TestClient(create_app())
    client.get("/fhir/Patient/1")
    client.get("/fhir/Patient/9/$readmission-risk")
    client.get("/ready")
    metrics.count_bundle_entries("batch", 1)
    metrics.count_transaction_rollback()
    names = {
        sample.name
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
    }
    names |= set(CDS_COUNTERS)
    names.add("up")  # written by Prometheus for every target
    return names


def rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_metric_name_extraction() -> None:
    expression = (
        "histogram_quantile(0.95, sum by (job, le) (rate(http_request_duration_seconds_bucket"
        '{job="fhir-gateway", handler=~".+/[$]x"}[5m]))) > 0.05 unless on (instance) up == 0'
    )
    assert metric_names(expression) == {"http_request_duration_seconds_bucket", "up"}


def test_required_alerts_exist() -> None:
    assert set(rule_expressions()) >= REQUIRED_ALERTS


def test_rules_and_dashboard_use_only_exported_metrics() -> None:
    exported = exported_sample_names()
    for name, expression in rule_expressions().items():
        assert metric_names(expression) <= exported, name
    used = set()
    for expression in dashboard_expressions():
        names = metric_names(expression)
        assert names, expression
        assert names <= exported, expression
        used |= names
    # The dashboard shows every domain metric we define.
    for name in metrics.EXPORTED_METRIC_NAMES:
        assert any(u == name or u.startswith(name + "_") for u in used), name


def test_dashboard_structure() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all(
            t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]
        )


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_as_the_rule_unit_tests_expect() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=MONITORING_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=5)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def eventually(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.25)


@pytest.mark.slow
def test_prometheus_scrapes_the_server_and_loads_the_rules(tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (Debian package `prometheus`, see .ci/ops-setup)")
    app_port, prom_port = free_port(), free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "fhir-gateway",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}],
            }
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    prometheus = f"http://127.0.0.1:{prom_port}"
    prometheus_command = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]
    app = f"http://127.0.0.1:{app_port}"
    with (
        running(demo_server_command(app_port), f"{app}/health"),
        running(prometheus_command, f"{prometheus}/-/ready", log=tmp_path / "prometheus.log"),
    ):
        for patient in ("1", "2", "3"):
            httpx.get(f"{app}/fhir/Patient/{patient}").raise_for_status()
        httpx.get(f"{app}/fhir/Patient/9/$readmission-risk").raise_for_status()

        (up,) = eventually(lambda: query(prometheus, 'up{job="fhir-gateway"} == 1'))
        assert up["metric"]["instance"] == f"127.0.0.1:{app_port}"
        requests = eventually(
            lambda: query(
                prometheus, 'http_requests_total{handler="/fhir/Patient/{patient_id}"} >= 3'
            )
        )
        assert requests[0]["metric"]["status"] == "200"
        assert eventually(lambda: query(prometheus, 'fhir_gateway_predictions_total{band="high"}'))
        assert eventually(lambda: query(prometheus, "fhir_gateway_model_info == 1"))

        def rules() -> dict[str, dict[str, Any]]:
            groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
            return {r["name"]: r for g in groups for r in g["rules"]}

        loaded = eventually(
            lambda: all(r.get("health") == "ok" for r in rules().values()) and rules()
        )
        assert set(loaded) == set(rule_expressions())
        # A healthy server with a model fires nothing (FhirGatewayAbsent may be pending until the
        # first scrape lands, then clears).
        assert eventually(lambda: all(r["state"] == "inactive" for r in rules().values()))
