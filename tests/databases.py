"""Throwaway databases on the session's embedded PostgreSQL, for tests that need a schema of
their own: an upgrade from an older migration, or tables no other test writes to."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from fhir_gateway.store import migrate as migrations
from fhir_gateway.store.urls import asyncpg_dsn


@asynccontextmanager
async def fresh_database(
    postgres_url: str, *, migrate: bool = True
) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a new database (at the head migration unless ``migrate`` is false),
    dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(asyncpg_dsn(postgres_url), database=name)
        try:
            if migrate:
                await migrations.migrate(conn)
            yield conn
        finally:
            await conn.close()
            await admin.execute(f'DROP DATABASE "{name}"')
    finally:
        await admin.close()


async def migrate_before(conn: asyncpg.Connection, version: str) -> None:
    """Bring a new database to the schema as it was before ``version``, recorded as applied, so
    that ``migrate`` then runs ``version`` and later ones as an upgrade would."""
    await conn.execute(
        "CREATE TABLE schema_migrations (version text PRIMARY KEY, name text NOT NULL,"
        " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for m in migrations.available():
        if m.version < version:
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                m.version,
                m.name,
                m.checksum,
            )
