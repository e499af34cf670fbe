"""A resource written on its own (one statement) and one written in a Bundle (COPY) leave the
same rows; an update replaces the index rows and keeps the old version in history."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

from fhir_gateway.search.index import extract_stored
from fhir_gateway.store.indexing import IndexBatch
from fhir_gateway.store.repository import Repository
from tests.databases import fresh_database

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "category": [{"coding": [{"system": "http://x/cat", "code": "laboratory"}], "text": "Lab"}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7", "display": "Hb"}]},
    "subject": {"reference": "Patient/p1"},
    "encounter": {"reference": "Encounter/e1"},
    "effectiveDateTime": "2020-01-03T10:00:00Z",
    "valueQuantity": {"value": 11.2, "unit": "g/dL", "system": "http://unitsofmeasure.org"},
    "component": [{"code": {"text": "a component"}, "valueString": "x"}],
}


async def index_rows(conn: asyncpg.Connection, rid: int) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for attr, table, cols in IndexBatch.TABLES:
        rows = await conn.fetch(f"SELECT {', '.join(cols[1:])} FROM {table} WHERE rid = $1", rid)
        out[attr] = sorted((tuple(r) for r in rows), key=repr)
    return out


def expected_rows(resource: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    rows = extract_stored(resource["resourceType"], resource)
    return {
        attr: sorted((("t", resource["resourceType"], *r) for r in getattr(rows, attr)), key=repr)
        for attr, _table, _cols in IndexBatch.TABLES
    }


def run(postgres_url: str, body: Callable[[asyncpg.Connection], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        async with fresh_database(postgres_url) as conn:
            await body(conn)

    asyncio.run(main())


async def rid_of(conn: asyncpg.Connection, rid_text: str) -> int:
    rid: int = await conn.fetchval("SELECT rid FROM resource WHERE id = $1", rid_text)
    return rid


def test_single_and_batched_creates_write_the_same_rows(postgres_url: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            repo = Repository(conn, "t")
            alone = await repo.create(dict(OBSERVATION))
            await repo.flush()  # one resource: one statement
        async with conn.transaction():
            repo = Repository(conn, "t")
            first = await repo.create(dict(OBSERVATION))
            await repo.create({"resourceType": "Patient", "id": "x"})
            await repo.flush()  # several: COPY
        single = await index_rows(conn, await rid_of(conn, alone.id))
        batched = await index_rows(conn, await rid_of(conn, first.id))
        assert single == batched == expected_rows(alone.resource())
        assert sum(len(rows) for rows in single.values()) >= 8
        stored = await conn.fetch("SELECT rid, version, method, content FROM resource")
        assert len({r["rid"] for r in stored}) == 3
        assert {(r["version"], r["method"]) for r in stored} == {(1, "POST")}
        contents = {r["content"] for r in stored}
        assert alone.content in contents and first.content in contents

    run(postgres_url, body)


def test_update_replaces_the_index_rows_in_one_statement(postgres_url: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            created, was_new = await Repository(conn, "t").update(
                "Observation", "o1", {**OBSERVATION, "id": "o1"}
            )
        assert was_new and created.version == 1
        rid = await rid_of(conn, "o1")
        changed = {
            **OBSERVATION,
            "id": "o1",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2947-0"}]},
            "subject": {"reference": "Patient/p2"},
        }
        changed.pop("valueQuantity")
        async with conn.transaction():
            updated, was_new = await Repository(conn, "t").update("Observation", "o1", changed)
        assert not was_new and updated.version == 2
        assert await rid_of(conn, "o1") == rid
        rows = await index_rows(conn, rid)
        assert rows == expected_rows(updated.resource())
        assert rows["quantity"] == []
        assert ("t", "Observation", "subject", "Patient", "p2", None) in rows["reference"]
        history = await conn.fetch("SELECT version, method, content FROM resource_history")
        assert [(r["version"], r["method"], r["content"]) for r in history] == [
            (1, "PUT", created.content)
        ]

    run(postgres_url, body)
