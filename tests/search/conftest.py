"""The session's embedded PostgreSQL, migrated, for search tests that talk SQL directly."""

from __future__ import annotations

import pytest

from tests.search.pg import SearchDb


@pytest.fixture(scope="session")
def search_db(postgres_url: str) -> SearchDb:
    """The session's embedded PostgreSQL, migrated to head (tests use fresh tenants)."""
    from fhir_gateway.store.migrate import migrate
    from fhir_gateway.store.urls import asyncpg_dsn

    db = SearchDb(asyncpg_dsn(postgres_url))
    db.run(migrate)
    return db
