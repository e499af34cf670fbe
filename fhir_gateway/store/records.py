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
# Written so that only one plan shape is possible: per referring row, index lookups by rid
# (LATERAL ... OFFSET 0 is never turned into a join, a LIMIT 1 subquery never into a hash). Right
# after a bulk load the planner's statistics are stale and it would otherwise hash the tenant's
# whole resource table on every call.
def _has(table: str, condition: str, rid: str = "refs.rid") -> str:
    return f"(SELECT 1 FROM {table} WHERE {condition.format(rid=rid)} LIMIT 1) IS NOT NULL"


_CLASS_IN = "t.rid = {rid} AND t.param = 'class' AND t.code = ANY"
_IN_WINDOW = (
    "idx_date d JOIN stays s ON d.low BETWEEN s.start - {low}::interval AND {high}::interval"
)


def _dated(param: str, low: str, high: str) -> str:
    window = _IN_WINDOW.replace("{low}", low).replace("{high}", high)
    return _has(window, "d.rid = {rid} AND d.param = " + f"'{param}'")


_FEATURE_SQL = f"""
WITH refs AS MATERIALIZED (
    SELECT DISTINCT x.rid, x.type FROM idx_reference x
    WHERE x.tenant = $1 AND x.target_type = 'Patient' AND x.target_id = $2
      AND x.param = ANY($3) AND x.type = ANY($4)
), stays AS MATERIALIZED (
    -- Each possible index stay: from its admission; to its discharge if finished and over,
    -- else (still running, or dates the index cannot read) without bound.
    SELECT COALESCE(span.low, '-infinity'::timestamptz) AS start,
           CASE WHEN span.high <= now()
                 AND {
    _has("idx_token f", "f.rid = {rid} AND f.param = 'status' AND f.code = 'finished'")
}
                THEN span.high ELSE 'infinity'::timestamptz END AS until
    FROM refs LEFT JOIN LATERAL (
        SELECT d.low, d.high FROM idx_date d WHERE d.rid = refs.rid AND d.param = 'date'
        LIMIT 1
    ) span ON true
    WHERE refs.type = 'Encounter'
      AND ({_has("idx_token t", _CLASS_IN + "($6)")}
           OR ($5::text IS NOT NULL AND {_has("resource e", "e.rid = {rid} AND e.id = $5")}))
), picked AS MATERIALIZED (
    SELECT refs.rid, refs.type, CASE refs.type
      WHEN 'Condition' THEN true
      WHEN 'Encounter' THEN {_has("idx_token t", _CLASS_IN + "($6)")}
        OR ({_has("idx_token t", _CLASS_IN + "($7)")}
            AND {_dated("date", "$9", "s.start + $12")})
      WHEN 'Observation' THEN
        {_has("idx_token t", "t.rid = {rid} AND t.param = 'code' AND t.code = ANY($8)")}
        AND (NOT {_has("idx_date d", "d.rid = {rid} AND d.param = 'date'")}
             OR {_dated("date", "$10", "s.until + $12")})
      WHEN 'Procedure' THEN {_dated("date", "$12", "s.until + $12")}
      WHEN 'MedicationRequest' THEN {
    _has(
        "idx_date d JOIN stays s ON d.low <= s.until + $12::interval",
        "d.rid = {rid} AND d.param = 'authoredon' AND (d.low >= s.start - $11::interval OR "
        + _has("idx_token a", "a.rid = {rid} AND a.param = 'status' AND a.code = 'active'")
        + ")",
    )
}
      ELSE false END AS keep
    FROM refs
)
SELECT r.type, '[' || string_agg(r.content, ',' ORDER BY r.id) || ']' AS items
FROM picked CROSS JOIN LATERAL (
    SELECT r.type, r.id, r.content FROM resource r
    WHERE r.rid = picked.rid AND r.tenant = $1 AND NOT r.deleted OFFSET 0
) r
WHERE (picked.keep OR (picked.type = 'Encounter' AND $5::text IS NOT NULL))
  AND (picked.keep OR r.id = $5)
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
