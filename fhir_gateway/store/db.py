"""The one database handle of the process: a SQLAlchemy async engine over asyncpg.

SQLAlchemy owns pooling and the small relational tables; the resource store's hot paths take
the raw asyncpg connection behind a pooled connection so they can use COPY and prepared
statements without an ORM in the way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from fhir_gateway.store.urls import sqlalchemy_url


class Database:
    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            sqlalchemy_url(url),
            # Connections beyond pool_size are closed when handed back, and a new PostgreSQL
            # backend starts with cold catalog and plan caches: under a burst above the pool
            # size that churn cost more database CPU than the queries. The pool is therefore
            # sized for the expected concurrency per worker, with a small overflow for spikes.
            pool_size=pool_size,
            max_overflow=max(2, pool_size // 2),
            pool_pre_ping=False,
            # Every caller runs its statements in its own asyncpg transaction block (or in
            # autocommit), so a returned connection is never mid-transaction: skip the extra
            # ROLLBACK round trip SQLAlchemy would send on each check-in.
            pool_reset_on_return=None,
        )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled raw asyncpg connection; callers open their own transactions on it.

        Checked out of the engine's pool directly rather than through ``engine.connect()``: the
        SQLAlchemy ``Connection`` around it would never be used, and building it cost three
        times the checkout itself on every request.
        """
        fairy = await greenlet_spawn(self.engine.sync_engine.pool.connect)
        try:
            driver = fairy.driver_connection
            assert driver is not None
            yield driver
        finally:
            await greenlet_spawn(fairy.close)

    def pool_in_use(self) -> int:
        pool = self.engine.pool
        checked_out = getattr(pool, "checkedout", None)
        return int(checked_out()) if callable(checked_out) else 0

    async def dispose(self) -> None:
        await self.engine.dispose()
