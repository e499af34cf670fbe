"""``$readmission-risk-population``: re-score every discharge in a window and store the results.

Used after a new model version. With ``Prefer: respond-async`` it runs as a job following the
FHIR asynchronous request pattern; the job's state lives in PostgreSQL so any worker can answer
the poll.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any

import orjson
from fastapi import Response

from fhir_gateway.api.responses import fhir_json
from fhir_gateway.fhir import errors
from fhir_gateway.operations.readmission_risk import parse_as_of
from fhir_gateway.operations.registry import OperationContext, Param, operation
from fhir_gateway.scoring.service import store_assessment
from fhir_gateway.scoring.triggers import discharge_of

log = logging.getLogger("fhir_gateway.population")
_TASKS: set[asyncio.Task[None]] = set()


async def discharges(
    conn: Any, tenant: str, since: datetime | None, before: datetime | None
) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT content FROM resource WHERE tenant = $1 AND type = 'Encounter' AND NOT deleted"
        " AND content::jsonb #>> '{period,end}' IS NOT NULL",
        tenant,
    )
    out = []
    for r in rows:
        enc = orjson.loads(r["content"])
        found = discharge_of(enc)
        if found is None:
            continue
        try:
            end = parse_as_of(enc["period"]["end"])
        except errors.OperationOutcomeError:
            continue  # a stored period.end the model could not use either
        if end is None or (since and end < since) or (before and end >= before):
            continue
        out.append(found)
    return out


async def run_population(
    state: Any,
    tenant: str,
    since: datetime | None,
    before: datetime | None,
    job_id: str | None = None,
) -> dict[str, Any]:
    async with state.db.connection() as conn:
        todo = await discharges(conn, tenant, since, before)
        if job_id:
            await conn.execute(
                "UPDATE async_job SET status = 'running', total = $2,"
                " updated_at = now() WHERE id = $1",
                job_id,
                len(todo),
            )
    scored = failed = 0
    for i, (pid, eid) in enumerate(todo, 1):
        async with state.db.connection() as conn:
            try:
                await store_assessment(conn, tenant, state.predictor, pid, eid)
                scored += 1
            except errors.OperationOutcomeError:
                failed += 1
            if job_id and (i % 10 == 0 or i == len(todo)):
                status = await conn.fetchval(
                    "UPDATE async_job SET done = $2, updated_at = now() WHERE id = $1"
                    " RETURNING status",
                    job_id,
                    i,
                )
                if status == "cancelled":
                    break
    return summary(scored, failed, len(todo))


def _when(raw: Any, name: str) -> datetime | None:
    try:
        return parse_as_of(raw)
    except errors.OperationOutcomeError:
        raise errors.invalid(f"{name} '{raw}' is not a valid dateTime", [name]) from None


def summary(scored: int, failed: int, total: int) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "discharges", "valueInteger": total},
            {"name": "scored", "valueInteger": scored},
            {"name": "failed", "valueInteger": failed},
        ],
    }


@operation(
    code="readmission-risk-population",
    id="readmission-risk-population",
    title="Re-score a discharge window",
    description=(
        "Re-scores every inpatient discharge in the window with the current model and "
        "stores the RiskAssessments. Supports Prefer: respond-async."
    ),
    system=True,
    affects_state=True,
    parameters=(
        Param("dischargedSince", "dateTime", 0, "1"),
        Param("dischargedBefore", "dateTime", 0, "1"),
        Param("return", "Parameters", 1, "1", use="out"),
    ),
)
async def population(ctx: OperationContext) -> Any:
    since = _when(ctx.one("dischargedSince"), "dischargedSince")
    before = _when(ctx.one("dischargedBefore"), "dischargedBefore")
    if ctx.state.predictor is None:
        raise errors.not_supported("The readmission model is not loaded", status=503)
    tenant = ctx.principal.tenant
    if "respond-async" not in ctx.request.headers.get("prefer", ""):
        return await run_population(ctx.state, tenant, since, before)
    job_id = str(uuid.uuid4())
    request = orjson.dumps(
        {
            "dischargedSince": ctx.one("dischargedSince"),
            "dischargedBefore": ctx.one("dischargedBefore"),
        }
    ).decode()
    async with ctx.state.db.connection() as conn:
        await conn.execute(
            "INSERT INTO async_job (id, tenant, kind, status, request) VALUES ($1, $2, $3,"
            " 'queued', $4)",
            job_id,
            tenant,
            "readmission-risk-population",
            request,
        )

    async def run() -> None:
        try:
            result = await run_population(ctx.state, tenant, since, before, job_id)
            async with ctx.state.db.connection() as conn:
                await conn.execute(
                    "UPDATE async_job SET status = CASE WHEN status = 'cancelled' THEN status"
                    " ELSE 'done' END, result = $2, updated_at = now() WHERE id = $1",
                    job_id,
                    orjson.dumps(result).decode(),
                )
        except Exception as exc:  # recorded on the job; the poller reports it
            log.exception("population job failed")
            async with ctx.state.db.connection() as conn:
                await conn.execute(
                    "UPDATE async_job SET status = 'failed', error = $2,"
                    " updated_at = now() WHERE id = $1",
                    job_id,
                    type(exc).__name__,
                )

    task = asyncio.create_task(run())
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    location = f"{ctx.state.settings.fhir_base_url()}/_async/{job_id}"
    return Response(status_code=202, headers={"Content-Location": location})


async def job_status(state: Any, tenant: str, job_id: str) -> Response:
    async with state.db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT status, done, total, result, error FROM async_job"
            " WHERE id = $1 AND tenant = $2",
            job_id,
            tenant,
        )
    if row is None:
        raise errors.not_found(f"No job {job_id}")
    if row["status"] in ("queued", "running"):
        progress = f"{row['done']}/{row['total'] if row['total'] is not None else '?'} discharges"
        return Response(status_code=202, headers={"X-Progress": progress, "Retry-After": "1"})
    if row["status"] == "failed":
        raise errors.OperationOutcomeError(
            500,
            [
                errors.Issue(
                    "exception", f"The job failed ({row['error']})", detail_code="job-failed"
                )
            ],
        )
    if row["status"] == "cancelled":
        raise errors.not_found(f"Job {job_id} was cancelled")
    return fhir_json(row["result"])


async def cancel_job(state: Any, tenant: str, job_id: str) -> Response:
    async with state.db.connection() as conn:
        updated = await conn.fetchval(
            "UPDATE async_job SET status = 'cancelled', updated_at = now()"
            " WHERE id = $1 AND tenant = $2 AND status IN ('queued', 'running') RETURNING id",
            job_id,
            tenant,
        )
    if updated is None:
        raise errors.not_found(f"No running job {job_id}")
    return Response(status_code=202)
