"""Start a real Prometheus against a running server and check what arrives."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from .support import MONITORING_DIR, free_port, running

RULES = MONITORING_DIR / "alert-rules.yaml"
T = TypeVar("T")


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=5)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def eventually(check: Callable[[], T], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.25)


def check_prometheus_scrapes(
    binary: str, app_url: str, handler: str, tmp_path: Path, extra_series: tuple[str, ...] = ()
) -> None:
    """Prometheus scrapes ``app_url`` as job fhir-gateway, sees ``handler`` traffic (at least 3
    requests answered 200), the loaded model and ``extra_series``; loads every alert rule and,
    with the server healthy, has none pending or firing."""
    target = app_url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "fhir-gateway",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    prometheus = f"http://127.0.0.1:{free_port()}"
    command = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address={prometheus.removeprefix('http://')}",
    ]
    with running(command, f"{prometheus}/-/ready", log=tmp_path / "prometheus.log"):
        (up,) = eventually(lambda: query(prometheus, 'up{job="fhir-gateway"} == 1'))
        assert up["metric"]["instance"] == target
        requests = eventually(
            lambda: query(prometheus, f'http_requests_total{{handler="{handler}"}} >= 3')
        )
        assert requests[0]["metric"]["status"] == "200"
        assert eventually(lambda: query(prometheus, "fhir_gateway_model_info == 1"))
        for series in extra_series:
            assert eventually(partial(query, prometheus, series)), series

        def rules() -> dict[str, dict[str, Any]]:
            groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
            return {r["name"]: r for g in groups for r in g["rules"]}

        loaded = eventually(
            lambda: all(r.get("health") == "ok" for r in rules().values()) and rules()
        )
        expected = {
            rule["alert"]
            for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]
        }
        assert set(loaded) == expected
        # FhirGatewayAbsent may be pending until the first scrape lands, then clears.
        assert eventually(lambda: all(r["state"] == "inactive" for r in rules().values()))
