"""``GET [base]/AuditEvent`` and ``GET [base]/AuditEvent/[id]``: the audit trail, for audit clients.

Only a grant that names AuditEvent itself (``system/AuditEvent.rs``) reaches these routes; the
wildcard grants of ordinary clients and API keys do not. There are deliberately no write routes:
the generic create, update and delete routes refuse AuditEvent for everyone.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from fhir_gateway.api.deps import PrincipalDep, StateDep
from fhir_gateway.api.responses import fhir_json
from fhir_gateway.auth import enforce
from fhir_gateway.fhir import errors

router = APIRouter()
_PREFIXES = {"eq": "=", "ge": ">=", "le": "<=", "gt": ">", "lt": "<"}


def _date(value: str) -> tuple[str, datetime]:
    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    raw = value[2:] if value[:2] in _PREFIXES else value
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise errors.invalid(f"date '{value}' is not a date or instant", ["date"]) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return prefix, when


@router.get("/AuditEvent")
async def search_audit(request: Request, principal: PrincipalDep, state: StateDep) -> Response:
    enforce.require(principal, "s", enforce.AUDIT_TYPE)
    where = ["tenant = $1"]
    args: list[Any] = [principal.tenant]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    count = 100
    for name, value in request.query_params.multi_items():
        if name == "date":
            prefix, when = _date(value)
            if prefix == "eq" and len(value) <= 10:
                where.append(f"recorded::date = {arg(when.date())}")
            else:
                where.append(f"recorded {_PREFIXES[prefix]} {arg(when)}")
        elif name == "patient":
            ref = value if value.startswith("Patient/") else f"Patient/{value}"
            where.append(f"patient = {arg(ref)}")
        elif name == "agent":
            where.append(f"agent = {arg(value)}")
        elif name == "entity":
            where.append(f"(entities @> ARRAY[{arg(value)}]::text[] OR patient = {arg(value)})")
        elif name == "_count" and value.isdigit():
            count = min(int(value), 1000)
        elif name == "_format":
            continue
        else:
            raise errors.invalid(
                f"AuditEvent search supports date, patient, agent, entity; not '{name}'", [name]
            )
    async with state.db.connection() as conn:
        rows = await conn.fetch(
            f"SELECT id, content FROM audit_event WHERE {' AND '.join(where)} "
            f"ORDER BY recorded DESC, seq DESC LIMIT {count}",
            *args,
        )
    base = state.settings.fhir_base_url()
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "total": len(rows),
        "entry": [
            {
                "fullUrl": f"{base}/AuditEvent/{r['id']}",
                "resource": orjson.Fragment(r["content"]),
                "search": {"mode": "match"},
            }
            for r in rows
        ],
    }
    return fhir_json(orjson.dumps(bundle))


@router.get("/AuditEvent/{event_id}")
async def read_audit(event_id: str, principal: PrincipalDep, state: StateDep) -> Response:
    enforce.require(principal, "r", enforce.AUDIT_TYPE)
    async with state.db.connection() as conn:
        content = await conn.fetchval(
            "SELECT content FROM audit_event WHERE tenant = $1 AND id = $2",
            principal.tenant,
            event_id,
        )
    if content is None:
        raise errors.not_found(f"AuditEvent/{event_id} is not known")
    return fhir_json(content)
