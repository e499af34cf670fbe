"""Alert rules and the Grafana dashboard refer only to metrics the app exports, and Prometheus
itself loads the rules and scrapes a running server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from fhir_gateway.observability import metrics

from .demo_app import create_app
from .prometheus_check import check_prometheus_scrapes, prometheus_binary
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


@pytest.mark.slow
def test_prometheus_scrapes_a_running_app_and_loads_the_rules(tmp_path: Path) -> None:
    """Against the small app built from our instrumentation; the image's own server is scraped by
    ``test_ops_docker.test_image_entry_command_serves_and_is_scraped_outside_a_container``."""
    binary = prometheus_binary()
    if binary is None:
        pytest.skip("prometheus is not installed (Debian package `prometheus`, see .ci/ops-setup)")
    port = free_port()
    app = f"http://127.0.0.1:{port}"
    with running(demo_server_command(port), f"{app}/health"):
        for patient in ("1", "2", "3"):
            httpx.get(f"{app}/fhir/Patient/{patient}").raise_for_status()
        httpx.get(f"{app}/fhir/Patient/9/$readmission-risk").raise_for_status()
        check_prometheus_scrapes(
            binary,
            app,
            "/fhir/Patient/{patient_id}",
            tmp_path,
            extra_series=('fhir_gateway_predictions_total{band="high"} == 1',),
        )
