"""The discharge worker: each queued discharge is scored in its own savepoint, the scored ones
leave the queue together, a failing one stays queued with its error for a later attempt."""

from __future__ import annotations

import asyncio

import asyncpg

from fhir_gateway.app import _load_predictor
from fhir_gateway.scoring.worker import drain_once
from fhir_gateway.settings import Settings
from fhir_gateway.store.repository import Repository
from tests.databases import fresh_database


class _OneConnection:
    """What ``drain_once`` needs of the pool: a connection to borrow."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    def connection(self) -> _OneConnection:
        return self

    async def __aenter__(self) -> asyncpg.Connection:
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        return None


def test_drain_scores_each_discharge_apart(postgres_url: str) -> None:
    predictor = _load_predictor(Settings(database_url=postgres_url))

    async def main() -> None:
        async with fresh_database(postgres_url) as conn:
            async with conn.transaction():
                repo = Repository(conn, "t")
                for pid in ("p1", "p2"):
                    await repo.update(
                        "Patient",
                        pid,
                        {
                            "resourceType": "Patient",
                            "id": pid,
                            "gender": "female",
                            "birthDate": "1950-02-03",
                        },
                    )
                    await repo.update(
                        "Encounter",
                        f"e-{pid}",
                        {
                            "resourceType": "Encounter",
                            "id": f"e-{pid}",
                            "status": "finished",
                            "class": {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                "code": "IMP",
                            },
                            "subject": {"reference": f"Patient/{pid}"},
                            "period": {"start": "2020-01-01", "end": "2020-01-05"},
                        },
                    )
                # A discharge whose patient is gone by the time it is scored.
                await conn.execute(
                    "INSERT INTO scoring_queue (tenant, patient_id, encounter_id)"
                    " VALUES ('t', 'nobody', 'e-nobody')"
                )
            assert await drain_once(_OneConnection(conn), predictor) == 3
            left = await conn.fetch(
                "SELECT encounter_id, attempts, last_error FROM scoring_queue ORDER BY 1"
            )
            assert [(r["encounter_id"], r["attempts"]) for r in left] == [("e-nobody", 1)]
            assert left[0]["last_error"]
            scored = await conn.fetch(
                "SELECT content::jsonb #>> '{subject,reference}' AS subject FROM resource"
                " WHERE type = 'RiskAssessment' ORDER BY 1"
            )
            assert [r["subject"] for r in scored] == ["Patient/p1", "Patient/p2"]

    asyncio.run(main())
