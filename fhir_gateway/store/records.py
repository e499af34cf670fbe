"""Fetching a patient's record by the reverse reference index.

Both ``$everything`` and the readmission-risk operation need "every resource pointing at this
patient"; the reference index answers that with one indexed query instead of a search per type.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from fhir_gateway.store.repository import Version

_PATIENT_PARAMS = ("patient", "subject", "beneficiary", "individual", "focus", "requester")


@functools.cache
def _stored_patient_params() -> list[str]:
    from fhir_gateway.search.derived import patient_reference_params

    return patient_reference_params(_PATIENT_PARAMS)


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
    args: list[object] = [tenant, patient_id, _stored_patient_params()]
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
#
# Set-wise, never row by row: the patient's resource ids are gathered per type into arrays once,
# and each index table is then read with one `rid = ANY(array)` scan per question (the classes of
# the Encounters, their dates, which Observations carry a wanted code, ...), so the executor runs
# a dozen index scans per call instead of a correlated subquery per resource. The windows are then
# decided on those small in-memory sets, and content is read only for the survivors.
#
# Right after a bulk load the planner has no statistics: it then takes `rid = ANY(...)` to match
# thousands of rows and would rather walk idx_token_code or idx_date_low through the whole tenant
# on a param or code condition (skip scan makes their trailing columns usable). So besides the
# rid, every condition on those tables is written `(column = value) IS TRUE`: the same test (the
# columns are NOT NULL) that no index can serve, which leaves the rid indexes as the only way in;
# the one correlated look-up is a LIMIT 1 subquery, which is never turned into a hashed scan of
# the table. The lab look-up is the exception: it must name its codes so that the partial index
# of migration 0007 (small, and the cheapest way in) applies.
_IDS = "(SELECT {} FROM ids)::bigint[]"
_IN_A_STAY = "EXISTS (SELECT 1 FROM stays s WHERE d.low BETWEEN s.start - {} AND {})"

_FEATURE_SQL = f"""
WITH refs AS MATERIALIZED (
    SELECT x.rid, x.type FROM idx_reference x
    WHERE x.tenant = $1 AND x.target_type = 'Patient' AND x.target_id = $2
      AND x.param = ANY({{params}}) AND x.type = ANY({{types}})
), ids AS MATERIALIZED (
    SELECT array_agg(DISTINCT rid) FILTER (WHERE type = 'Encounter') AS enc,
           array_agg(DISTINCT rid) FILTER (WHERE type = 'Condition') AS cond,
           array_agg(DISTINCT rid) FILTER (WHERE type = 'Observation') AS obs,
           array_agg(DISTINCT rid) FILTER (WHERE type = 'Procedure') AS proc,
           array_agg(DISTINCT rid) FILTER (WHERE type = 'MedicationRequest') AS med
    FROM refs
), enc_class AS MATERIALIZED (
    SELECT t.rid, t.code FROM idx_token t
    WHERE t.rid = ANY({_IDS.format("enc")}) AND (t.param = 'class') IS TRUE
), enc_date AS MATERIALIZED (
    SELECT d.rid, d.low, d.high FROM idx_date d
    WHERE d.rid = ANY({_IDS.format("enc")}) AND (d.param = 'date') IS TRUE
), named AS MATERIALIZED (
    SELECT e.rid FROM resource e
    WHERE $3::text IS NOT NULL AND e.tenant = $1 AND e.type = 'Encounter' AND e.id = $3
      AND e.rid = ANY({_IDS.format("enc")})
), index_stays AS MATERIALIZED (
    SELECT rid FROM enc_class WHERE code = ANY({{index_classes}})
), stays AS MATERIALIZED (
    -- Each possible index stay: from its admission; to its discharge if finished and over,
    -- else (still running, or dates the index cannot read) without bound.
    SELECT COALESCE(span.low, '-infinity'::timestamptz) AS start,
           CASE WHEN span.high <= now() AND (
                    SELECT 1 FROM idx_token f
                    WHERE f.rid = c.rid AND (f.param = 'status') IS TRUE
                      AND (f.code = 'finished') IS TRUE LIMIT 1) IS NOT NULL
                THEN span.high ELSE 'infinity'::timestamptz END AS until
    FROM (SELECT rid FROM index_stays UNION SELECT rid FROM named) c
    LEFT JOIN LATERAL (SELECT d.low, d.high FROM enc_date d WHERE d.rid = c.rid LIMIT 1) span
      ON true
), labs AS MATERIALIZED (
    -- Written to match the partial index of the model's lab rows (idx_token_feature_lab,
    -- migration 0007): the planner uses it only when it can prove these conditions imply it.
    SELECT DISTINCT t.rid FROM idx_token t
    WHERE t.rid = ANY({_IDS.format("obs")}) AND t.type = 'Observation' AND t.param = 'code'
      AND t.code IN ({{lab_codes}})
), lab_date AS MATERIALIZED (
    SELECT d.rid, d.low FROM idx_date d
    WHERE d.rid = ANY((SELECT array_agg(rid) FROM labs)::bigint[]) AND (d.param = 'date') IS TRUE
), proc_date AS MATERIALIZED (
    SELECT d.rid, d.low FROM idx_date d
    WHERE d.rid = ANY({_IDS.format("proc")}) AND (d.param = 'date') IS TRUE
), med_date AS MATERIALIZED (
    SELECT d.rid, d.low FROM idx_date d
    WHERE d.rid = ANY({_IDS.format("med")}) AND (d.param = 'authoredon') IS TRUE
), med_active AS MATERIALIZED (
    SELECT a.rid FROM idx_token a
    WHERE a.rid = ANY({_IDS.format("med")})
      AND (a.param = 'status') IS TRUE AND (a.code = 'active') IS TRUE
), keep AS (
    SELECT rid FROM index_stays
    UNION SELECT rid FROM named
    UNION SELECT c.rid FROM ids, unnest(ids.cond) AS c(rid)
    UNION SELECT d.rid FROM enc_date d JOIN enc_class c
      ON c.rid = d.rid AND c.code = ANY({{visit_classes}})
      WHERE {_IN_A_STAY.format("{visit_lookback}", "s.start + {margin}")}
    UNION SELECT l.rid FROM labs l
      WHERE NOT EXISTS (SELECT 1 FROM lab_date d WHERE d.rid = l.rid)
         OR EXISTS (SELECT 1 FROM lab_date d WHERE d.rid = l.rid
                    AND {_IN_A_STAY.format("{lab_lookback}", "s.until + {margin}")})
    UNION SELECT d.rid FROM proc_date d
      WHERE {_IN_A_STAY.format("{margin}", "s.until + {margin}")}
    UNION SELECT d.rid FROM med_date d
      WHERE EXISTS (
          SELECT 1 FROM stays s
          WHERE d.low <= s.until + {{margin}}
            AND (d.low >= s.start - {{order_lookback}} OR d.rid IN (SELECT rid FROM med_active)))
)
SELECT r.type, '[' || string_agg(r.content, ',' ORDER BY r.id) || ']' AS items
FROM resource r
WHERE r.rid = ANY((SELECT array_agg(rid) FROM keep)::bigint[]) AND (r.tenant = $1) IS TRUE
  AND NOT r.deleted
GROUP BY r.type
UNION ALL
SELECT type, '[' || content || ']' FROM resource
WHERE tenant = $1 AND type = 'Patient' AND id = $2 AND NOT deleted
"""
# For these types the 'patient' parameter is "subject, where it is a Patient": its rows repeat
# the 'subject' rows, so reading them too would only double the reference scan.
_FEATURE_PARAMS = ["subject", "focus", "requester"]
_FEATURE_TYPES = ["Encounter", "Condition", "Observation", "Procedure", "MedicationRequest"]


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _texts(values: Sequence[str]) -> str:
    return f"ARRAY[{', '.join(_text(v) for v in values)}]::text[]" if values else "'{}'::text[]"


def _interval(value: timedelta) -> str:
    # Days as days, as the driver sends a timedelta: timestamptz arithmetic treats them apart.
    return f"interval '{value.days} days {value.seconds}.{value.microseconds:06d} seconds'"


@functools.cache
def _feature_sql(scope: FeatureScope) -> str:
    """The feature query with the scope written in as constants, leaving tenant, patient and
    named encounter as its only parameters. A generic plan (planned once per connection) is
    then estimated like a custom one, so PostgreSQL settles on it; with the scope as parameters
    it re-planned the query on every call whenever statistics were young (the planning costs
    about as much as running it)."""
    m = scope.margin
    constants = {
        "params": _texts(_FEATURE_PARAMS),
        "types": _texts(_FEATURE_TYPES),
        "index_classes": _texts(scope.index_class_codes),
        "visit_classes": _texts(scope.visit_class_codes),
        "lab_codes": ", ".join(_text(c) for c in scope.observation_codes) or "NULL",
        "visit_lookback": _interval(scope.visit_lookback + m),
        "lab_lookback": _interval(scope.lab_lookback + m),
        "order_lookback": _interval(scope.order_lookback + m),
        "margin": _interval(m),
    }
    sql = _FEATURE_SQL
    for name, literal in constants.items():
        sql = sql.replace("{" + name + "}", literal)
    return sql


@dataclass(frozen=True)
class FeatureScope:
    """What a model reads around a possible index stay (see ``feature_record``).

    Windows run from that far before the stay's admission to its discharge, except visits
    (up to the admission) and orders (any time before discharge while still active); ``margin``
    widens every bound so index rounding and zone-less times never drop a resource the model
    would read; the model applies its exact windows itself.
    """

    index_class_codes: tuple[str, ...]  # Encounter.class codes of a possible index stay
    visit_class_codes: tuple[str, ...]  # other Encounter.class codes the visit counts read
    observation_codes: tuple[str, ...]
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
    return decode_feature_json(
        await feature_record_json(conn, tenant, patient_id, scope, encounter_id=encounter_id)
    )


async def feature_record_json(
    conn: asyncpg.Connection,
    tenant: str,
    patient_id: str,
    scope: FeatureScope,
    *,
    encounter_id: str | None = None,
) -> dict[str, str]:
    """``feature_record`` before decoding: one JSON array per type.

    For a caller that decodes only once it has let go of its connection and will not wait for
    anything until done with the resources: decoded records kept alive across an await are what
    the garbage collector walks again and again when many requests are in flight.
    """
    rows = await conn.fetch(_feature_sql(scope), tenant, patient_id, encounter_id)
    return {r["type"]: r["items"] for r in rows}


def decode_feature_json(record: Mapping[str, str]) -> dict[str, list[Mapping[str, Any]]]:
    return {rtype: orjson.loads(items) for rtype, items in record.items()}
