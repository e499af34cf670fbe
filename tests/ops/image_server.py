"""Run the server the way the container image does, on this host.

The image's ENTRYPOINT + CMD (``fhir-gateway serve --host 0.0.0.0 --port 8080 --data-dir ...``)
with the address, port and volume mapped to a loopback port and a temporary directory, and the
image's environment (several workers, a multiprocess metrics directory). The console script is
run from this checkout, not from an installed copy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from .dockerfile import parse
from .support import DOCKER_DIR, REPO_ROOT, free_port, wait_for_http

CLI_MODULE = REPO_ROOT / "fhir_gateway" / "cli.py"


@dataclass
class RunningServer:
    base_url: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path


def require_cli() -> None:
    if not CLI_MODULE.is_file():
        pytest.skip(
            "fhir_gateway.cli (the `fhir-gateway` console script) is not on this branch yet"
        )


def outside_container(command: list[str], port: int, data_dir: Path) -> list[str]:
    """The image's command with the container's address, port and volume mapped to this host."""
    mapped = list(command)
    replacements = {"--host": "127.0.0.1", "--port": str(port), "--data-dir": str(data_dir)}
    for flag, value in replacements.items():
        mapped[mapped.index(flag) + 1] = value
    return mapped


@contextmanager
def image_server(tmp_path: Path) -> Iterator[RunningServer]:
    """Yield a ready server; on exit send SIGTERM and leave the exit code in ``process``."""
    require_cli()
    runtime = parse(DOCKER_DIR / "Dockerfile").stages[-1]
    assert runtime.last("ENTRYPOINT").exec_form() == ["fhir-gateway"]
    port = free_port()
    # Not under tmp_path: run as root, the embedded PostgreSQL drops to a `postgres` user, and
    # pytest keeps its base temp directory private (0700) to its own user.
    data_dir = Path(tempfile.mkdtemp(prefix="fhir-gateway-ops-"))
    arguments = outside_container(runtime.last("CMD").exec_form(), port, data_dir / "data")
    command = [
        sys.executable,
        "-c",
        "import sys; from fhir_gateway.cli import main; sys.exit(main())",
    ]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FHIR_GATEWAY_")},
        "PYTHONPATH": str(REPO_ROOT),
        "FHIR_GATEWAY_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command + arguments, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_for_http(f"{base_url}/health", timeout=90, process=process)
                wait_for_http(f"{base_url}/ready", timeout=90, process=process)
            except (RuntimeError, TimeoutError) as exc:
                raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from exc
            yield RunningServer(base_url, port, env, process, log)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
            finally:
                shutil.rmtree(data_dir, ignore_errors=True)
