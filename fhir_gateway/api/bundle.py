"""``POST [base]`` with a batch or transaction Bundle."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from fhir_gateway.api.deps import (
    DatabaseDep,
    PrincipalDep,
    SettingsDep,
    check_content_type,
    read_body,
)
from fhir_gateway.api.responses import fhir_json
from fhir_gateway.auth import audit
from fhir_gateway.auth.enforce import BundleGuard
from fhir_gateway.bundles import Entry, TransactionProcessor, _entry_error, parse_entries
from fhir_gateway.fhir import errors
from fhir_gateway.fhir.parsing import parse_json
from fhir_gateway.observability import metrics

log = logging.getLogger("fhir_gateway.bundle")
router = APIRouter()


@router.post("/")
async def process(
    request: Request, principal: PrincipalDep, db: DatabaseDep, settings: SettingsDep
) -> Response:
    check_content_type(request)
    data = parse_json(await read_body(request, settings.max_body_bytes))
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise errors.invalid("POST to the base URL takes a Bundle", ["resourceType"])
    btype = data.get("type")
    if btype not in ("transaction", "batch"):
        raise errors.invalid(
            f"Bundle.type must be 'transaction' or 'batch', not {btype!r}", ["Bundle.type"]
        )
    entries = parse_entries(data)
    metrics.count_bundle_entries(str(btype), len(entries))
    base = settings.fhir_base_url()
    if btype == "transaction":
        try:
            async with db.connection() as conn, conn.transaction():
                processor = TransactionProcessor(
                    conn, principal.tenant, base, BundleGuard(principal)
                )
                responses = await processor.run(entries)
                await audit.record_write(
                    conn, request, principal, "transaction", _written(processor, entries)
                )
        except errors.OperationOutcomeError:
            metrics.count_transaction_rollback()
            raise
        return fhir_json(
            orjson.dumps(
                {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}
            )
        )
    results: list[dict[str, Any]] = []
    async with db.connection() as conn:
        for entry in entries:
            results.append(await _batch_entry(conn, request, principal, base, entry))
    return fhir_json(
        orjson.dumps({"resourceType": "Bundle", "type": "batch-response", "entry": results})
    )


def _written(processor: TransactionProcessor, entries: list[Entry]) -> list[Any]:
    """Stand-ins naming each written resource, for the transaction's audit record."""
    from types import SimpleNamespace

    out = []
    for e in entries:
        rid = e.rid or e.assigned_id
        if e.method != "GET" and rid:
            out.append(SimpleNamespace(type=e.rtype, id=rid, content=None))
    return out


async def _batch_entry(
    conn: Any, request: Request, principal: Any, base: str, entry: Entry
) -> dict[str, Any]:
    """One batch entry in its own savepoint, audited with it; its failure is its own."""
    try:
        async with conn.transaction():
            processor = TransactionProcessor(conn, principal.tenant, base, BundleGuard(principal))
            (response,) = await processor.run([entry])
            if entry.method != "GET":
                await audit.record_write(
                    conn, request, principal, "batch", _written(processor, [entry])
                )
            return response
    except errors.OperationOutcomeError as exc:
        err = _entry_error(exc, entry) if not str(exc).startswith("Bundle.entry") else exc
        return {"response": {"status": str(err.status), "outcome": err.outcome()}}
    except Exception:
        correlation = str(uuid.uuid4())
        log.exception("batch entry failed", extra={"correlation_id": correlation})
        outcome = errors.outcome(
            [
                errors.Issue(
                    "exception",
                    f"Internal error; correlation id {correlation}",
                    detail_code="internal-error",
                ).to_json()
            ]
        )
        return {"response": {"status": "500", "outcome": outcome}}
