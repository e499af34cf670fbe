"""The Compose stack and .env.example: wired as documented, pinned, and free of real secrets."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fhir_gateway.settings import Settings

from .support import DOCKER_DIR, REPO_ROOT

COMPOSE = DOCKER_DIR / "compose.yaml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def documented() -> dict[str, str]:
    """Settings in .env.example, commented-out ones included (they show the default)."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_stack_has_database_migration_server_prometheus_and_grafana() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "migrate", "server", "prometheus", "grafana"}
    postgres = services["postgres"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    server = services["server"]
    assert server["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert server["image"] == services["migrate"]["image"]
    assert server["read_only"] is True and "/tmp" in server["tmpfs"]
    assert "FHIR_GATEWAY_WORKERS" in server["environment"]
    for name in ("server", "migrate"):
        url = services[name]["environment"]["FHIR_GATEWAY_DATABASE_URL"]
        assert (
            url.startswith("postgresql://fhir:${POSTGRES_PASSWORD") and "@postgres:5432/fhir" in url
        )


def test_prometheus_and_grafana_load_the_shared_monitoring_files() -> None:
    services = compose()["services"]
    mounts = {
        volume.split(":")[0]: volume.split(":")[1]
        for name in ("prometheus", "grafana")
        for volume in services[name]["volumes"]
        if volume.startswith(".")
    }
    for source in mounts:
        assert (DOCKER_DIR / source).exists(), source
    assert mounts["../k8s/monitoring/alert-rules.yaml"].startswith("/etc/prometheus/rules/")
    assert mounts["../k8s/monitoring/grafana-dashboard.json"].startswith(
        "/var/lib/grafana/dashboards/"
    )
    prometheus = yaml.safe_load((DOCKER_DIR / "prometheus" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    # The alert rules select job="fhir-gateway".
    assert job["job_name"] == "fhir-gateway"
    assert job["static_configs"][0]["targets"] == ["server:8080"]
    assert prometheus["rule_files"] == ["/etc/prometheus/rules/*.yaml"]
    provisioning = DOCKER_DIR / "grafana" / "provisioning"
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "fhir-gateway.yaml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_images_are_pinned() -> None:
    for name, service in compose()["services"].items():
        image = service["image"]
        if image.startswith("fhir-gateway:"):
            continue
        assert re.fullmatch(r"[\w./-]+:[\w.-]*\d[\w.-]*", image), f"{name}: {image}"
        assert not image.endswith(":latest")


def test_every_compose_variable_is_documented_and_secrets_are_required() -> None:
    text = COMPOSE.read_text()
    used = set(VARIABLE.findall(text))
    assert used <= set(documented()), used - set(documented())
    for secret in ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        # No default: Compose refuses to start without it.
        assert re.search(rf"\$\{{{secret}:\?", text), secret
    for name, service in compose()["services"].items():
        for key, value in service.get("environment", {}).items():
            if "PASSWORD" in key:
                assert str(value).startswith("${"), f"{name}: literal {key}"


def test_env_example_documents_every_setting_without_real_secrets() -> None:
    names = documented()
    for field in Settings.model_fields:
        assert f"FHIR_GATEWAY_{field.upper()}" in names, field
    try:
        from cds_services.config import CdsSettings  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        for field in CdsSettings.model_fields:
            assert f"FHIR_GATEWAY_{field.upper()}" in names, field
    assert "FHIR_GATEWAY_WORKERS" in names and "PROMETHEUS_MULTIPROC_DIR" in names
    for name, value in names.items():
        if re.search(r"PASSWORD|KEYS?$|SECRET|TOKEN", name):
            assert "REPLACE_ME" in value, f"{name} must hold a placeholder"


def test_env_example_lines_are_comments_or_assignments() -> None:
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        assert (
            not line.strip() or line.startswith("#") or re.fullmatch(r"[A-Z][A-Z0-9_]*=\S*", line)
        ), number


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`, see .ci/ops-setup)")
    result = subprocess.run(
        [
            promtool,
            "check",
            "config",
            "--syntax-only",
            str(DOCKER_DIR / "prometheus" / "prometheus.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip("the docker CLI here has no compose plugin")
    result = subprocess.run(
        [
            docker,
            "compose",
            "--env-file",
            str(ENV_EXAMPLE),
            "-f",
            str(COMPOSE),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
