"""``fhir-gateway backup`` and ``restore`` round-trip a server's data (embedded PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_GATEWAY_")}
    env["PYTHONPATH"] = str(REPO)
    env["FHIR_GATEWAY_API_KEYS"] = "dkfz:k"
    return subprocess.run(
        [sys.executable, "-m", "fhir_gateway", *args, "--data-dir", str(data_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_backup_then_restore_into_a_fresh_data_dir(tmp_path: Path) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    bundle = tmp_path / "p.ndjson"
    bundle.write_text('{"resourceType": "Patient", "id": "backup-me", "gender": "other"}\n')
    assert cli("load", str(bundle), "--tenant", "dkfz", data_dir=source).returncode == 0
    dump = tmp_path / "db.dump"
    out = cli("backup", str(dump), data_dir=source)
    assert out.returncode == 0, out.stderr[-2000:]
    assert dump.stat().st_size > 0
    assert cli("migrate", data_dir=target).returncode == 0
    out = cli("restore", str(dump), data_dir=target)
    assert out.returncode == 0, out.stderr[-2000:]
    check = tmp_path / "check.ndjson"
    check.write_text('{"resourceType": "Patient", "id": "backup-me", "gender": "other"}\n')
    # loading the same resource again makes version 2 only if version 1 came back with the restore
    out = cli("load", str(check), "--tenant", "dkfz", data_dir=target)
    assert out.returncode == 0
    import asyncio

    import asyncpg

    from fhir_gateway.store.embedded import EmbeddedPostgres
    from fhir_gateway.store.urls import asyncpg_dsn

    pg = EmbeddedPostgres(target / "postgres")
    url = pg.start()

    async def versions() -> int:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return int(
                await conn.fetchval(
                    "SELECT version FROM resource WHERE tenant = 'dkfz' AND id = 'backup-me'"
                )
            )
        finally:
            await conn.close()

    try:
        assert asyncio.run(versions()) == 2
    finally:
        pg.stop()
