"""``fhir-gateway load``: Bundles and NDJSON into a running server or straight into the store.

NDJSON resources keep their ids (they reference each other by id), so they are written as
PUTs in transaction Bundles of a few hundred; Bundles are sent as they are.
"""

from __future__ import annotations

import argparse
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

NDJSON_CHUNK = 500


def read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def is_ndjson(path: Path) -> bool:
    return path.name.removesuffix(".gz").endswith(".ndjson")


def bundles_from(path: Path) -> Iterator[dict[str, Any]]:
    name = path.name.removesuffix(".gz")
    raw = read_bytes(path)
    if name.endswith(".ndjson"):
        chunk: list[dict[str, Any]] = []
        for line in raw.splitlines():
            if line.strip():
                chunk.append(orjson.loads(line))
                if len(chunk) >= NDJSON_CHUNK:
                    yield _put_bundle(chunk)
                    chunk = []
        if chunk:
            yield _put_bundle(chunk)
    else:
        data = orjson.loads(raw)
        if data.get("resourceType") == "Bundle" and data.get("type") in ("transaction", "batch"):
            yield data
        else:
            yield _put_bundle([data])


def _put_bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    entries = []
    for r in resources:
        rid = r.get("id")
        if rid:
            entries.append(
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{rid}"}}
            )
        else:
            entries.append({"resource": r, "request": {"method": "POST", "url": r["resourceType"]}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(
                sorted(
                    q
                    for q in p.iterdir()
                    if q.name.endswith((".json", ".json.gz", ".ndjson", ".ndjson.gz"))
                )
            )
        else:
            out.append(p)
    return out


async def load_paths(args: argparse.Namespace) -> int:
    files = expand(list(args.paths))
    ok = failed = resources = 0
    if args.url:
        import httpx

        headers = {"Content-Type": "application/fhir+json"}
        if args.api_key:
            headers["X-API-Key"] = args.api_key
        async with httpx.AsyncClient(
            base_url=args.url.rstrip("/"), headers=headers, timeout=300
        ) as client:
            for path in tqdm(files, unit="file", desc="loading"):
                for bundle in bundles_from(path):
                    r = await client.post("", content=orjson.dumps(bundle))
                    if r.status_code == 200:
                        ok += 1
                        resources += len(bundle.get("entry", []))
                    else:
                        failed += 1
                        tqdm.write(f"{path.name}: HTTP {r.status_code} {r.text[:300]}")
    else:
        ok, failed, resources = await _load_direct(args, files)
    print(f"Loaded {resources} resources from {ok} bundle(s); {failed} failed.")
    return 1 if failed else 0


async def _load_direct(args: argparse.Namespace, files: list[Path]) -> tuple[int, int, int]:
    import asyncpg

    from fhir_gateway.bootstrap import prepare
    from fhir_gateway.bundles import TransactionProcessor, parse_entries
    from fhir_gateway.cli import _settings, database
    from fhir_gateway.fhir.errors import OperationOutcomeError
    from fhir_gateway.store.urls import asyncpg_dsn

    settings = _settings(args)
    ok = failed = resources = 0
    with database(settings) as url:
        await prepare(settings, url)
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            for path in tqdm(files, unit="file", desc="loading"):
                for bundle in bundles_from(path):
                    try:
                        async with conn.transaction():
                            entries = parse_entries(bundle)
                            await TransactionProcessor(
                                conn,
                                args.tenant,
                                settings.fhir_base_url(),
                                strict_references=not is_ndjson(path),
                            ).run(entries)
                        ok += 1
                        resources += len(entries)
                    except OperationOutcomeError as exc:
                        failed += 1
                        tqdm.write(f"{path.name}: {exc}")
        finally:
            await conn.close()
    return ok, failed, resources
