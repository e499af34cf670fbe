"""Ingest throughput over HTTP: Synthea transaction Bundles into our server and into sekmet-fhir.

Both servers run as real processes on loopback ports and get the same Bundles, each copy with
fresh urn:uuid fullUrls, references and identifiers, posted by a few concurrent clients:

* ``fhir-gateway serve`` on a fresh embedded PostgreSQL (a temporary ``--data-dir``), every
  feature on (validation, search indexing, discharge scoring, metrics);
* sekmet-fhir (PyPI; FastAPI + fhir.resources + SQLite), installed by this script into its own
  virtualenv under the user's cache folder, started with ``sekmet serve`` on a temporary SQLite
  file.

Prints resources/second, the servers' peak RSS (and RSS over the run, which must stay flat), and
the ratio. Skips when the shared data is absent.

    PYTHONPATH=. python bench/ingest.py [--resources 100000] [--clients 4] [--workers 1]
        [--sekmet-resources 10000] [--skip-sekmet] [--time-limit 1200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import (
    FHIR_JSON,
    SHARED_DATA,
    BundleTemplate,
    CpuMeter,
    MemorySampler,
    ServerProcess,
    base_env,
    free_port,
    gateway_headers,
    gateway_server,
    load_average,
    load_templates,
    machine,
    mib,
    plan_copies,
    start_process,
    synthea_paths,
)

SEKMET_VERSION = "0.1.1"


@dataclass
class Result:
    name: str
    resources: int
    bundles: int
    seconds: float
    failures: int
    peak_rss: int
    rss_profile: list[int]
    cpu_python: float = 0.0
    cpu_postgres: float = 0.0
    cpu_client: float = 0.0
    load: str = ""
    cpu_each: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.resources / self.seconds if self.seconds else 0.0

    def report(self) -> str:
        profile = " → ".join(mib(x) for x in self.rss_profile)
        return (
            f"{self.name}: {self.resources:,} resources in {self.bundles} Bundles, "
            f"{self.seconds:.1f} s = {self.rate:,.0f} resources/s; failures: {self.failures}\n"
            f"  server RSS peak {mib(self.peak_rss)}; over the run: {profile}\n"
            f"  CPU per resource: server processes {self.cpu_us(self.cpu_python):.0f} µs"
            f"{self.split()}, "
            f"PostgreSQL {self.cpu_us(self.cpu_postgres):.0f} µs, total {self.cpu_total:.0f} µs "
            f"(this script's own clients: {self.cpu_us(self.cpu_client):.0f} µs); "
            f"load average at the end: {self.load}"
        )

    def split(self) -> str:
        """The busiest server processes' shares (" = 152 + 8" for two workers)."""
        if len(self.cpu_each) < 2:
            return ""
        shown = [f"{self.cpu_us(c):.0f}" for c in self.cpu_each[:4]]
        return " = " + " + ".join(shown) + (" + ..." if len(self.cpu_each) > 4 else "")

    @property
    def cpu_total(self) -> float:
        """CPU per resource over all the server's processes: unlike a wall-clock rate, it does
        not depend on what else the machine is running."""
        return self.cpu_us(self.cpu_python + self.cpu_postgres)

    def cpu_us(self, seconds: float) -> float:
        return 1e6 * seconds / self.resources if self.resources else 0.0


async def post_all(
    base: str,
    headers: dict[str, str],
    templates: Sequence[BundleTemplate],
    plan: Sequence[tuple[int, int]],
    clients: int,
    deadline: float,
    label: str,
) -> tuple[int, int, int]:
    """POST the copies over ``clients`` connections; returns (resources, bundles, failures)."""
    queue = list(reversed(plan))
    created = bundles = failures = 0
    step = max(1, len(plan) // 10)
    started = time.monotonic()

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal created, bundles, failures
        while queue and time.monotonic() < deadline:
            index, number = queue.pop()
            template = templates[index]
            response = await http.post(base, content=template.copy(number))
            if response.status_code != 200:
                failures += 1
                if failures <= 3:
                    print(f"  {label}: HTTP {response.status_code}: {response.text[:300]}")
                continue
            ok = response.content.count(b'"201 Created"')
            if ok != template.resources:
                failures += 1
            created += ok
            bundles += 1
            if bundles % step == 0:
                rate = created / (time.monotonic() - started)
                print(f"  {label}: {created:,} resources, {rate:,.0f}/s", flush=True)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    timeout = httpx.Timeout(600.0, connect=10.0)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=timeout) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return created, bundles, failures


def measure(
    name: str,
    server: ServerProcess,
    headers: dict[str, str],
    templates: Sequence[BundleTemplate],
    resources: int,
    clients: int,
    deadline: float,
    warmup: int,
) -> Result:
    timed = plan_copies(templates, resources)
    # Warm-up copies use numbers past the timed ones, so no copy is posted twice.
    warm = [(i, n + 1_000_000) for i, n in timed[:warmup]]
    if warm:
        asyncio.run(post_all(server.base, headers, templates, warm, clients, deadline, "warm-up"))
    print(f"  {name}: load average before the timed run: {load_average()}")
    with (
        MemorySampler(server.proc.pid) as sampler,
        CpuMeter(server.proc.pid, server.pg_marker) as cpu,
    ):
        started = time.perf_counter()
        client_cpu = time.process_time()
        done, bundles, failures = asyncio.run(
            post_all(server.base, headers, templates, timed, clients, deadline, name)
        )
        seconds = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
    if time.monotonic() >= deadline and done < resources:
        print(f"  {name}: time limit reached after {done:,} resources")
    return Result(
        name,
        done,
        bundles,
        seconds,
        failures,
        sampler.peak(),
        sampler.profile(6),
        cpu.python,
        cpu.postgres,
        client_cpu,
        load_average(),
        cpu.per_process,
    )


# --------------------------------------------------------------------------------- sekmet-fhir


def sekmet_venv(version: str) -> Path:
    """A virtualenv holding sekmet-fhir, made once under the user's cache folder."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    venv = cache / "fhir-gateway-bench" / f"sekmet-fhir-{version}"
    exe = venv / "bin" / "sekmet"
    if exe.exists():
        return venv
    print(f"installing sekmet-fhir {version} into {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"sekmet-fhir=={version}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:])
        raise RuntimeError(f"installing sekmet-fhir {version} failed")
    return venv


def run_sekmet(
    templates: Sequence[BundleTemplate], resources: int, clients: int, deadline: float
) -> Result:
    venv = sekmet_venv(SEKMET_VERSION)
    with tempfile.TemporaryDirectory(prefix="bench-sekmet-") as tmp:
        work = Path(tmp)
        # Its workflow simulator answers orders and claims with more writes; switched off so the
        # comparison is store against store (this only makes sekmet faster).
        (work / "settings.yaml").write_text("simulator:\n  enabled: false\n")
        port = free_port()
        env = base_env()
        env["SEKMET_DB"] = str(work / "sekmet.db")
        env["SEKMET_CONFIG"] = str(work / "settings.yaml")
        server = start_process(
            "sekmet-fhir",
            [str(venv / "bin" / "sekmet"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=work,
            base=f"http://127.0.0.1:{port}/fhir",
            ready_path="/metadata",
            log_dir=work,
        )
        try:
            headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
            return measure(
                "sekmet-fhir", server, headers, templates, resources, clients, deadline, warmup=1
            )
        finally:
            server.stop()


# ---------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=100_000, help="resources to post to ours")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of our server")
    parser.add_argument(
        "--sekmet-resources", type=int, default=10_000, help="resources to post to sekmet-fhir"
    )
    parser.add_argument("--skip-sekmet", action="store_true", help="measure only our server")
    parser.add_argument("--time-limit", type=float, default=1200.0, help="seconds for all of it")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="shared data folder")
    args = parser.parse_args(argv)

    paths = synthea_paths(args.data)
    if not paths:
        print(f"skipped: no Synthea Bundles under {args.data} (the shared data is absent)")
        return 0
    deadline = time.monotonic() + args.time_limit
    templates = load_templates(paths)
    info = machine()
    print(
        f"machine: {info['cpus']} CPUs ({info['cpu']}), {info['ram']} RAM, Python {info['python']}"
    )
    print(
        f"data: {len(templates)} Synthea Bundles, {sum(t.resources for t in templates):,} "
        f"resources per pass; {args.clients} concurrent clients"
    )

    with gateway_server(args.workers) as server:
        ours = measure(
            f"fhir-gateway ({args.workers} worker{'s' if args.workers > 1 else ''})",
            server,
            gateway_headers(),
            templates,
            args.resources,
            args.clients,
            deadline,
            warmup=2 * args.clients,
        )
    print(ours.report(), flush=True)
    if args.skip_sekmet:
        return 1 if ours.failures else 0

    theirs = run_sekmet(templates, args.sekmet_resources, args.clients, deadline)
    print(theirs.report())
    if theirs.rate:
        print(
            f"ratio: fhir-gateway {ours.rate:,.0f}/s ÷ sekmet-fhir {theirs.rate:,.0f}/s"
            f" = {ours.rate / theirs.rate:.1f} times"
        )
    if ours.cpu_total and theirs.cpu_total:
        print(
            f"CPU per resource: sekmet-fhir {theirs.cpu_total:.0f} µs ÷ fhir-gateway "
            f"{ours.cpu_total:.0f} µs = {theirs.cpu_total / ours.cpu_total:.1f} times"
        )
    return 1 if ours.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
