"""A minimal writer over the store's tables, for service tests that bypass HTTP.

The writer stores resources the way the store does (resource row + the index rows of
``extract_stored``), so the search SQL runs against real tables before the HTTP layer exists.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import orjson

from fhir_gateway.search.index import extract_stored

T = TypeVar("T")


class SearchDb:
    def __init__(self, url: str) -> None:
        self.url = url
        self._ids = itertools.count(1)

    def run(self, body: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async def main() -> T:
            conn = await asyncpg.connect(self.url)
            try:
                return await body(conn)
            finally:
                await conn.close()

        return asyncio.run(main())

    def tenant(self) -> str:
        """A fresh tenant name, so tests never see each other's rows."""
        return f"t{uuid.uuid4().hex[:10]}"


async def put(
    conn: asyncpg.Connection,
    tenant: str,
    resource: Mapping[str, Any],
    *,
    last_updated: datetime | None = None,
) -> int:
    """Create or replace the current version of ``resource`` with its index rows; returns rid."""
    rtype, rid_text = resource["resourceType"], resource["id"]
    when = last_updated or datetime.now(UTC)
    body = dict(resource)
    body["meta"] = {
        **dict(resource.get("meta", {})),
        "versionId": "1",
        "lastUpdated": when.isoformat().replace("+00:00", "Z"),
    }
    async with conn.transaction():
        rid = await conn.fetchval(
            "SELECT rid FROM resource WHERE tenant=$1 AND type=$2 AND id=$3",
            tenant,
            rtype,
            rid_text,
        )
        if rid is None:
            rid = await conn.fetchval("SELECT nextval('resource_rid_seq')")
            await conn.execute(
                "INSERT INTO resource"
                " (tenant, type, id, rid, version, last_updated, deleted, content)"
                " VALUES ($1,$2,$3,$4,1,$5,false,$6)",
                tenant,
                rtype,
                rid_text,
                rid,
                when,
                orjson.dumps(body).decode(),
            )
        else:
            await conn.execute(
                "UPDATE resource SET version = version + 1, last_updated=$2, deleted=false,"
                " content=$3"
                " WHERE rid=$1",
                rid,
                when,
                orjson.dumps(body).decode(),
            )
        for table in ("idx_token", "idx_string", "idx_date", "idx_reference", "idx_quantity"):
            await conn.execute(f"DELETE FROM {table} WHERE rid=$1", rid)
        rows = extract_stored(rtype, body)
        head = (rid, tenant, rtype)
        await _copy(conn, "idx_token", ["system", "code", "text"], head, rows.token)
        await _copy(conn, "idx_string", ["value", "exact"], head, rows.string)
        await _copy(conn, "idx_date", ["low", "high"], head, rows.date)
        await _copy(
            conn, "idx_reference", ["target_type", "target_id", "url"], head, rows.reference
        )
        await _copy(conn, "idx_quantity", ["value", "system", "code"], head, rows.quantity)
    return int(rid)


async def delete(conn: asyncpg.Connection, tenant: str, rtype: str, rid_text: str) -> None:
    rid = await conn.fetchval(
        "UPDATE resource SET deleted=true, content=NULL, version=version+1 "
        "WHERE tenant=$1 AND type=$2 AND id=$3 RETURNING rid",
        tenant,
        rtype,
        rid_text,
    )
    for table in ("idx_token", "idx_string", "idx_date", "idx_reference", "idx_quantity"):
        await conn.execute(f"DELETE FROM {table} WHERE rid=$1", rid)


async def _copy(
    conn: asyncpg.Connection,
    table: str,
    cols: list[str],
    head: tuple[Any, ...],
    rows: list[tuple[Any, ...]],
) -> None:
    if rows:
        await conn.copy_records_to_table(
            table,
            records=[(*head, *r) for r in rows],
            columns=["rid", "tenant", "type", "param", *cols],
        )
