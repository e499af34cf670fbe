"""Reference searches stay index-backed on the single reference index of migration 0006.

One index keyed by the target id serves search by reference and the reverse lookups; references
kept as written (absolute URLs) are found through the partial url index.
"""

from __future__ import annotations

import asyncpg

from fhir_gateway.search.service import explain, search_bundle
from tests.search.pg import SearchDb, put

ELSEWHERE = "http://elsewhere.example/fhir/Patient/"


def observation(oid: str, subject: str) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": subject},
    }


def test_reference_searches_use_the_reference_indexes(search_db: SearchDb) -> None:
    tenant = search_db.tenant()

    async def body(conn: asyncpg.Connection) -> None:
        for i in range(400):
            subject = f"{ELSEWHERE}x{i // 10 % 4}" if i % 10 == 0 else f"Patient/p{i % 100}"
            await put(conn, tenant, observation(f"o{i}", subject))
        await conn.execute("ANALYZE idx_reference")

        async def matches(params: list[tuple[str, str]], index: str) -> list[str]:
            """The ids found, after checking the plan goes through ``index``."""
            plan = await explain(conn, tenant, "Observation", params)
            assert index in plan, plan
            assert "Seq Scan on idx_reference" not in plan, plan
            found = await search_bundle(
                conn, tenant, "Observation", params, base_url="http://x", strict=True
            )
            return sorted(e["fullUrl"].rsplit("/", 1)[1] for e in found["entry"])

        assert await matches([("subject", "Patient/p7")], "idx_reference_target") == sorted(
            f"o{i}" for i in range(400) if i % 100 == 7 and i % 10
        )
        assert await matches([("subject", f"{ELSEWHERE}x3")], "idx_reference_url") == sorted(
            f"o{i}" for i in range(0, 400, 10) if i // 10 % 4 == 3
        )

        reverse = await conn.fetch(
            "EXPLAIN SELECT rid FROM idx_reference WHERE tenant = $1 AND target_type = 'Patient'"
            " AND target_id = 'p7'",
            tenant,
        )
        text = "\n".join(r[0] for r in reverse)
        assert "idx_reference_target" in text, text

    search_db.run(body)
