"""The service against PostgreSQL directly: conditional-interaction lookups and index use."""

from __future__ import annotations

import asyncpg
import pytest

from fhir_gateway.fhir.errors import OperationOutcomeError
from fhir_gateway.search.service import explain, find_ids, search_bundle
from tests.search.pg import SearchDb, delete, put


def patient(pid: str, value: str, family: str = "Doe") -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "urn:mrn", "value": value}],
        "name": [{"family": family}],
    }


def test_find_ids_is_exact_tenant_scoped_and_skips_deleted(search_db: SearchDb) -> None:
    mine, theirs = search_db.tenant(), search_db.tenant()

    async def body(conn: asyncpg.Connection) -> None:
        await put(conn, mine, patient("a", "1"))
        await put(conn, mine, patient("b", "2"))
        await put(conn, mine, patient("c", "1", "Roe"))
        await put(conn, theirs, patient("z", "1"))
        assert await find_ids(conn, mine, "Patient", "identifier=urn:mrn|1") == ["a", "c"]
        assert await find_ids(conn, mine, "Patient", "identifier=urn%3Amrn%7C1&family=roe") == ["c"]
        assert await find_ids(conn, theirs, "Patient", "identifier=urn:mrn|1") == ["z"]
        assert await find_ids(conn, mine, "Patient", "identifier=urn:mrn|3") == []
        await delete(conn, mine, "Patient", "c")
        assert await find_ids(conn, mine, "Patient", "identifier=urn:mrn|1") == ["a"]

    search_db.run(body)


@pytest.mark.parametrize("criteria", ["", "nonsense=1", "_count=5", "birthdate=notadate"])
def test_find_ids_rejects_criteria_that_select_nothing_precise(
    search_db: SearchDb, criteria: str
) -> None:
    tenant = search_db.tenant()

    async def body(conn: asyncpg.Connection) -> None:
        with pytest.raises(OperationOutcomeError) as info:
            await find_ids(conn, tenant, "Patient", criteria)
        assert info.value.status == 400

    search_db.run(body)


def test_updates_move_a_resource_between_results(search_db: SearchDb) -> None:
    tenant = search_db.tenant()

    async def body(conn: asyncpg.Connection) -> None:
        await put(conn, tenant, patient("u", "1", "Before"))
        params = [("family", "after")]
        found = await search_bundle(
            conn, tenant, "Patient", params, base_url="http://x", strict=True
        )
        assert found["total"] == 0
        await put(conn, tenant, patient("u", "1", "After"))
        found = await search_bundle(
            conn, tenant, "Patient", params, base_url="http://x", strict=True
        )
        assert [e["fullUrl"] for e in found["entry"]] == ["http://x/Patient/u"]

    search_db.run(body)


def test_identifier_lookup_uses_the_token_index(search_db: SearchDb) -> None:
    tenant = search_db.tenant()

    async def body(conn: asyncpg.Connection) -> None:
        for i in range(300):
            await put(conn, tenant, patient(f"p{i}", str(i)))
        await conn.execute("ANALYZE")
        plan = await explain(conn, tenant, "Patient", [("identifier", "urn:mrn|42")])
        assert "idx_token_code" in plan, plan
        assert "Seq Scan on idx_token" not in plan, plan

    search_db.run(body)
