"""Derived search parameters: not stored, answered exactly from the rows they repeat.

A derived parameter's rows, as the full extractor produces them, must equal what its ``Source``
reads from the stored rows (the search SQL reads nothing else), on every Synthea resource, every
resource of the search data set and references written in every way FHIR allows. Searches through
HTTP on these parameters are in ``test_parameters_http`` and ``test_results_http``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from fhir_gateway.search.definitions import search_parameters, searchable_types
from fhir_gateway.search.derived import Source, derived_parameters, patient_reference_params
from fhir_gateway.search.index import IndexRows, extract, extract_stored
from fhir_gateway.search.service import find_ids
from fhir_gateway.store import migrate as migrations
from tests.conftest import SHARED_DATA
from tests.databases import fresh_database, migrate_before
from tests.search.dataset import resources as dataset_resources

_TABLES = ("token", "string", "date", "reference", "quantity")
MIGRATION = (
    Path(__file__).resolve().parents[2]
    / "fhir_gateway"
    / "store"
    / "migrations"
    / "0009_derived_parameters.sql"
)


def _rows(rows: IndexRows) -> Iterator[tuple[str, tuple[Any, ...]]]:
    for table in _TABLES:
        for row in getattr(rows, table):
            yield table, tuple(row)


def _from_source(stored: IndexRows, source: Source) -> set[tuple[str, tuple[Any, ...]]]:
    return {
        (table, row[1:])
        for table, row in _rows(stored)
        if row[0] in source.params
        and (source.target_type is None or (table == "reference" and row[1] == source.target_type))
    }


def assert_derivable(resource: Mapping[str, Any]) -> int:
    """Checks one resource; returns how many derived parameters had values in it."""
    rtype = resource["resourceType"]
    derived = derived_parameters(rtype)
    full, stored = extract(rtype, resource), extract_stored(rtype, resource)
    kept = [(t, r) for t, r in _rows(full) if r[0] not in derived]
    assert list(_rows(stored)) == kept, f"{rtype}: stored rows differ from the full extraction"
    with_values = 0
    for code, source in derived.items():
        own = {(t, r[1:]) for t, r in _rows(full) if r[0] == code}
        assert own == _from_source(stored, source), f"{rtype}.{code}: {json.dumps(resource)[:800]}"
        with_values += bool(own)
    return with_values


def test_the_derived_parameters_are_the_repeating_ones() -> None:
    found = {
        (t, code, source)
        for t in searchable_types()
        for code, source in derived_parameters(t).items()
    }
    assert ("Observation", "patient", Source(("subject",), "Patient")) in found
    assert ("Provenance", "patient", Source(("target",), "Patient")) in found
    assert ("Encounter", "practitioner", Source(("participant",), "Practitioner")) in found
    assert ("Observation", "combo-code", Source(("code", "component-code"))) in found
    assert (
        "Observation",
        "combo-value-quantity",
        Source(("component-value-quantity", "value-quantity")),
    ) in found
    # Parameters with elements of their own stay stored.
    assert "patient" not in derived_parameters("Claim")
    assert "code" not in derived_parameters("Observation")
    for t, code, source in found:
        defs = search_parameters(t)
        assert all(p in defs and p not in derived_parameters(t) for p in source.params), (t, code)


def test_the_migration_lists_exactly_the_restricted_parameters() -> None:
    found = set(
        re.findall(
            r"\('([A-Za-z]+)', '([a-z-]+)', '([a-z-]+)', '([A-Za-z]+)'\)", MIGRATION.read_text()
        )
    )
    assert found == {
        (t, code, source.params[0], source.target_type)
        for t in searchable_types()
        for code, source in derived_parameters(t).items()
        if source.target_type is not None
    }


def test_migration_0009_keeps_rows_written_before_it_findable(postgres_url: str) -> None:
    """Rows written before 0009 recorded no target type for an unresolved reference that only
    declared one; the stored 'patient' row beside it said it was a Patient."""

    async def run() -> None:
        async with fresh_database(postgres_url, migrate=False) as conn:
            await migrate_before(conn, "0009")
            patient_urn, group_urn = "urn:uuid:" + "1" * 32, "urn:uuid:" + "2" * 32
            # (rid, id, the reference rows the writer of the time stored)
            stored = [
                (
                    1,
                    "o1",
                    [("subject", None, None, patient_urn), ("patient", None, None, patient_urn)],
                ),
                (2, "o2", [("subject", "Patient", "p1", None), ("patient", "Patient", "p1", None)]),
                (3, "o3", [("subject", None, None, group_urn)]),
            ]
            for rid, rid_text, refs in stored:
                await conn.execute(
                    "INSERT INTO resource (tenant, type, id, rid, version, last_updated, content)"
                    " VALUES ('t', 'Observation', $1, $2, 1, now(), '{}')",
                    rid_text,
                    rid,
                )
                await conn.executemany(
                    "INSERT INTO idx_reference VALUES ($1, 't', 'Observation', $2, $3, $4, $5)",
                    [(rid, *ref) for ref in refs],
                )

            assert "0009" in await migrations.migrate(conn)

            async def ids(query: str) -> set[str]:
                return set(await find_ids(conn, "t", "Observation", query))

            assert await ids(f"patient={patient_urn}") == {"o1"}
            assert await ids("patient=p1") == {"o2"}
            assert await ids(f"patient={group_urn}") == set()
            assert await ids(f"subject={group_urn}") == {"o3"}
            assert await ids("patient:missing=true") == {"o3"}

    asyncio.run(run())


def test_patient_reference_params_add_the_sources() -> None:
    assert patient_reference_params(["patient"], ["Provenance"]) == ["patient", "target"]
    assert patient_reference_params(["patient"], ["Claim"]) == ["patient"]
    # Restricted to Practitioner: no Patient reference can come from it.
    assert patient_reference_params(["practitioner"], ["Encounter"]) == ["practitioner"]


def test_references_written_every_way() -> None:
    def observation(subject: Any) -> dict[str, Any]:
        return {"resourceType": "Observation", "status": "final", "subject": subject}

    subjects: list[Any] = [
        {"reference": "Patient/p1"},
        {"reference": "Patient/p1/_history/3"},
        {"reference": "http://example.org/fhir/Patient/p1"},
        {"reference": "urn:uuid:3b0a9f16-4cba-4cb0-9f6e-0a1b2c3d4e5f", "type": "Patient"},
        {"reference": "urn:uuid:3b0a9f16-4cba-4cb0-9f6e-0a1b2c3d4e5f"},
        {"reference": "p1", "type": "Patient"},
        {"reference": "Group/g1", "type": "Patient"},
        {"reference": "Group/g1"},
        {"reference": "#contained", "type": "Patient"},
        {"reference": ""},
        {"type": "Patient", "identifier": {"value": "x"}},
        {"display": "someone"},
        {"reference": "a/Patient/p1"},
        "Patient/p1",
    ]
    with_values = sum(assert_derivable(observation(s)) for s in subjects)
    assert with_values >= 4
    assert assert_derivable(observation({"reference": "Patient/p1"})) == 1


def test_the_search_data_set() -> None:
    assert sum(assert_derivable(r) for r in dataset_resources().values()) >= 5


@pytest.mark.shared_data
def test_every_synthea_resource() -> None:
    folder = SHARED_DATA / "synthea-r4"
    paths = sorted(folder.glob("*.json.gz")) if folder.is_dir() else []
    if not paths:
        pytest.skip("shared data not available (synthea-r4): the clone has no ../shared")
    with_values = 0
    for path in paths:
        for entry in json.loads(gzip.decompress(path.read_bytes()))["entry"]:
            with_values += assert_derivable(entry["resource"])
    assert with_values > 10_000
