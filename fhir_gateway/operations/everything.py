"""``Patient/[id]/$everything``: the patient and everything in its record, as a searchset."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from fhir_gateway.api.responses import fhir_json
from fhir_gateway.fhir import errors
from fhir_gateway.operations.registry import OperationContext, Param, operation
from fhir_gateway.store.records import patient_record
from fhir_gateway.store.repository import Repository


@operation(
    code="everything",
    id="Patient-everything",
    title="Fetch Patient Record",
    description="Returns the patient and every resource of this tenant that references it.",
    resource_types=("Patient",),
    instance=True,
    canonical_url="http://hl7.org/fhir/OperationDefinition/Patient-everything",
    parameters=(
        Param("start", "date", 0, "1"),
        Param("end", "date", 0, "1"),
        Param("_since", "instant", 0, "1"),
        Param("_type", "code", 0, "*"),
        Param("_count", "integer", 0, "1"),
        Param("return", "Bundle", 1, "1", use="out"),
    ),
)
async def everything(ctx: OperationContext) -> Any:
    assert ctx.resource_id is not None
    q = ctx.request.query_params
    types = None
    if q.get("_type"):
        types = [t.strip() for t in q.get("_type").split(",") if t.strip()] + ["Patient"]
    since = None
    if q.get("_since"):
        try:
            since = datetime.fromisoformat(q.get("_since").replace("Z", "+00:00"))
        except ValueError:
            raise errors.invalid("_since is not a valid instant", ["_since"]) from None
    async with ctx.state.db.connection() as conn:
        await Repository(conn, ctx.principal.tenant).read("Patient", ctx.resource_id)
        versions = await patient_record(
            conn, ctx.principal.tenant, ctx.resource_id, types=types, since=since
        )
    base = ctx.state.settings.fhir_base_url()
    entries = [
        {
            "fullUrl": f"{base}/{v.type}/{v.id}",
            "resource": orjson.Fragment(v.content or "{}"),
            "search": {"mode": "match"},
        }
        for v in versions
    ]
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(entries),
        "link": [{"relation": "self", "url": str(ctx.request.url)}],
        "entry": entries,
    }
    return fhir_json(orjson.dumps(bundle))
