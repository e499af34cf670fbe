"""Fetching a patient's record by the reverse reference index.

Both ``$everything`` and the readmission-risk operation need "every resource pointing at this
patient"; the reference index answers that with one indexed query instead of a search per type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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


# The feature record is read in two steps: first what decides which stay is scored (the Patient,
# its possible index Encounters, and Conditions, which count whenever recorded), then only what
# falls in that stay's windows. Each type's rows come back as one JSON array in id order, so the
# driver hands over a handful of strings instead of a record per resource, and one decode each.
_REFERRING = (
    "r.rid IN (SELECT x.rid FROM idx_reference x WHERE x.tenant = $1"
    " AND x.target_type = 'Patient' AND x.target_id = $2 AND x.param = ANY($3)"
    " AND x.type = ANY($4))"
)
_ARRAYS = "SELECT r.type, '[' || string_agg(r.content, ',' ORDER BY r.id) || ']' AS items"


def _has_class(codes: str) -> str:
    return (
        "EXISTS (SELECT 1 FROM idx_token t WHERE t.rid = r.rid AND t.param = 'class'"
        f" AND t.code = ANY({codes}))"
    )


def _dated(param: str, low: str, high: str | None) -> str:
    upper = f" AND d.low <= {high}" if high else ""
    return (
        f"EXISTS (SELECT 1 FROM idx_date d WHERE d.rid = r.rid AND d.param = '{param}'"
        f" AND d.low >= {low}{upper})"
    )


_STAY_SQL = (
    f"{_ARRAYS} FROM resource r WHERE {_REFERRING} AND r.tenant = $1 AND NOT r.deleted"
    f" AND (r.type = 'Condition' OR r.id = $5 OR {_has_class('$6')})"
    " GROUP BY r.type"
    " UNION ALL SELECT type, '[' || content || ']' FROM resource"
    " WHERE tenant = $1 AND type = 'Patient' AND id = $2 AND NOT deleted"
)

_WINDOW_SQL = (
    f"{_ARRAYS} FROM resource r WHERE {_REFERRING} AND r.tenant = $1 AND NOT r.deleted"
    " AND CASE r.type"
    " WHEN 'Encounter' THEN r.id IS DISTINCT FROM $5"
    f" AND NOT {_has_class('$6')} AND {_has_class('$7')} AND {_dated('date', '$8', '$9')}"
    " WHEN 'Observation' THEN EXISTS (SELECT 1 FROM idx_token t WHERE t.rid = r.rid"
    " AND t.param = 'code' AND t.code = ANY($10))"
    f" AND ({_dated('date', '$11', '$12')} OR NOT EXISTS (SELECT 1 FROM idx_date d"
    " WHERE d.rid = r.rid AND d.param = 'date'))"
    f" WHEN 'Procedure' THEN {_dated('date', '$13', '$12')}"
    " WHEN 'MedicationRequest' THEN EXISTS (SELECT 1 FROM idx_date d WHERE d.rid = r.rid"
    " AND d.param = 'authoredon' AND d.low <= $12 AND (d.low >= $14 OR EXISTS (SELECT 1"
    " FROM idx_token t WHERE t.rid = r.rid AND t.param = 'status' AND t.code = 'active')))"
    " ELSE false END"
    " GROUP BY r.type"
)

_WINDOW_TYPES = ["Encounter", "Observation", "Procedure", "MedicationRequest"]


async def stay_record(
    conn: asyncpg.Connection,
    tenant: str,
    patient_id: str,
    *,
    index_class_codes: Sequence[str],
    encounter_id: str | None = None,
) -> dict[str, list[Mapping[str, Any]]]:
    """The Patient, its Encounters of ``index_class_codes`` (and ``encounter_id`` whatever its
    class) and all its Conditions, decoded and grouped by type, each type in id order."""
    rows = await conn.fetch(
        _STAY_SQL,
        tenant,
        patient_id,
        _PATIENT_PARAMS,
        ["Encounter", "Condition"],
        encounter_id,
        list(index_class_codes),
    )
    return {r["type"]: orjson.loads(r["items"]) for r in rows}


async def window_record(
    conn: asyncpg.Connection,
    tenant: str,
    patient_id: str,
    window: RecordWindow,
) -> dict[str, list[Mapping[str, Any]]]:
    """What ``stay_record`` left out and ``window`` keeps, decoded and grouped like it.

    Times compare with the search index's lower bound of each resource's date; the caller
    widens the windows enough that index rounding and zone-less times never drop a resource
    the features would read (they apply the exact windows themselves).
    """
    w = window
    rows = await conn.fetch(
        _WINDOW_SQL,
        tenant,
        patient_id,
        _PATIENT_PARAMS,
        _WINDOW_TYPES,
        w.encounter_id,
        list(w.index_class_codes),
        list(w.visit_class_codes),
        w.visits[0],
        w.visits[1],
        list(w.observation_codes),
        w.labs_from,
        w.until,
        w.procedures_from,
        w.orders_from,
    )
    return {r["type"]: orjson.loads(r["items"]) for r in rows}


@dataclass(frozen=True)
class RecordWindow:
    """Which of a patient's resources ``window_record`` returns (see its docstring)."""

    encounter_id: str | None
    index_class_codes: Sequence[str]
    visit_class_codes: Sequence[str]
    visits: tuple[datetime, datetime]  # Encounter period.start, other classes than the index's
    observation_codes: Sequence[str]
    labs_from: datetime  # Observation effective time, up to ``until``
    procedures_from: datetime  # Procedure performed time, up to ``until``
    orders_from: datetime  # MedicationRequest authoredOn (active ones: any time up to ``until``)
    until: datetime
