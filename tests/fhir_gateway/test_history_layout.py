"""History and vread when the current version is stored only in ``resource`` (migration 0006).

Superseded versions live in ``resource_history``; history pages merge both tables. The upgrade
test builds a database the way migrations 0001 to 0005 left it (every version, current included, in
history) and checks that 0006 keeps every version readable, with the method it was written by.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from fhir_gateway.store import migrate as migrations
from fhir_gateway.store.repository import Repository
from tests.databases import fresh_database, migrate_before


def _patient(family: str, marker: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:history-layout", "value": marker}],
        "name": [{"family": family}],
    }


def _walk(client: httpx.Client, url: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every entry of a history, following ``next`` links page by page."""
    entries: list[dict[str, Any]] = []
    page = client.get(url, params=params).json()
    while True:
        entries.extend(page.get("entry", []))
        nxt = [link["url"] for link in page.get("link", []) if link["relation"] == "next"]
        if not nxt:
            return entries
        page = client.get(nxt[0]).json()


def test_instance_history_pages_through_current_and_superseded(app_client: httpx.Client) -> None:
    marker = str(uuid.uuid4())
    pid = app_client.post("/Patient", json=_patient("One", marker)).json()["id"]
    assert app_client.put(f"/Patient/{pid}", json={**_patient("Two", marker), "id": pid}).is_success
    patch = [{"op": "replace", "path": "/name/0/family", "value": "Three"}]
    patched = app_client.patch(
        f"/Patient/{pid}",
        content=orjson.dumps(patch),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert patched.status_code == 200
    assert app_client.delete(f"/Patient/{pid}").status_code in (200, 204)

    entries = _walk(app_client, f"/Patient/{pid}/_history", {"_count": "1"})
    versions = [e["response"]["etag"] for e in entries]
    methods = [e["request"]["method"] for e in entries]
    assert versions == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']
    assert methods == ["DELETE", "PATCH", "PUT", "POST"]
    families = [e["resource"]["name"][0]["family"] for e in entries if "resource" in e]
    assert families == ["Three", "Two", "One"]

    for version, family in ((1, "One"), (2, "Two"), (3, "Three")):
        got = app_client.get(f"/Patient/{pid}/_history/{version}")
        assert got.status_code == 200
        assert got.json()["name"][0]["family"] == family
        assert got.json()["meta"]["versionId"] == str(version)
    assert app_client.get(f"/Patient/{pid}/_history/4").status_code == 410
    assert app_client.get(f"/Patient/{pid}/_history/5").status_code == 404


def test_type_history_merges_both_tables_newest_first(app_client: httpx.Client) -> None:
    marker = str(uuid.uuid4())
    start = datetime.now(UTC) - timedelta(seconds=1)
    first = app_client.post("/Patient", json=_patient("A", marker)).json()["id"]
    second = app_client.post("/Patient", json=_patient("B", marker)).json()["id"]
    assert app_client.put(
        f"/Patient/{first}", json={**_patient("A2", marker), "id": first}
    ).is_success

    entries = _walk(
        app_client,
        "/Patient/_history",
        {"_since": start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "_count": "2"},
    )
    mine = [
        (e["resource"]["id"], e["response"]["etag"])
        for e in entries
        if "resource" in e and e["resource"]["id"] in (first, second)
    ]
    assert mine == [(first, 'W/"2"'), (second, 'W/"1"'), (first, 'W/"1"')]
    stamps = [e["response"]["lastModified"] for e in entries]
    assert stamps == sorted(stamps, reverse=True)


def test_migration_0006_keeps_every_version_of_an_existing_database(postgres_url: str) -> None:
    async def run() -> None:
        async with fresh_database(postgres_url, migrate=False) as conn:
            # The schema as it was before 0006, with rows in the old layout.
            await migrate_before(conn, "0006")
            t0 = datetime(2026, 1, 1, tzinfo=UTC)
            rows = [
                # (id, version, deleted, method, content or None); the last one is current
                ("p1", 1, False, "POST", '{"resourceType":"Patient","id":"p1","v":1}'),
                ("p1", 2, False, "PUT", '{"resourceType":"Patient","id":"p1","v":2}'),
                ("p2", 1, False, "PUT", '{"resourceType":"Patient","id":"p2","v":1}'),
                ("p2", 2, True, "DELETE", None),
                ("p3", 1, False, "POST", '{"resourceType":"Patient","id":"p3","v":1}'),
            ]
            for i, (rid, version, deleted, method, content) in enumerate(rows):
                await conn.execute(
                    "INSERT INTO resource_history VALUES ('t', 'Patient', $1, $2, $3, $4, $5, $6)",
                    rid,
                    version,
                    t0 + timedelta(minutes=i),
                    deleted,
                    method,
                    content,
                )
            for n, (rid, version) in enumerate((("p1", 2), ("p2", 2), ("p3", 1))):
                await conn.execute(
                    "INSERT INTO resource (tenant, type, id, rid, version, last_updated, deleted,"
                    " content) SELECT tenant, type, id, $3, version, last_updated, deleted, content"
                    " FROM resource_history WHERE id = $1 AND version = $2",
                    rid,
                    version,
                    n + 1,
                )
            assert "0006" in await migrations.migrate(conn)

            # Only superseded versions stay in history; the current ones are not duplicated.
            kept = await conn.fetch("SELECT id, version FROM resource_history ORDER BY id, version")
            assert [(r["id"], r["version"]) for r in kept] == [("p1", 1), ("p2", 1)]
            methods = await conn.fetch("SELECT id, method FROM resource ORDER BY id")
            assert [(r["id"], r["method"]) for r in methods] == [
                ("p1", "PUT"),
                ("p2", "DELETE"),
                ("p3", "POST"),
            ]
            repo = Repository(conn, "t")
            after = [
                (v.id, v.version, v.deleted, v.method, v.content)
                for v in await repo.history(count=100)
            ]
            # Every version, newest first, as the old history table listed them.
            assert after == [tuple(r) for r in reversed(rows)]
            assert len(after) == len(rows)
            for rid, version, deleted, _method, content in rows:
                if not deleted:
                    assert (await repo.vread("Patient", rid, version)).content == content

    asyncio.run(run())
