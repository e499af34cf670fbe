"""Versioned resource storage for one tenant on one connection.

Every method is scoped to the tenant given at construction, so no caller can forget it. Writes
never commit: the caller owns the transaction, which is what makes a transaction Bundle one
database transaction. Creates are buffered and flushed with COPY, because one round trip per
resource would cap ingest far below what PostgreSQL can take.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from fhir_gateway.fhir import errors
from fhir_gateway.scoring.triggers import discharge_of
from fhir_gateway.store.indexing import IndexBatch, index_columns


@dataclass(frozen=True)
class Version:
    type: str
    id: str
    version: int
    last_updated: datetime
    deleted: bool
    content: str | None
    method: str = "PUT"

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    def resource(self) -> dict[str, Any]:
        assert self.content is not None
        loaded: dict[str, Any] = orjson.loads(self.content)
        return loaded


@functools.lru_cache(maxsize=256)
def format_instant(ts: datetime) -> str:
    """FHIR instant text; cached because a whole transaction shares one timestamp."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def new_id() -> str:
    return str(uuid.uuid4())


def new_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs, for a Bundle's creates.

    Formatted from one read of the system's random source: ``uuid.uuid4()`` per id cost about
    2.5 us each (a system call and an object), a quarter of that this way.
    """
    digits = os.urandom(16 * count).hex()
    out = []
    for i in range(0, 32 * count, 32):
        d = digits[i : i + 32]
        # Version 4 in the 13th digit; the variant's two high bits (10) in the 17th.
        variant = "89ab"[int(d[16], 16) & 3]
        out.append(f"{d[:8]}-{d[8:12]}-4{d[13:16]}-{variant}{d[17:20]}-{d[20:]}")
    return out


def stamp(resource: dict[str, Any], rid: str, version: int, ts: datetime) -> dict[str, Any]:
    """Set id and meta the server owns, keeping the client's key order and other meta fields."""
    meta = resource.get("meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta["versionId"] = str(version)
    meta["lastUpdated"] = format_instant(ts)
    if "id" in resource and "meta" in resource:
        resource["id"] = rid
        resource["meta"] = meta
        return resource
    out: dict[str, Any] = {}
    for key, value in resource.items():
        out[key] = value
        if key == "resourceType":
            out["id"] = rid
            out["meta"] = meta
    out["id"] = rid
    out["meta"] = meta
    return out


@dataclass
class _PendingCreate:
    rid: int | None  # None: drawn from the sequence when written
    version: Version
    resource: dict[str, Any]


@dataclass
class Repository:
    conn: asyncpg.Connection
    tenant: str
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Called with (repository, type, matched ids) whenever conditional criteria found matches,
    # so a caller's grants decide whether it may learn of them (see auth.enforce).
    conditional_guard: Any = None
    _pending: list[_PendingCreate] = field(default_factory=list)
    _rids: list[int] = field(default_factory=list)

    # ------------------------------------------------------------------ reads
    async def current(self, rtype: str, rid: str) -> Version | None:
        row = await self.conn.fetchrow(
            "SELECT version, last_updated, deleted, content, method FROM resource"
            " WHERE tenant = $1 AND type = $2 AND id = $3",
            self.tenant,
            rtype,
            rid,
        )
        if row is None:
            return None
        return Version(
            rtype,
            rid,
            row["version"],
            row["last_updated"],
            row["deleted"],
            row["content"],
            row["method"],
        )

    async def read(self, rtype: str, rid: str) -> Version:
        v = await self.current(rtype, rid)
        if v is None:
            raise errors.not_found(f"{rtype}/{rid} is not known")
        if v.deleted:
            raise errors.gone(f"{rtype}/{rid} was deleted (version {v.version})")
        return v

    async def vread(self, rtype: str, rid: str, version: int) -> Version:
        # The current version lives only in ``resource``, superseded ones only in history.
        row = await self.conn.fetchrow(
            "SELECT last_updated, deleted, content, method FROM resource"
            " WHERE tenant = $1 AND type = $2 AND id = $3 AND version = $4"
            " UNION ALL SELECT last_updated, deleted, content, method FROM resource_history"
            " WHERE tenant = $1 AND type = $2 AND id = $3 AND version = $4 LIMIT 1",
            self.tenant,
            rtype,
            rid,
            version,
        )
        if row is None:
            if await self.current(rtype, rid) is None:
                raise errors.not_found(f"{rtype}/{rid} is not known")
            raise errors.not_found(f"{rtype}/{rid} has no version {version}")
        v = Version(
            rtype, rid, version, row["last_updated"], row["deleted"], row["content"], row["method"]
        )
        if v.deleted:
            raise errors.gone(f"{rtype}/{rid} version {version} is a deletion")
        return v

    async def history(
        self,
        rtype: str | None = None,
        rid: str | None = None,
        *,
        since: datetime | None = None,
        at: datetime | None = None,
        count: int = 50,
        before: tuple[datetime, str, str, int] | None = None,
    ) -> list[Version]:
        """Versions newest first; ``before`` is the keyset of the previous page's last entry.

        Current versions are in ``resource`` and superseded ones in ``resource_history``: each
        table yields its own newest ``count`` (an index scan either way) and the two are merged.
        """
        clauses = ["tenant = $1"]
        args: list[Any] = [self.tenant]
        if rtype is not None:
            args.append(rtype)
            clauses.append(f"type = ${len(args)}")
        if rid is not None:
            args.append(rid)
            clauses.append(f"id = ${len(args)}")
        if since is not None:
            args.append(since)
            clauses.append(f"last_updated >= ${len(args)}")
        if at is not None:
            args.append(at)
            clauses.append(f"last_updated <= ${len(args)}")
        if before is not None:
            args.extend(before)
            n = len(args)
            clauses.append(
                f"(last_updated, type, id, version) < (${n - 3}, ${n - 2}, ${n - 1}, ${n})"
            )
        args.append(count)
        columns = "type, id, version, last_updated, deleted, content, method"
        where = " AND ".join(clauses)
        order = "ORDER BY last_updated DESC, type DESC, id DESC, version DESC"
        limit = f"LIMIT ${len(args)}"
        rows = await self.conn.fetch(
            f"SELECT {columns} FROM ((SELECT {columns} FROM resource WHERE {where} {order} {limit})"
            f" UNION ALL (SELECT {columns} FROM resource_history WHERE {where} {order} {limit}))"
            f" AS v {order} {limit}",
            *args,
        )
        return [
            Version(
                r["type"],
                r["id"],
                r["version"],
                r["last_updated"],
                r["deleted"],
                r["content"],
                r["method"],
            )
            for r in rows
        ]

    async def existing(self, refs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of ``refs`` name live resources of this tenant (one round trip)."""
        if not refs:
            return set()
        rows = await self.conn.fetch(
            "SELECT r.type, r.id FROM resource r"
            " JOIN unnest($2::text[], $3::text[]) AS q(type, id) ON r.type = q.type AND r.id = q.id"
            " WHERE r.tenant = $1 AND NOT r.deleted",
            self.tenant,
            [t for t, _ in refs],
            [i for _, i in refs],
        )
        return {(r["type"], r["id"]) for r in rows}

    # ----------------------------------------------------------------- writes
    async def reserve_rids(self, n: int) -> None:
        if n > len(self._rids):
            rows = await self.conn.fetch(
                "SELECT nextval('resource_rid_seq') AS rid FROM generate_series(1, $1)",
                n - len(self._rids),
            )
            self._rids.extend(r["rid"] for r in rows)

    async def create(self, resource: dict[str, Any], rid: str | None = None) -> Version:
        """Buffer a new resource with a server-assigned id; written by ``flush``."""
        rtype = resource["resourceType"]
        new = rid or new_id()
        stamped = stamp(resource, new, 1, self.now)
        content = orjson.dumps(stamped).decode()
        version = Version(rtype, new, 1, self.now, False, content, "POST")
        self._pending.append(
            _PendingCreate(self._rids.pop() if self._rids else None, version, stamped)
        )
        return version

    async def flush(self) -> None:
        """Write the buffered creates: one statement for a single resource, COPY for more."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if len(pending) == 1:
            p = pending[0]
            await self.conn.execute(
                _insert_one_sql(),
                *self._one_args(p.version, p.rid, p.resource),
            )
            await self._enqueue_discharges([p.resource])
            return
        unnumbered = [p for p in pending if p.rid is None]
        if unnumbered:
            await self.reserve_rids(len(unnumbered))
            for p in unnumbered:
                p.rid = self._rids.pop()
        index = IndexBatch()
        for p in pending:
            assert p.rid is not None
            index.add(p.rid, self.tenant, p.version.type, p.resource)
        await self.conn.copy_records_to_table(
            "resource",
            records=[
                (
                    self.tenant,
                    p.version.type,
                    p.version.id,
                    p.rid,
                    1,
                    self.now,
                    False,
                    p.version.content,
                )
                for p in pending
            ],
            columns=(
                "tenant",
                "type",
                "id",
                "rid",
                "version",
                "last_updated",
                "deleted",
                "content",
            ),
        )
        await self._write_index(index)
        await self._enqueue_discharges(p.resource for p in pending)

    def _one_args(self, version: Version, srid: int | None, resource: dict[str, Any]) -> list[Any]:
        """Arguments of ``_insert_one_sql`` and ``_replace_one_sql``: the resource row, then its
        index rows as one array per column."""
        return [
            self.tenant,
            version.type,
            version.id,
            srid,
            version.version,
            version.last_updated,
            version.content,
            version.method,
            *index_columns(version.type, resource),
        ]

    async def _enqueue_discharges(self, resources: Any) -> None:
        """Queue finished inpatient stays for scoring, inside the writing transaction."""
        rows = [d for d in (discharge_of(r) for r in resources) if d is not None]
        if rows:
            await self.conn.executemany(
                "INSERT INTO scoring_queue (tenant, patient_id, encounter_id) VALUES ($1, $2, $3)"
                " ON CONFLICT (tenant, encounter_id) DO UPDATE SET enqueued_at = now(),"
                " patient_id = EXCLUDED.patient_id, attempts = 0",
                [(self.tenant, pid, eid) for pid, eid in rows],
            )

    async def _write_index(self, index: IndexBatch) -> None:
        """COPY for a Bundle's worth of rows; a cached prepared INSERT for a single resource.

        asyncpg's COPY asks the server for the table's column types on every call, an extra
        round trip per table that dominates when one resource is written.
        """
        for attr, table, cols in IndexBatch.TABLES:
            rows = getattr(index, attr)
            if len(rows) > _SMALL_WRITE:
                await self.conn.copy_records_to_table(table, records=rows, columns=cols)
            elif rows:
                await self.conn.executemany(_insert_sql(table, cols), rows)

    async def _lock_current(self, rtype: str, rid: str) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.conn.fetchrow(
            "SELECT rid, version, deleted FROM resource"
            " WHERE tenant = $1 AND type = $2 AND id = $3 FOR UPDATE",
            self.tenant,
            rtype,
            rid,
        )
        return row

    async def update(
        self,
        rtype: str,
        rid: str,
        resource: dict[str, Any],
        *,
        if_match: int | None = None,
        method: str = "PUT",
    ) -> tuple[Version, bool]:
        """Write a new version (or create with the client's id); returns (version, created)."""
        await self.flush()
        # Serialise writers of the same id, including two creates-on-update racing.
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"{self.tenant}/{rtype}/{rid}",
        )
        row = await self._lock_current(rtype, rid)
        if if_match is not None:
            if row is None or row["deleted"]:
                raise errors.precondition_failed(
                    f"If-Match names version {if_match} but {rtype}/{rid} has no current version"
                )
            if row["version"] != if_match:
                raise errors.precondition_failed(
                    f"If-Match names version {if_match} but the current version is {row['version']}"
                )
        version_no = 1 if row is None else row["version"] + 1
        stamped = stamp(resource, rid, version_no, self.now)
        content = orjson.dumps(stamped).decode()
        version = Version(rtype, rid, version_no, self.now, False, content, method)
        if row is None:
            srid = self._rids.pop() if self._rids else None
            await self.conn.execute(_insert_one_sql(), *self._one_args(version, srid, stamped))
        else:
            # The version replaced moves to history, its index rows are replaced: one statement.
            await self.conn.execute(
                _replace_one_sql(), *self._one_args(version, row["rid"], stamped)
            )
        await self._enqueue_discharges([stamped])
        return version, row is None

    async def delete(self, rtype: str, rid: str, *, if_match: int | None = None) -> Version | None:
        """Record a deletion version; None when there was nothing live to delete."""
        await self.flush()
        row = await self._lock_current(rtype, rid)
        if if_match is not None and (row is None or row["version"] != if_match):
            raise errors.precondition_failed(f"If-Match does not match {rtype}/{rid}")
        if row is None or row["deleted"]:
            return None
        version_no = row["version"] + 1
        await self.conn.execute(
            _SUPERSEDE_SQL + "UPDATE resource SET version = $4, last_updated = $5, deleted = true,"
            " content = NULL, method = 'DELETE' WHERE tenant = $1 AND type = $2 AND id = $3",
            self.tenant,
            rtype,
            rid,
            version_no,
            self.now,
        )
        await self._delete_index(row["rid"])
        return Version(rtype, rid, version_no, self.now, True, None, "DELETE")

    async def _delete_index(self, srid: int) -> None:
        await self.conn.execute(_DELETE_INDEX_SQL, srid)


_SMALL_WRITE = 64

# The statement part that moves the current version ($1 tenant, $2 type, $3 id) into history
# when a new one replaces it. Every part of a statement sees the same snapshot, so the copy reads
# the row as it was before the UPDATE of the same statement.
_SUPERSEDED_CTE = (
    "superseded AS (INSERT INTO resource_history"
    " (tenant, type, id, version, last_updated, deleted, method, content)"
    " SELECT tenant, type, id, version, last_updated, deleted, method, content FROM resource"
    " WHERE tenant = $1 AND type = $2 AND id = $3)"
)
_SUPERSEDE_SQL = f"WITH {_SUPERSEDED_CTE} "


def _index_deletes(rid: str) -> str:
    """CTEs deleting a resource's rows (``rid``, a parameter) from every index table."""
    return ", ".join(
        f"d{i} AS (DELETE FROM {table} WHERE rid = {rid})"
        for i, (_attr, table, _cols) in enumerate(IndexBatch.TABLES)
    )


def _index_inserts(rid: str, source: str) -> str:
    """CTEs inserting one resource's index rows from the arrays $9... (see ``_one_args``)."""
    ctes = []
    n = 9
    for i, (attr, table, cols) in enumerate(IndexBatch.TABLES):
        types = IndexBatch.VALUE_TYPES[attr]
        arrays = ", ".join(f"${n + k}::{t}[]" for k, t in enumerate(types))
        n += len(types)
        ctes.append(
            f"i{i} AS (INSERT INTO {table} ({', '.join(cols)})"
            f" SELECT {rid}, $1::text, $2::text, u.* FROM {source}unnest({arrays}) AS u)"
        )
    return ", ".join(ctes)


@functools.cache
def _insert_one_sql() -> str:
    """A new resource and its index rows in one round trip ($1 tenant, $2 type, $3 id, $4 rid
    or NULL to draw one from the sequence, $5 version, $6 last_updated, $7 content, $8 method).
    Creates of a Bundle go through COPY instead; a single create would pay a round trip per
    index table that way."""
    return (
        "WITH w AS (INSERT INTO resource"
        " (tenant, type, id, rid, version, last_updated, deleted, content, method)"
        " VALUES ($1, $2, $3, coalesce($4::bigint, nextval('resource_rid_seq')), $5, $6, false,"
        " $7, $8) RETURNING rid), " + _index_inserts("w.rid", "w, ") + " SELECT 1"
    )


@functools.cache
def _replace_one_sql() -> str:
    """A new version over the current one ($4 its rid): the old version into history, the row
    updated, the old index rows deleted and the new ones inserted, in one round trip. The
    DELETEs cannot see the rows the INSERTs add: every part reads the statement's snapshot."""
    return (
        f"WITH {_SUPERSEDED_CTE}, w AS (UPDATE resource SET version = $5, last_updated = $6,"
        " deleted = false, content = $7, method = $8"
        " WHERE tenant = $1 AND type = $2 AND id = $3), "
        + _index_deletes("$4")
        + ", "
        + _index_inserts("$4::bigint", "")
        + " SELECT 1"
    )


# One statement (one round trip) removes a resource's rows from every index table.
_DELETE_INDEX_SQL = f"WITH {_index_deletes('$1')} SELECT 1"


@functools.cache
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"
