"""Search latency at scale: replicate the Synthea bundles to N resources, COPY them in, then time
the issue's query set over HTTP and show the plans.

    python bench/search.py --resources 1000000            # embedded PostgreSQL in a temp dir
    python bench/search.py --resources 200000 --database-url postgresql://...

Loading bypasses the REST layer on purpose (the write path has its own benchmark): each replica
gets fresh ids (uuid5 of replica and fullUrl), rewritten references and suffixed identifiers, its
index rows come from the same ``extract_stored`` the store uses, and two worker processes COPY the
rows while the index-table indexes are dropped, then rebuilt. The server then runs as its own
process (uvicorn, one worker) and is queried over keep-alive HTTP. The baseline in the same run is
the identifier lookup answered by a JSON containment scan of the resource table, i.e. what the
index tables save.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fhir_gateway.search.index import extract_stored  # noqa: E402
from fhir_gateway.search.service import explain  # noqa: E402
from fhir_gateway.store.urls import asyncpg_dsn  # noqa: E402

TENANT = "bench"
API_KEY = "bench-key-not-secret"
NAMESPACE = uuid.UUID("6f1c2a3e-8d7b-4e52-9a61-3c0f5b7d2e19")
INDEX_TABLES = ("idx_token", "idx_string", "idx_date", "idx_reference", "idx_quantity")
COLUMNS = {
    "idx_token": ("system", "code", "text"),
    "idx_string": ("value", "exact"),
    "idx_date": ("low", "high"),
    "idx_reference": ("target_type", "target_id", "url"),
    "idx_quantity": ("value", "system", "code"),
}
RID_BLOCK = 100_000  # rids per (replica, file) task; a Synthea bundle has far fewer resources


def shared_data() -> Path:
    env = os.environ.get("FHIR_GATEWAY_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _rewrite(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _rewrite(v, ids) for k, v in value.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and ref in ids:
            out["reference"] = ids[ref]
        return out
    if isinstance(value, list):
        return [_rewrite(v, ids) for v in value]
    return value


def replicate(bundle: dict[str, Any], k: int, salt: str) -> list[dict[str, Any]]:
    """The bundle's resources as replica ``k``: fresh ids, references and identifiers. ``salt``
    (the file name) keeps the Organizations and Practitioners several bundles share apart."""
    ids: dict[str, str] = {}
    for e in bundle["entry"]:
        res = e["resource"]
        new_id = str(uuid.uuid5(NAMESPACE, f"{k}:{salt}:{e['fullUrl']}"))
        ids[e["fullUrl"]] = f"{res['resourceType']}/{new_id}"
    out = []
    for e in bundle["entry"]:
        res = _rewrite(e["resource"], ids)
        res["id"] = ids[e["fullUrl"]].split("/", 1)[1]
        if res["resourceType"] == "Patient":
            for ident in res.get("identifier", []):
                if "value" in ident:
                    ident["value"] = f"{ident['value']}-r{k}"
        out.append(res)
    return out


def _load_task(url: str, tasks: list[tuple[int, str, int]]) -> dict[str, Any]:
    return asyncio.run(_load_async(url, tasks))


async def _load_async(url: str, tasks: list[tuple[int, str, int]]) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    now = datetime.now(UTC)
    stamp = now.isoformat().replace("+00:00", "Z")
    samples: list[dict[str, Any]] = []
    count = 0
    try:
        for k, path, rid_base in tasks:
            # A worker process with nothing else on its loop: blocking reads are fine here.
            raw = Path(path).read_bytes()  # noqa: ASYNC240
            resources = replicate(orjson.loads(gzip.decompress(raw)), k, Path(path).name)
            rows: list[tuple[Any, ...]] = []
            idx: dict[str, list[tuple[Any, ...]]] = {t: [] for t in INDEX_TABLES}
            sample: dict[str, Any] = {"observations": [], "encounters": 0, "conditions": 0}
            for i, res in enumerate(resources):
                rtype = res["resourceType"]
                res["meta"] = {**res.get("meta", {}), "versionId": "1", "lastUpdated": stamp}
                rid = rid_base + i
                rows.append(
                    (TENANT, rtype, res["id"], rid, 1, now, False, orjson.dumps(res).decode())
                )
                ex = extract_stored(rtype, res)
                head = (rid, TENANT, rtype)
                idx["idx_token"].extend(head + r for r in ex.token)
                idx["idx_string"].extend(head + r for r in ex.string)
                idx["idx_date"].extend(head + r for r in ex.date)
                idx["idx_reference"].extend(head + r for r in ex.reference)
                idx["idx_quantity"].extend(head + r for r in ex.quantity)
                if rtype == "Patient":
                    ident = next(
                        (
                            x
                            for x in res.get("identifier", [])
                            if x.get("system") and x.get("value")
                        ),
                        None,
                    )
                    sample["patient"] = res["id"]
                    if ident:
                        sample["identifier"] = f"{ident['system']}|{ident['value']}"
                elif rtype == "Observation" and "effectiveDateTime" in res:
                    coding = res.get("code", {}).get("coding", [{}])[0]
                    sample["observations"].append(
                        (coding.get("system"), coding.get("code"), res["effectiveDateTime"][:4])
                    )
            await conn.copy_records_to_table(
                "resource",
                records=rows,
                columns=[
                    "tenant",
                    "type",
                    "id",
                    "rid",
                    "version",
                    "last_updated",
                    "deleted",
                    "content",
                ],
            )
            for table, records in idx.items():
                cols = ["rid", "tenant", "type", "param", *COLUMNS[table]]
                await conn.copy_records_to_table(table, records=records, columns=cols)
            count += len(rows)
            if "identifier" in sample and sample["observations"]:
                samples.append(sample)
    finally:
        await conn.close()
    return {"count": count, "samples": samples}


async def _drop_indexes(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY($1::text[])",
            list(INDEX_TABLES),
        )
        for r in rows:
            await conn.execute(f'DROP INDEX "{r["indexname"]}"')
        return [r["indexdef"] for r in rows]
    finally:
        await conn.close()


async def _finish_load(url: str, index_defs: list[str], max_rid: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for d in index_defs:
            await conn.execute(d)
        await conn.execute("SELECT setval('resource_rid_seq', $1)", max_rid)
        # As after any bulk load: VACUUM sets the visibility map and the hint bits now, instead
        # of autovacuum doing it during the measurement and the first reads writing pages.
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()


def load(url: str, n_resources: int, workers: int) -> list[dict[str, Any]]:
    files = sorted((shared_data() / "synthea-r4").glob("*.json.gz"))
    if not files:
        raise SystemExit("shared data synthea-r4 not found (set FHIR_GATEWAY_SHARED_DATA)")
    per_replica = (
        sum(len(orjson.loads(gzip.decompress(f.read_bytes()))["entry"]) for f in files[:5])
        * len(files)
        / 5
    )
    replicas = max(1, round(n_resources / per_replica))
    tasks = [
        (k, str(f), (k * len(files) + j + 1) * RID_BLOCK)
        for k in range(replicas)
        for j, f in enumerate(files)
    ]
    print(f"loading {replicas} replicas of {len(files)} Synthea bundles with {workers} workers")
    index_defs = asyncio.run(_drop_indexes(url))
    started = time.perf_counter()
    chunks = [tasks[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_load_task, [url] * workers, chunks))
    loaded = sum(r["count"] for r in results)
    copy_s = time.perf_counter() - started
    print(f"copied {loaded:,} resources in {copy_s:.0f} s ({loaded / copy_s:,.0f}/s)")
    t = time.perf_counter()
    asyncio.run(_finish_load(url, index_defs, (len(tasks) + 2) * RID_BLOCK))
    print(f"indexes rebuilt, vacuumed and analysed in {time.perf_counter() - t:.0f} s")
    return [s for r in results for s in r["samples"]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "FHIR_GATEWAY_DATABASE_URL": url,
        "FHIR_GATEWAY_API_KEYS": f"{TENANT}:{API_KEY}",
        "FHIR_GATEWAY_TENANTS": TENANT,
        "FHIR_GATEWAY_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    cmd = [sys.executable, "-m", "fhir_gateway.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base + "/fhir"
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("server exited during start")
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit("server did not start")


def queries(samples: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    def pick() -> dict[str, Any]:
        return rng.choice(samples)

    def obs() -> tuple[str, list[tuple[str, str]]]:
        s = pick()
        system, code, year = rng.choice(s["observations"])
        return "Observation", [
            ("patient", s["patient"]),
            ("code", f"{system}|{code}"),
            ("date", f"ge{year}"),
            ("date", f"lt{int(year) + 2}"),
        ]

    return {
        "Patient by identifier": lambda: ("Patient", [("identifier", pick()["identifier"])]),
        "Observation by patient + code + date range": obs,
        "Condition by patient + _include encounter": lambda: (
            "Condition",
            [("patient", pick()["patient"]), ("_include", "Condition:encounter")],
        ),
        "Encounter by patient, _sort=-date, _count=10": lambda: (
            "Encounter",
            [("patient", pick()["patient"]), ("_sort", "-date"), ("_count", "10")],
        ),
        "Observation?subject:Patient.identifier": lambda: (
            "Observation",
            [("subject:Patient.identifier", pick()["identifier"]), ("_count", "50")],
        ),
    }


def measure(base: str, makers: dict[str, Any], n: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    headers = {"X-API-Key": API_KEY, "Accept": "application/fhir+json"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for name, make in makers.items():
            for _ in range(10):  # warm-up: connections, prepared statements, caches
                rtype, params = make()
                client.get(f"/{rtype}", params=params).raise_for_status()
            times = []
            entries = 0
            for _ in range(n):
                rtype, params = make()
                t = time.perf_counter()
                r = client.get(f"/{rtype}", params=params)
                times.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
                entries += len(r.json().get("entry", []))
            times.sort()
            results[name] = {
                "p50_ms": statistics.median(times),
                "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))],
                "mean_entries": entries / n,
            }
            p50, p99 = results[name]["p50_ms"], results[name]["p99_ms"]
            print(f"{name:48s} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms")
    return results


async def plans(url: str, makers: dict[str, Any]) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    out = {}
    try:
        for name, make in makers.items():
            rtype, params = make()
            out[name] = await explain(conn, TENANT, rtype, params, analyze=True)
    finally:
        await conn.close()
    return out


async def baseline_scan(url: str, samples: list[dict[str, Any]], n: int) -> dict[str, float]:
    """The identifier lookup without index tables: JSON containment over every Patient row."""
    conn = await asyncpg.connect(url)
    times = []
    try:
        for s in samples[:n]:
            system, value = s["identifier"].split("|", 1)
            probe = orjson.dumps({"identifier": [{"system": system, "value": value}]}).decode()
            t = time.perf_counter()
            await conn.fetch(
                "SELECT id FROM resource WHERE tenant = $1 AND type = 'Patient' AND NOT deleted "
                "AND content::jsonb @> $2::jsonb",
                TENANT,
                probe,
            )
            times.append((time.perf_counter() - t) * 1000)
    finally:
        await conn.close()
    times.sort()
    return {"p50_ms": statistics.median(times), "p99_ms": times[-1]}


def _put_bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    entries = [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in resources
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _peer_samples(resources: list[dict[str, Any]]) -> dict[str, Any] | None:
    sample: dict[str, Any] = {"observations": []}
    for res in resources:
        if res["resourceType"] == "Patient":
            sample["patient"] = res["id"]
            ident = next((x for x in res.get("identifier", []) if x.get("system")), None)
            if ident:
                sample["identifier"] = f"{ident['system']}|{ident['value']}"
        elif res["resourceType"] == "Observation" and "effectiveDateTime" in res:
            coding = res.get("code", {}).get("coding", [{}])[0]
            sample["observations"].append(
                (coding.get("system"), coding.get("code"), res["effectiveDateTime"][:4])
            )
    return sample if "identifier" in sample and sample["observations"] else None


def peer_sekmet(command: str, n_resources: int, n: int) -> dict[str, Any]:
    """The same query set against sekmet-fhir (FastAPI + SQLite), loaded over its REST API."""
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="bench-sekmet-"))
    base = f"http://127.0.0.1:{port}/fhir"
    env = {
        **os.environ,
        "SEKMET_DB": str(workdir / "sekmet.db"),
        "SEKMET_PORT": str(port),
        "SEKMET_BASE_URL": base,
        "SEKMET_CONFIG": str(workdir / "settings.yaml"),
    }
    proc = subprocess.Popen(
        [command, "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                httpx.get(base + "/metadata", timeout=2)
                break
            except httpx.HTTPError:
                if time.time() > deadline or proc.poll() is not None:
                    raise SystemExit("sekmet-fhir did not start") from None
                time.sleep(0.5)
        files = sorted((shared_data() / "synthea-r4").glob("*.json.gz"))
        samples = []
        loaded = 0
        started = time.perf_counter()
        with httpx.Client(base_url=base, timeout=600) as client:
            k = 0
            while loaded < n_resources:
                for f in files:
                    bundle = orjson.loads(gzip.decompress(f.read_bytes()))
                    resources = replicate(bundle, 1000 + k, f.name)
                    r = client.post(
                        "",
                        content=orjson.dumps(_put_bundle(resources)),
                        headers={"Content-Type": "application/fhir+json"},
                    )
                    if r.status_code >= 300:
                        print(f"sekmet-fhir refused {f.name}: HTTP {r.status_code}")
                        continue
                    loaded += len(resources)
                    if (sample := _peer_samples(resources)) is not None:
                        samples.append(sample)
                    if loaded >= n_resources:
                        break
                k += 1
        rate = loaded / (time.perf_counter() - started)
        print(f"sekmet-fhir: loaded {loaded:,} resources at {rate:,.0f}/s")
        results: dict[str, Any] = {}
        makers = queries(samples, random.Random(7))
        with httpx.Client(base_url=base, timeout=60) as client:
            for name, make in makers.items():
                times, failures = [], 0
                for _ in range(n):
                    rtype, params = make()
                    t = time.perf_counter()
                    r = client.get(f"/{rtype}", params=params)
                    times.append((time.perf_counter() - t) * 1000)
                    failures += r.status_code != 200
                times.sort()
                results[name] = {
                    "p50_ms": statistics.median(times),
                    "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))],
                    "failed": failures,
                }
                print(
                    f"sekmet-fhir {name:40s} p50 {results[name]['p50_ms']:7.2f} ms "
                    f"p99 {results[name]['p99_ms']:7.2f} ms  failed {failures}/{n}"
                )
        return {"resources": loaded, "load_per_s": rate, "queries": results}
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--resources", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--samples", type=int, default=300, help="requests per query")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sekmet", default=None, help="sekmet executable, for the peer ratio")
    parser.add_argument("--sekmet-resources", type=int, default=22_000)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "search.json")
    args = parser.parse_args()

    embedded = None
    scratch: Path | None = None
    if args.database_url is None:
        from fhir_gateway.store.embedded import EmbeddedPostgres

        scratch = Path(tempfile.mkdtemp(prefix="bench-search-"))
        embedded = EmbeddedPostgres(scratch / "pgdata")
        args.database_url = embedded.start()
    url = asyncpg_dsn(args.database_url)
    server = None
    try:
        from fhir_gateway.bootstrap import prepare
        from fhir_gateway.settings import Settings

        settings = Settings(database_url=url, tenants=TENANT, api_keys=f"{TENANT}:{API_KEY}")
        asyncio.run(prepare(settings, url))
        samples = load(url, args.resources, args.workers)
        rng = random.Random(7)
        makers = queries(samples, rng)
        server, base = start_server(args.database_url)
        results = measure(base, makers, args.samples)
        scan = asyncio.run(baseline_scan(url, samples, 20))
        print(f"{'baseline: identifier by JSON scan (SQL only)':48s} p50 {scan['p50_ms']:7.2f} ms")
        explained = asyncio.run(plans(url, makers))
        for name, plan in explained.items():
            print(f"\n--- EXPLAIN ANALYZE: {name}\n{plan}")
        total = asyncio.run(_count(url))
        peer = None
        if args.sekmet:
            server.terminate()
            server.wait(30)
            server = None
            peer = peer_sekmet(args.sekmet, args.sekmet_resources, min(args.samples, 100))
            for name, ours in results.items():
                theirs = peer["queries"][name]["p50_ms"]
                print(f"ratio p50 sekmet/ours {name:40s} {theirs / ours['p50_ms']:6.1f}x")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps(
                {
                    "resources": total,
                    "when": datetime.now(UTC).isoformat(),
                    "queries": results,
                    "baseline_json_scan": scan,
                    "plans": explained,
                    "sekmet_fhir": peer,
                },
                indent=1,
            )
        )
        print(f"\n{total:,} resources; results in {args.output}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if embedded is not None:
            embedded.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


async def _count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM resource WHERE tenant = $1", TENANT))
    finally:
        await conn.close()


if __name__ == "__main__":
    raise SystemExit(main())
