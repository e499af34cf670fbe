"""The README's commands work as written: the serve command starts the server (embedded
PostgreSQL, first-start keys, demo cohort) and every curl example answers successfully."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, free_port

README = (REPO / "README.md").read_text()


def block(marker: str) -> str:
    m = re.search(rf"<!-- {marker} -->\s*```sh\n(.*?)```\s*<!-- /{marker} -->", README, re.S)
    assert m, f"README has no {marker} block"
    return m.group(1)


def test_readme_has_exactly_the_two_commands() -> None:
    serve = block("serve-command").strip().splitlines()
    test = block("test-command").strip().splitlines()
    assert len(serve) == 1 and len(test) == 1
    assert "fhir-gateway serve" in serve[0] and "pytest" in test[0]


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    serve_line = block("serve-command").strip()
    # the install steps already ran when this suite was set up
    serve_cmd = serve_line.split("&&")[-1].strip()
    port = free_port()
    data_dir = tmp_path_factory.mktemp("readme-data")
    cmd = serve_cmd.replace(".venv/bin/fhir-gateway", f"{sys.executable} -m fhir_gateway")
    cmd = cmd.replace("--port 8080", f"--port {port}")
    cmd = cmd.replace("--data-dir .data", f"--data-dir {data_dir}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_GATEWAY_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen(
        cmd,
        shell=True,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    key = None
    lines: list[str] = []
    deadline = time.time() + 180
    assert proc.stdout is not None
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.match(r"\s+dkfz: (\S+)", line)
        if m:
            key = m.group(1)
        if "FHIR base:" in line:
            break
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    assert key, "the server did not print a first-start key:\n" + "".join(lines)
    yield port, key
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def curl_commands() -> list[str]:
    text = block("examples")
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_every_curl_example_answers(readme_server: tuple[int, str]) -> None:
    port, key = readme_server
    commands = curl_commands()
    assert len(commands) >= 5
    env = dict(os.environ, KEY=key)
    for command in commands:
        cmd = command.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        cmd = cmd.replace("curl -s", "curl -s -o /dev/stderr -w '%{http_code}'", 1)
        out = subprocess.run(cmd, shell=True, env=env, capture_output=True, text=True, timeout=60)
        status = out.stdout.strip()[-3:]
        assert status.startswith("2"), f"{command}\n-> {status}\n{out.stderr[:500]}"


def test_demo_patients_are_there(readme_server: tuple[int, str]) -> None:
    port, key = readme_server
    r = httpx.get(
        f"http://127.0.0.1:{port}/fhir/Patient",
        params={"identifier": "urn:fhir-gateway:demo|"},
        headers={"X-API-Key": key},
    )
    assert r.status_code == 200
    assert r.json().get("entry"), "the demo cohort is not loaded"


def test_serve_stops_cleanly(tmp_path: Path) -> None:
    """SIGTERM lets in-flight work finish and stops the embedded PostgreSQL with the server."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_GATEWAY_")}
    env["PYTHONPATH"] = str(REPO)
    env["FHIR_GATEWAY_API_KEYS"] = "dkfz:k1"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fhir_gateway",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    # a large transaction in flight when the signal arrives must still complete
    import threading
    import uuid

    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {"resourceType": "Patient", "name": [{"family": f"P{i}"}]},
                "request": {"method": "POST", "url": "Patient"},
            }
            for i in range(4000)
        ],
    }
    result: dict[str, int] = {}

    def post() -> None:
        r = httpx.post(
            f"http://127.0.0.1:{port}/fhir", json=bundle, headers={"X-API-Key": "k1"}, timeout=120
        )
        result["status"] = r.status_code

    sender = threading.Thread(target=post)
    sender.start()
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    sender.join(timeout=120)
    assert result.get("status") == 200
    assert proc.wait(timeout=60) == 0
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()


def test_deploy_commands_name_real_files() -> None:
    """The Deploy section's commands cannot run without Docker or a cluster; what they name can
    be checked: the env template and compose file exist, and the overlay renders."""
    from tests.ops.kustomize_lite import render

    section = README.split("## Deploy", 1)[1].split("## Development", 1)[0]
    commands = re.search(r"```sh\n(.*?)```", section, re.S)
    assert commands
    text = commands.group(1)
    for path in re.findall(r"(?:-f|cp) (\S+\.(?:yaml|example))", text):
        assert (REPO / path).exists(), path
    for overlay in re.findall(r"apply -k (\S+)", text):
        kinds = {doc["kind"] for doc in render(REPO / overlay)}
        assert {"Deployment", "Service", "Ingress"} <= kinds
