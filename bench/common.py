"""Helpers the benchmarks share: the shared data, real server processes, memory, Synthea copies.

Benchmarks measure the server the way users run it: ``fhir-gateway serve`` in its own process on a
loopback port, over HTTP, with the clients in the benchmark process. These helpers start and stop
such processes (and the peer servers we compare against), sample their memory, and turn the
Synthea Bundles into fresh copies so the same data can be posted many times.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FHIR_GATEWAY_SHARED_DATA", REPO.parent / "shared" / "data"))
BENCH_KEY = "bench-key-dkfz-0123456789"
BENCH_TENANT = "dkfz"
FHIR_JSON = "application/fhir+json"


def synthea_paths(data: Path = SHARED_DATA) -> list[Path]:
    """The Synthea transaction Bundles, or an empty list when the shared data is absent."""
    folder = data / "synthea-r4"
    return sorted(folder.glob("*.json.gz")) if folder.is_dir() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- fresh Synthea copies

_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class BundleTemplate:
    """A Synthea Bundle split at every UUID, so a fresh copy costs one ``join``.

    Synthea writes every fullUrl, reference, resource id and the Patient's record identifiers as
    UUIDs. A copy replaces the first eight hex digits of each with the copy's number: the copy's
    fullUrls, references and identifiers are then new and consistent among themselves, and
    building one takes microseconds instead of a JSON round trip in the client (which shares the
    machine's two cores with the server under test).
    """

    name: str
    resources: int
    parts: tuple[bytes, ...]  # text between UUIDs
    tails: tuple[bytes, ...]  # each UUID without its first eight hex digits

    @classmethod
    def from_path(cls, path: Path) -> BundleTemplate:
        raw = gzip.decompress(path.read_bytes())
        parts: list[bytes] = []
        tails: list[bytes] = []
        last = 0
        for m in _UUID.finditer(raw):
            parts.append(raw[last : m.start()])
            tails.append(m.group()[8:])
            last = m.end()
        parts.append(raw[last:])
        return cls(path.name, raw.count(b'"request"'), tuple(parts), tuple(tails))

    def copy(self, number: int) -> bytes:
        head = b"%08x" % (number & 0xFFFFFFFF)
        out: list[bytes] = []
        for part, tail in zip(self.parts, self.tails, strict=False):
            out.append(part)
            out.append(head + tail)
        out.append(self.parts[-1])
        return b"".join(out)


def load_templates(paths: Sequence[Path]) -> list[BundleTemplate]:
    return [BundleTemplate.from_path(p) for p in paths]


def plan_copies(templates: Sequence[BundleTemplate], resources: int) -> list[tuple[int, int]]:
    """(template index, copy number) pairs, in order, until ``resources`` resources are reached.

    Copy numbers start at 1 so no copy reuses the original UUIDs.
    """
    plan: list[tuple[int, int]] = []
    total = 0
    number = 1
    while total < resources:
        for i, t in enumerate(templates):
            if total >= resources:
                break
            plan.append((i, number))
            total += t.resources
            number += 1
    return plan


# ------------------------------------------------------------------------------- memory (RSS)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                out.extend(int(c) for c in text.split())
    return out


def process_tree(pid: int) -> list[int]:
    seen = [pid]
    i = 0
    while i < len(seen):
        seen.extend(c for c in _children(seen[i]) if c not in seen)
        i += 1
    return seen


def rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def command_of(pid: int) -> str:
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace")
    return ""


@dataclass
class MemorySampler:
    """Samples the RSS of a process tree in a thread: the sum over the Python processes.

    PostgreSQL's processes are left out on purpose: their RSS counts shared buffers once per
    backend, which says nothing about whether the server leaks.
    """

    pid: int
    interval: float = 0.25
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def current(self) -> int:
        return sum(
            rss_bytes(p) for p in process_tree(self.pid) if "postgres" not in command_of(p)[:200]
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.current()))
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def peak(self) -> int:
        return max((s for _, s in self.samples), default=0)

    def profile(self, points: int = 5) -> list[int]:
        """RSS at evenly spaced moments of the run, to show whether it stays flat."""
        if not self.samples:
            return []
        step = max(1, (len(self.samples) - 1) // max(1, points - 1))
        picked = [s for _, s in self.samples[::step]]
        if (len(self.samples) - 1) % step:
            picked.append(self.samples[-1][1])
        return picked


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time the live processes ``pids`` have used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (e.g. a server's own data directory)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and text in command_of(int(entry)):
            found.append(int(entry))
    return found


@dataclass
class CpuMeter:
    """CPU seconds used by a server's Python processes and its PostgreSQL between two points.

    On a shared machine wall-clock rates depend on everyone else's load; CPU time per resource
    does not, and it says what the two cores could do for this server alone.
    """

    pid: int
    pg_marker: str | None = None
    python: float = 0.0
    postgres: float = 0.0
    # CPU seconds of each server process over the run, largest first: with several workers it
    # shows whether the clients' connections landed on all of them.
    per_process: list[float] = field(default_factory=list)
    _start: dict[int, float] = field(default_factory=dict)

    def _server(self) -> list[int]:
        return [p for p in process_tree(self.pid) if "postgres" not in command_of(p)[:200]]

    def _read(self) -> tuple[float, float]:
        tree = self._server()
        pg: list[int] = []
        if self.pg_marker:
            for root in processes_mentioning(self.pg_marker):
                if "postgres" in command_of(root)[:200]:
                    pg.extend(p for p in process_tree(root) if p not in pg)
        return cpu_seconds(tree), cpu_seconds(pg)

    def _each(self) -> dict[int, float]:
        return {p: cpu_seconds([p]) for p in self._server()}

    def __enter__(self) -> CpuMeter:
        self.python, self.postgres = self._read()
        self._start = self._each()
        return self

    def __exit__(self, *exc: object) -> None:
        python, postgres = self._read()
        self.python = python - self.python
        self.postgres = postgres - self.postgres
        spent = [c - self._start.get(p, 0.0) for p, c in self._each().items()]
        self.per_process = sorted((c for c in spent if c > 0), reverse=True)


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


# ----------------------------------------------------------------------------- server processes


@dataclass
class ServerProcess:
    """A server in its own process group, stopped with SIGTERM then SIGKILL after a grace."""

    name: str
    proc: subprocess.Popen[bytes]
    base: str
    log: Path
    pg_marker: str | None = None  # text in its PostgreSQL's command line (the data directory)

    def stop(self, grace: float = 30.0) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    base: str,
    ready_path: str,
    log_dir: Path,
    timeout: float = 120.0,
    headers: Mapping[str, str] | None = None,
) -> ServerProcess:
    """Start ``argv`` and wait until ``base + ready_path`` answers 200 (or fail with its log)."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = ServerProcess(name, proc, base, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(base + ready_path, headers=dict(headers or {}), timeout=2)
            if answer.status_code == 200:
                return server
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"{name} did not become ready in {timeout:.0f} s:\n{server.tail()}")


def base_env() -> dict[str, str]:
    """The environment without any of our settings that would redirect the server under test."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FHIR_GATEWAY_")}


@contextlib.contextmanager
def gateway_server(
    workers: int = 1, *, extra_env: Mapping[str, str] | None = None, timeout: float = 180.0
) -> Iterator[ServerProcess]:
    """``fhir-gateway serve`` on a fresh embedded PostgreSQL in a temporary data directory."""
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        work = Path(tmp)
        port = free_port()
        env = base_env()
        env.update(
            {
                "FHIR_GATEWAY_API_KEYS": f"{BENCH_TENANT}:{BENCH_KEY}",
                "FHIR_GATEWAY_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(REPO),
            }
        )
        if workers > 1:
            # As a multi-worker deployment runs: one /metrics aggregated over the workers.
            env["PROMETHEUS_MULTIPROC_DIR"] = str(work / "metrics")
            (work / "metrics").mkdir()
        env.update(extra_env or {})
        argv = [
            sys.executable,
            "-m",
            "fhir_gateway",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(work / "data"),
            "--workers",
            str(workers),
        ]
        server = start_process(
            "fhir-gateway",
            argv,
            env=env,
            cwd=REPO,
            base=f"http://127.0.0.1:{port}/fhir",
            ready_path="/metadata",
            log_dir=work,
            timeout=timeout,
        )
        server.pg_marker = str(work / "data")
        try:
            yield server
        finally:
            server.stop()
            stop_postgres(server.pg_marker)


def stop_postgres(marker: str, grace: float = 15.0) -> None:
    """Fast-shut-down a PostgreSQL left running under ``marker`` (the server stops it normally).

    The embedded PostgreSQL runs in its own session, outside the server's process group, so a
    server killed after its grace period would leave it behind with its data directory gone.
    """
    postmasters = [p for p in processes_mentioning(marker) if "postgres -D" in command_of(p)]
    for pid in postmasters:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while postmasters and time.monotonic() < deadline:
        postmasters = [p for p in postmasters if Path(f"/proc/{p}").exists()]
        time.sleep(0.2)


def gateway_headers() -> dict[str, str]:
    return {"X-API-Key": BENCH_KEY, "Content-Type": FHIR_JSON, "Accept": FHIR_JSON}


# ------------------------------------------------------------------------------------ machine


def machine() -> dict[str, str]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "ram": mem,
        "python": platform.python_version(),
    }


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ------------------------------------------------------------------------------ light HTTP client


class RawConnection:
    """A keep-alive HTTP/1.1 connection on asyncio streams, for latency benchmarks.

    A full-featured client costs a few hundred microseconds of CPU per request on the same two
    cores the server uses; this one writes the request and reads a Content-Length body, nothing
    more, so the figures measure the server.
    """

    def __init__(self, host: str, port: int, headers: Mapping[str, str]) -> None:
        self.host = host
        self.port = port
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.fixed}"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = None
