"""Admin commands for authorization: register SMART Backend Services clients, rotate the
server's signing key, and erase a patient (GDPR art. 17). Kept here so ``fhir_gateway.cli`` only
adds the subcommands."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg


def add_commands(
    sub: Any, run_with_db: Callable[[argparse.Namespace, Callable[..., Any]], int]
) -> None:
    clients = sub.add_parser("clients", help="Register, list or revoke SMART backend clients")
    clients.add_argument("action", choices=["register", "list", "revoke", "rotate-signing-key"])
    clients.add_argument("client_id", nargs="?")
    clients.add_argument("--tenant")
    clients.add_argument("--jwks", type=Path, help="File with the client's public JWKS")
    clients.add_argument("--jwks-url")
    clients.add_argument("--scope", default="system/*.rs", help="Allowed scopes, space-separated")
    clients.add_argument("--data-dir", type=Path, default=None)
    clients.set_defaults(func=lambda a: run_with_db(a, _clients))

    erase = sub.add_parser("erase", help="Hard-delete a patient's compartment and history")
    erase.add_argument("tenant")
    erase.add_argument("patient_id")
    erase.add_argument("--data-dir", type=Path, default=None)
    erase.set_defaults(func=lambda a: run_with_db(a, _erase))


async def _clients(conn: asyncpg.Connection, args: argparse.Namespace) -> None:
    from fhir_gateway.auth import authz_server, signing

    if args.action == "list":
        for r in await authz_server.list_clients(conn):
            state = "revoked" if r["revoked_at"] else "active"
            print(f"{r['client_id']}\t{r['tenant']}\t{state}\t{r['scopes']}")
    elif args.action == "rotate-signing-key":
        print(await signing.rotate(conn))
    elif args.action == "revoke":
        print("revoked" if await authz_server.revoke_client(conn, args.client_id) else "unknown")
    else:
        if not args.client_id or not args.tenant or not (args.jwks or args.jwks_url):
            raise SystemExit("register needs CLIENT_ID, --tenant and --jwks or --jwks-url")
        jwks = json.loads(args.jwks.read_text()) if args.jwks else None
        await authz_server.register_client(
            conn, args.client_id, args.tenant, args.scope, jwks=jwks, jwks_url=args.jwks_url
        )
        print(f"registered {args.client_id} for tenant {args.tenant}")


async def _erase(conn: asyncpg.Connection, args: argparse.Namespace) -> None:
    from fhir_gateway.auth.erasure import erase_patient
    from fhir_gateway.auth.principal import Principal

    admin = Principal(tenant=args.tenant, client_id="cli-admin", scopes=frozenset(), kind="cli")
    removed = await erase_patient(conn, args.tenant, args.patient_id, admin)
    print(f"erased {len(removed)} resource(s)")
