"""``serve --workers N``: each worker accepts on a listening socket of its own.

With one shared socket, connections opened together all went to the worker that woke first
(BENCHMARKS.md); with ``SO_REUSEPORT`` the kernel spreads them. The checks read the kernel's own
socket tables (``/proc/net/tcp``) and the workers' file descriptors.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists() or not hasattr(socket, "SO_REUSEPORT"),
    reason="needs Linux (/proc/net/tcp, SO_REUSEPORT)",
)


def _serve(port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_GATEWAY_")}
    env.update({"PYTHONPATH": str(REPO), "FHIR_GATEWAY_API_KEYS": "dkfz:workers-test-key"})
    argv = [sys.executable, "-m", "fhir_gateway", "serve", "--port", str(port)]
    argv += ["--data-dir", str(data_dir), "--workers", "2"]
    return subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("the server did not become ready")


def _sockets(port: int, state: str) -> set[int]:
    """Inodes of the IPv4 TCP sockets on local ``port`` in ``state`` (0A listen, 01 established)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            found.add(int(fields[9]))
    return found


def _workers(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(c) for c in children if b"spawn" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    port = free_port()
    proc = _serve(port, tmp_path_factory.mktemp("workers"))
    try:
        _wait_ready(port, proc)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_each_worker_listens_and_connections_opened_together_reach_both(
    two_workers: tuple[int, int],
) -> None:
    port, parent = two_workers
    workers = _workers(parent)
    assert len(workers) == 2
    listening = _sockets(port, "0A")
    assert len(listening) == 2
    assert all(len(_socket_inodes(w) & listening) == 1 for w in workers)

    clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}") for _ in range(16)]
    try:
        for client in clients:  # sixteen keep-alive connections, opened one after another
            assert client.get("/fhir/metadata").status_code == 200
        established = _sockets(port, "01")
        held = [len(_socket_inodes(w) & established) for w in workers]
        # A shared socket gave them all to one worker; hashing leaves both some (a split of
        # 16:0 has a chance of 1 in 32,768).
        assert sum(held) == 16 and min(held) >= 1, held
    finally:
        for client in clients:
            client.close()


def test_a_second_server_on_the_same_port_refuses_to_start(
    two_workers: tuple[int, int], tmp_path: Path
) -> None:
    port, _ = two_workers
    other = _serve(port, tmp_path)
    assert other.wait(timeout=120) == 1
    assert other.stderr is not None
    assert "another server already listens" in other.stderr.read().decode()


def test_a_port_taken_by_another_program_is_refused(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        proc = _serve(port, tmp_path)
        assert proc.wait(timeout=120) == 1
        assert proc.stderr is not None
        assert "Cannot listen on" in proc.stderr.read().decode()
