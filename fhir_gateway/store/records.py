"""Fetching a patient's record by the reverse reference index.

Both ``$everything`` and the readmission-risk operation need "every resource pointing at this
patient"; the reference index answers that with one indexed query instead of a search per type.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from fhir_gateway.store.repository import Version

_PATIENT_PARAMS = ["patient", "subject", "beneficiary", "individual", "focus", "requester"]


async def patient_record(
    conn: asyncpg.Connection,
    tenant: str,
    patient_id: str,
    *,
    types: Sequence[str] | None = None,
    observation_codes: Sequence[str] | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[Version]:
    """The Patient and the live resources that reference it (optionally only ``types``).

    ``observation_codes`` restricts Observations to those codes, so a model that reads a few
    labs does not pull a patient's whole vital-sign history.
    """
    # Driven from the reference index, so the cost follows the size of this patient's record,
    # never the size of the table (an OR between "the Patient" and "what points at it" would
    # make PostgreSQL scan every resource of the tenant).
    args: list[object] = [tenant, patient_id, _PATIENT_PARAMS]
    type_clause = ""
    if types is not None:
        args.append(list(types))
        type_clause = f" AND x.type = ANY(${len(args)})"
    obs_clause = ""
    if observation_codes is not None:
        args.append(list(observation_codes))
        obs_clause = (
            " AND (r.type <> 'Observation' OR EXISTS (SELECT 1 FROM idx_token t"
            " WHERE t.rid = r.rid AND t.param = 'code' AND t.code = ANY"
            f"(${len(args)})))"
        )
    since_clause = ""
    if since is not None:
        args.append(since)
        since_clause = f" AND r.last_updated >= ${len(args)}"
    limit_clause = ""
    if limit is not None:
        args.append(limit)
        limit_clause = f" LIMIT ${len(args)}"
    columns = "r.type, r.id, r.version, r.last_updated, r.content"
    sql = (
        f"SELECT * FROM (SELECT {columns} FROM resource r"
        f" WHERE r.tenant = $1 AND r.type = 'Patient' AND r.id = $2 AND NOT r.deleted"
        f"{since_clause}"
        f" UNION ALL SELECT {columns} FROM (SELECT DISTINCT x.rid FROM idx_reference x"
        "  WHERE x.tenant = $1 AND x.target_type = 'Patient' AND x.target_id = $2"
        f"  AND x.param = ANY($3){type_clause}) AS refs"
        " JOIN resource r ON r.rid = refs.rid"
        " WHERE r.tenant = $1 AND NOT r.deleted AND NOT (r.type = 'Patient' AND r.id = $2)"
        f"{obs_clause}{since_clause}) AS r"
        f" ORDER BY (r.type <> 'Patient'), r.type, r.id{limit_clause}"
    )
    rows = await conn.fetch(sql, *args)
    return [
        Version(r["type"], r["id"], r["version"], r["last_updated"], False, r["content"])
        for r in rows
    ]
