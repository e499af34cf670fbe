"""``fhir-gateway``: serve, migrate, load, and tenant administration.

``serve`` owns the embedded PostgreSQL when no external database is configured: it starts the
server before the app and stops it after, so every uvicorn worker shares one database.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fhir_gateway.settings import Settings
from fhir_gateway.store.embedded import EmbeddedPostgres


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    for name in ("host", "port", "data_dir"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)  # type: ignore[arg-type]


def _database(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    if settings.database_url:
        return settings.database_url, None
    embedded = EmbeddedPostgres(Path(settings.data_dir) / "postgres")
    url = embedded.start()
    # Callers may already be inside an event loop (the direct loader): run it on its own thread.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _quiet_server_log(url)).result()
    return url, embedded


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The database URL for a command; an embedded server lives exactly as long as the block."""
    url, embedded = _database(settings)
    try:
        yield url
    finally:
        if embedded is not None:
            embedded.stop()


async def _quiet_server_log(url: str) -> None:
    """PostgreSQL quotes the offending statement and values in its log on every error, and a
    client's bad value can be patient data; the embedded server logs only fatal problems."""
    import asyncpg

    from fhir_gateway.store.urls import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("ALTER SYSTEM SET log_min_error_statement = 'panic'")
        await conn.execute("ALTER SYSTEM SET log_min_messages = 'fatal'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


_ASGI_APP = "fhir_gateway.asgi:app"


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fhir_gateway import serving
    from fhir_gateway.bootstrap import load_demo, prepare
    from fhir_gateway.observability.logging import uvicorn_log_config
    from fhir_gateway.observability.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir()

    settings = _settings(args)
    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit lets the
    # database() block below stop the embedded PostgreSQL instead of dying with it still running.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with database(settings) as url:
        fresh = asyncio.run(prepare(settings, url))
        if fresh:
            print("API keys generated for this installation (shown once, stored hashed):")
            for tenant, key in fresh.items():
                print(f"  {tenant}: {key}")
            sys.stdout.flush()
        if args.demo:
            n = asyncio.run(load_demo(url, settings.tenant_names(), settings.fhir_base_url()))
            print(f"Demo cohort ready ({n} resources loaded now).")
        os.environ["FHIR_GATEWAY_DATABASE_URL"] = url
        os.environ["FHIR_GATEWAY_HOST"] = settings.host
        os.environ["FHIR_GATEWAY_PORT"] = str(settings.port)
        print(f"FHIR base: {settings.fhir_base_url()}", flush=True)
        options: dict[str, Any] = {
            "host": settings.host,
            "port": settings.port,
            "workers": args.workers,
            "log_level": settings.log_level.lower(),
            "log_config": uvicorn_log_config(settings.log_level),
            "timeout_graceful_shutdown": 20,
            "access_log": False,  # RequestContextMiddleware writes the access line
        }
        if args.workers > 1 and serving.supported():
            try:
                serving.run_workers(uvicorn.Config(_ASGI_APP, **options))
            except OSError as exc:
                print(f"Cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
                return 1
        else:
            uvicorn.run(_ASGI_APP, **options)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from fhir_gateway.bootstrap import prepare

    settings = _settings(args)
    with database(settings) as url:
        asyncio.run(prepare(settings, url))
    print("Database schema is at head.")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from fhir_gateway.loader import load_paths

    return asyncio.run(load_paths(args))


def cmd_tenants(args: argparse.Namespace) -> int:
    from fhir_gateway.auth.api_keys import rotate_key

    async def action(conn: Any, args: argparse.Namespace) -> None:
        if args.action == "list":
            rows = await conn.fetch(
                "SELECT t.name, count(k.key_hash) FILTER (WHERE k.revoked_at IS NULL) AS keys"
                " FROM tenant t LEFT JOIN api_key k ON k.tenant = t.name GROUP BY t.name"
                " ORDER BY t.name"
            )
            for r in rows:
                print(f"{r['name']}\t{r['keys']} active key(s)")
        else:
            print(await rotate_key(conn, args.tenant))

    return _run_with_db(args, action)


def cmd_backup(args: argparse.Namespace) -> int:
    from fhir_gateway.store.backup import backup, restore

    with database(_settings(args)) as url:
        if args.command == "backup":
            backup(url, args.file)
            print(f"Backup written to {args.file}")
        else:
            restore(url, args.file)
            print(f"Restored from {args.file}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhir-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="Where the embedded PostgreSQL keeps its data",
        )

    serve = sub.add_parser("serve", help="Run the HTTP server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument(
        "--workers", type=int, default=int(os.environ.get("FHIR_GATEWAY_WORKERS", "1"))
    )
    serve.add_argument("--demo", action="store_true", help="Load the demo cohort")
    common(serve)
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="Bring the database schema to head")
    common(migrate)
    migrate.set_defaults(func=cmd_migrate)

    load = sub.add_parser("load", help="Load Bundles (.json[.gz]) and NDJSON (.ndjson[.gz])")
    load.add_argument("paths", nargs="+", type=Path)
    load.add_argument(
        "--url", help="FHIR base of a running server; default: straight into the store"
    )
    load.add_argument("--api-key", default=os.environ.get("FHIR_GATEWAY_API_KEY"))
    load.add_argument("--tenant", default="dkfz", help="Tenant when loading into the store")
    common(load)
    load.set_defaults(func=cmd_load)

    for name, text in (
        ("backup", "Dump the database (pg_dump custom format)"),
        ("restore", "Restore a dump made by 'backup'"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("file", type=Path)
        common(p)
        p.set_defaults(func=cmd_backup)

    tenants = sub.add_parser("tenants", help="List tenants or rotate a tenant's API key")
    tenants.add_argument("action", choices=["list", "rotate-key"])
    tenants.add_argument("tenant", nargs="?")
    common(tenants)
    tenants.set_defaults(func=cmd_tenants)

    from fhir_gateway.auth.cli import add_commands

    add_commands(sub, _run_with_db)
    return parser


def _run_with_db(args: argparse.Namespace, action: object) -> int:
    """Run ``action(conn, args)`` against the configured (or embedded) database."""
    import asyncpg

    from fhir_gateway.bootstrap import prepare
    from fhir_gateway.store.urls import asyncpg_dsn

    settings = _settings(args)

    async def run(url: str) -> None:
        await prepare(settings, url)
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await action(conn, args)  # type: ignore[operator]
        finally:
            await conn.close()

    with database(settings) as url:
        asyncio.run(run(url))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("FHIR_GATEWAY_LOG_LEVEL", "INFO"))
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
