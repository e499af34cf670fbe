"""Fetching a patient's record by the reverse reference index.

Both ``$everything`` and the readmission-risk operation need "every resource pointing at this
patient"; the reference index answers that with one indexed query instead of a search per type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

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


# The feature record: the Patient, its Conditions (they count whenever recorded), its possible
# index stays (inpatient Encounters, or the one named), and of the other visits, labs, procedures
# and orders only those inside the windows around some possible index stay. Which stay is scored
# is the model's decision, so every possible one gets its window; a patient has few, and the
# union is still a fraction of the history. Each type comes back as one JSON array in id order,
# so the driver hands over a handful of strings and each is decoded once.
_STAY_END = (
    # The stay's discharge, if it is finished and over; else it may still run: no upper bound.
    "CASE WHEN d.high <= now() AND EXISTS (SELECT 1 FROM idx_token s WHERE s.rid = e.rid"
    " AND s.param = 'status' AND s.code = 'finished') THEN d.high"
    " ELSE 'infinity'::timestamptz END"
)
_FEATURE_SQL = f"""
WITH refs AS MATERIALIZED (
    SELECT DISTINCT x.rid, x.type FROM idx_reference x
    WHERE x.tenant = $1 AND x.target_type = 'Patient' AND x.target_id = $2
      AND x.param = ANY($3) AND x.type = ANY($4)
), stays AS MATERIALIZED (
    SELECT COALESCE(d.low, '-infinity'::timestamptz) AS start,
           COALESCE({_STAY_END}, 'infinity'::timestamptz) AS until
    FROM refs JOIN resource e ON e.rid = refs.rid
    LEFT JOIN idx_date d ON d.rid = e.rid AND d.param = 'date'
    WHERE refs.type = 'Encounter' AND e.tenant = $1 AND NOT e.deleted
      AND (e.id = $5 OR EXISTS (SELECT 1 FROM idx_token t WHERE t.rid = e.rid
           AND t.param = 'class' AND t.code = ANY($6)))
)
SELECT r.type, '[' || string_agg(r.content, ',' ORDER BY r.id) || ']' AS items
FROM refs JOIN resource r ON r.rid = refs.rid
WHERE r.tenant = $1 AND NOT r.deleted AND CASE refs.type
  WHEN 'Condition' THEN true
  WHEN 'Encounter' THEN r.id = $5
    OR EXISTS (SELECT 1 FROM idx_token t WHERE t.rid = r.rid AND t.param = 'class'
               AND t.code = ANY($6))
    OR (EXISTS (SELECT 1 FROM idx_token t WHERE t.rid = r.rid AND t.param = 'class'
                AND t.code = ANY($7))
        AND EXISTS (SELECT 1 FROM idx_date d JOIN stays s
                    ON d.low BETWEEN s.start - $9::interval AND s.start + $12::interval
                    WHERE d.rid = r.rid AND d.param = 'date'))
  WHEN 'Observation' THEN
    EXISTS (SELECT 1 FROM idx_token t WHERE t.rid = r.rid AND t.param = 'code'
            AND t.code = ANY($8))
    AND (NOT EXISTS (SELECT 1 FROM idx_date d WHERE d.rid = r.rid AND d.param = 'date')
         OR EXISTS (SELECT 1 FROM idx_date d JOIN stays s
                    ON d.low BETWEEN s.start - $10::interval AND s.until + $12::interval
                    WHERE d.rid = r.rid AND d.param = 'date'))
  WHEN 'Procedure' THEN
    EXISTS (SELECT 1 FROM idx_date d JOIN stays s
            ON d.low BETWEEN s.start - $12::interval AND s.until + $12::interval
            WHERE d.rid = r.rid AND d.param = 'date')
  WHEN 'MedicationRequest' THEN
    EXISTS (SELECT 1 FROM idx_date d JOIN stays s ON d.low <= s.until + $12::interval
            WHERE d.rid = r.rid AND d.param = 'authoredon'
              AND (d.low >= s.start - $11::interval
                   OR EXISTS (SELECT 1 FROM idx_token t WHERE t.rid = r.rid
                              AND t.param = 'status' AND t.code = 'active')))
  ELSE false END
GROUP BY r.type
UNION ALL
SELECT type, '[' || content || ']' FROM resource
WHERE tenant = $1 AND type = 'Patient' AND id = $2 AND NOT deleted
"""
_FEATURE_TYPES = ["Encounter", "Condition", "Observation", "Procedure", "MedicationRequest"]


@dataclass(frozen=True)
class FeatureScope:
    """What a model reads around a possible index stay (see ``feature_record``).

    Windows run from that far before the stay's admission to its discharge, except visits
    (up to the admission) and orders (any time before discharge while still active); ``margin``
    widens every bound so index rounding and zone-less times never drop a resource the model
    would read; the model applies its exact windows itself.
    """

    index_class_codes: Sequence[str]  # Encounter.class codes of a possible index stay
    visit_class_codes: Sequence[str]  # other Encounter.class codes the visit counts read
    observation_codes: Sequence[str]
    visit_lookback: timedelta
    lab_lookback: timedelta
    order_lookback: timedelta
    margin: timedelta


async def feature_record(
    conn: asyncpg.Connection,
    tenant: str,
    patient_id: str,
    scope: FeatureScope,
    *,
    encounter_id: str | None = None,
) -> dict[str, list[Mapping[str, Any]]]:
    """The part of a patient's record a model reading ``scope`` can need, decoded and grouped
    by type (each type in id order, as ``patient_record`` has them); ``encounter_id`` names an
    index stay to include whatever its class. No "Patient" key when the Patient is not live."""
    m = scope.margin
    rows = await conn.fetch(
        _FEATURE_SQL,
        tenant,
        patient_id,
        _PATIENT_PARAMS,
        _FEATURE_TYPES,
        encounter_id,
        list(scope.index_class_codes),
        list(scope.visit_class_codes),
        list(scope.observation_codes),
        scope.visit_lookback + m,
        scope.lab_lookback + m,
        scope.order_lookback + m,
        m,
    )
    return {r["type"]: orjson.loads(r["items"]) for r in rows}
