"""``$readmission-risk`` over HTTP on Synthea patients with full histories, against baselines.

Starts ``fhir-gateway serve`` (embedded PostgreSQL in a temporary directory), loads Synthea
transaction Bundles, waits until the discharge scoring they trigger has finished, then measures:

* one client: ``GET /fhir/Patient/{id}/$readmission-risk`` p50/p99 (targets < 3 ms / < 10 ms),
  against a plain ``GET /fhir/Patient/{id}`` and ``GET /fhir/Patient/{id}/$everything`` of the
  same patients in the same run;
* 32 concurrent clients: operations/s (target >= 500), against plain reads;
* ``POST /fhir/$readmission-risk-population``: discharges re-scored and stored per second.

CPU per request is the server's processes and PostgreSQL's, autovacuum workers left out (they
tidy up after the load, whenever they wake).

    PYTHONPATH=. python bench/operation.py [--bundles 60] [--requests 1000] [--seconds 10]
        [--clients 32] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from bench.common import (
    SHARED_DATA,
    CpuMeter,
    RawConnection,
    ServerProcess,
    command_of,
    cpu_seconds,
    gateway_headers,
    gateway_server,
    load_average,
    load_templates,
    machine,
    percentile,
    process_tree,
    processes_mentioning,
    synthea_paths,
)


def connect(server: ServerProcess) -> RawConnection:
    url = urlsplit(server.base)
    assert url.hostname is not None and url.port is not None
    return RawConnection(url.hostname, url.port, gateway_headers())


async def load_patients(server: ServerProcess, paths: Sequence[Path]) -> list[str]:
    """Post each Bundle once (4 at a time); the Patient ids, in Bundle order."""
    templates = load_templates(paths)
    ids: list[str] = [""] * len(templates)
    pending = list(enumerate(templates))

    async def client() -> None:
        conn = connect(server)
        try:
            while pending:
                i, template = pending.pop()
                status, body = await conn.request("POST", "/fhir", template.copy(i + 1))
                if status != 200:
                    raise RuntimeError(f"loading {template.name}: HTTP {status} {body[:300]!r}")
                for entry in orjson.loads(body)["entry"]:
                    location = entry["response"]["location"]
                    if location.startswith("Patient/"):
                        ids[i] = location.split("/")[1]
        finally:
            await conn.close()

    await asyncio.gather(*(client() for _ in range(4)))
    return ids


async def assessments_settled(server: ServerProcess, limit: float) -> int:
    """Wait until the discharge worker has stopped adding RiskAssessments; returns their count."""
    conn = connect(server)
    last, stable = -1, 0
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline and stable < 3:
            status, body = await conn.request("GET", "/fhir/RiskAssessment?_summary=count")
            total = orjson.loads(body).get("total", 0) if status == 200 else 0
            stable = stable + 1 if total == last else 0
            last = total
            await asyncio.sleep(1.0)
    finally:
        await conn.close()
    return max(last, 0)


class RequestCpuMeter(CpuMeter):
    """``CpuMeter`` without PostgreSQL's autovacuum workers.

    The vacuum and analyze that follow the bulk load start whenever autovacuum wakes up, and a
    worker's CPU leaves the sum when it exits: counted, they land on (or are subtracted from)
    whichever phase they happen to overlap, and say nothing about the requests.
    """

    def _read(self) -> tuple[float, float]:
        python, _ = super()._read()
        pg: list[int] = []
        for root in processes_mentioning(self.pg_marker) if self.pg_marker else ():
            if "postgres" in command_of(root)[:200]:
                pg.extend(
                    p
                    for p in process_tree(root)
                    if p not in pg and "autovacuum" not in command_of(p)[:200]
                )
        return python, cpu_seconds(pg)


async def scorable(server: ServerProcess, patients: Sequence[str]) -> list[str]:
    """Patients the model can score (those with a finished inpatient stay)."""
    conn = connect(server)
    out = []
    try:
        for pid in patients:
            status, _ = await conn.request("GET", f"/fhir/Patient/{pid}/$readmission-risk")
            if status == 200:
                out.append(pid)
    finally:
        await conn.close()
    return out


async def sequential(server: ServerProcess, paths: Sequence[str], n: int) -> list[float]:
    conn = connect(server)
    timings = []
    try:
        for i in range(n):
            started = time.perf_counter()
            status, body = await conn.request("GET", paths[i % len(paths)])
            timings.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"GET {paths[i % len(paths)]}: HTTP {status} {body[:200]!r}")
    finally:
        await conn.close()
    return timings


async def concurrent(
    server: ServerProcess, paths: Sequence[str], clients: int, seconds: float
) -> tuple[float, list[float]]:
    done = 0
    timings: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        nonlocal done
        conn = connect(server)
        i = offset
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status, body = await conn.request("GET", paths[i % len(paths)])
                timings.append(time.perf_counter() - started)
                if status != 200:
                    raise RuntimeError(f"HTTP {status} {body[:200]!r}")
                done += 1
                i += 1
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return done / (time.perf_counter() - started), timings


async def population(server: ServerProcess) -> tuple[int, float]:
    conn = connect(server)
    try:
        started = time.perf_counter()
        status, body = await conn.request(
            "POST",
            "/fhir/$readmission-risk-population",
            orjson.dumps({"resourceType": "Parameters", "parameter": []}),
        )
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    if status != 200:
        raise RuntimeError(f"population: HTTP {status} {body[:300]!r}")
    values = {p["name"]: p.get("valueInteger") for p in orjson.loads(body)["parameter"]}
    return int(values.get("scored") or 0), seconds


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def latency_line(name: str, timings: Sequence[float]) -> str:
    return (
        f"  {name:<32} p50 {ms(percentile(timings, 0.5))}  p99 {ms(percentile(timings, 0.99))}"
        f"  ({len(timings)} requests)"
    )


def cpu_line(cpu: CpuMeter, ops: int) -> str:
    if not ops:
        return ""
    return (
        f"    CPU per request: server {1e6 * cpu.python / ops:.0f} µs, "
        f"PostgreSQL {1e6 * cpu.postgres / ops:.0f} µs"
    )


def run(server: ServerProcess, args: argparse.Namespace, paths: Sequence[Path]) -> None:
    started = time.perf_counter()
    patients = asyncio.run(load_patients(server, paths))
    print(f"loaded {len(patients)} Synthea patients in {time.perf_counter() - started:.0f} s")
    stored = asyncio.run(assessments_settled(server, 300))
    print(f"discharge scoring settled: {stored} stored RiskAssessments")
    eligible = asyncio.run(scorable(server, patients))
    print(f"{len(eligible)} of {len(patients)} patients have a scorable inpatient stay")
    if not eligible:
        return
    risk = [f"/fhir/Patient/{p}/$readmission-risk" for p in eligible]
    read = [f"/fhir/Patient/{p}" for p in eligible]
    everything = [f"/fhir/Patient/{p}/$everything" for p in eligible]
    for paths_ in (risk, read, everything):  # warm-up: caches, prepared statements, the model
        asyncio.run(sequential(server, paths_, 2 * len(eligible)))

    print(f"one client (load average {load_average()}):")
    results = {}
    for name, targets, n in (
        ("GET Patient/{id}/$readmission-risk", risk, args.requests),
        ("GET Patient/{id} (baseline)", read, args.requests),
        ("GET Patient/{id}/$everything", everything, max(50, args.requests // 10)),
    ):
        with RequestCpuMeter(server.proc.pid, server.pg_marker) as cpu:
            timings = asyncio.run(sequential(server, targets, n))
        results[name] = timings
        print(latency_line(name, timings))
        print(cpu_line(cpu, n))
    op = percentile(results["GET Patient/{id}/$readmission-risk"], 0.5)
    base = percentile(results["GET Patient/{id} (baseline)"], 0.5)
    whole = percentile(results["GET Patient/{id}/$everything"], 0.5)
    print(
        f"  p50 ratios: operation / plain read = {op / base:.1f}; "
        f"operation / $everything = {op / whole:.2f}"
    )

    print(f"{args.clients} concurrent clients, {args.seconds:.0f} s each:")
    rates = {}
    for name, targets in (("$readmission-risk", risk), ("GET Patient/{id} (baseline)", read)):
        with RequestCpuMeter(server.proc.pid, server.pg_marker) as cpu:
            rate, timings = asyncio.run(concurrent(server, targets, args.clients, args.seconds))
        rates[name] = rate
        print(
            f"  {name:<32} {rate:,.0f} requests/s  (p50 {ms(percentile(timings, 0.5))},"
            f" p99 {ms(percentile(timings, 0.99))}; load average {load_average()})"
        )
        print(cpu_line(cpu, len(timings)))
    ratio = rates["$readmission-risk"] / rates["GET Patient/{id} (baseline)"]
    print(f"  ratio operation / plain read: {ratio:.2f}")

    with RequestCpuMeter(server.proc.pid, server.pg_marker) as cpu:
        scored, seconds = asyncio.run(population(server))
    print(
        f"population re-scoring: {scored} discharges scored and stored in {seconds:.1f} s"
        f" = {scored / seconds:,.1f} discharges/s"
    )
    print(cpu_line(cpu, scored).replace("request", "discharge"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=60, help="Synthea Bundles to load")
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests")
    parser.add_argument("--seconds", type=float, default=10.0, help="each concurrent phase")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument(
        "--workers", type=int, default=2, help="uvicorn workers of our server (one per core)"
    )
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="shared data folder")
    args = parser.parse_args(argv)
    paths = synthea_paths(args.data)[: args.bundles]
    if not paths:
        print(f"skipped: no Synthea Bundles under {args.data} (the shared data is absent)")
        return 0
    info = machine()
    print(
        f"machine: {info['cpus']} CPUs ({info['cpu']}), {info['ram']} RAM, Python {info['python']}"
    )
    with gateway_server(args.workers) as server:
        run(server, args, paths)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
