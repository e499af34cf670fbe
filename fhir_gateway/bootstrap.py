"""One-time database preparation shared by ``serve``, ``migrate`` and the tests.

Migrating, creating tenants, issuing first-start keys and loading the demo cohort happen
before the HTTP server accepts traffic, in one place, so every worker starts from the same state.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from fhir_gateway.auth.api_keys import ensure_tenants, generate_first_keys, parse_env_keys
from fhir_gateway.settings import Settings
from fhir_gateway.store.migrate import migrate
from fhir_gateway.store.urls import asyncpg_dsn


async def prepare(settings: Settings, url: str) -> dict[str, str]:
    """Migrate and make sure tenants exist; returns freshly generated keys {tenant: key}."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await migrate(conn)
        await ensure_tenants(conn, settings.tenant_names())
        if parse_env_keys(settings.api_keys):
            return {}
        return await generate_first_keys(conn, settings.tenant_names())
    finally:
        await conn.close()


def _stable_patient_id(bundle: dict[str, Any], pid: str) -> None:
    """Demo patients get fixed ids (demo-01, ...) so documented examples can name them."""
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "Patient":
            resource["id"] = pid
            entry["request"] = {"method": "PUT", "url": f"Patient/{pid}"}


async def load_demo(url: str, tenants: list[str], base_url: str) -> int:
    """Load the demo cohort into each tenant once; returns resources loaded now."""
    from fhir_gateway.bundles import TransactionProcessor, parse_entries
    from fhir_gateway.fhir.parsing import check_resource
    from risk_model.cohort import demo_bundles

    conn = await asyncpg.connect(asyncpg_dsn(url))
    loaded = 0
    try:
        for tenant in tenants:
            have = await conn.fetchval(
                "SELECT count(*) FROM idx_token WHERE tenant = $1 AND type = 'Patient'"
                " AND param = 'identifier' AND system = 'urn:fhir-gateway:demo'",
                tenant,
            )
            if have:
                continue
            bundles: list[dict[str, Any]] = demo_bundles()
            for number, bundle in enumerate(bundles, 1):
                _stable_patient_id(bundle, f"demo-{number:02d}")
                for e in bundle.get("entry", []):
                    check_resource(e["resource"])
                async with conn.transaction():
                    entries = parse_entries(bundle)
                    await TransactionProcessor(conn, tenant, base_url).run(entries)
                    loaded += len(entries)
    finally:
        await conn.close()
    return loaded
