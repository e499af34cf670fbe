"""AuditEvent (R4) records of every authenticated FHIR access: who, what, when, outcome, from where.

Successful writes are recorded by the route inside the write's own database transaction, so a
change is never committed without its record. Everything else (reads, searches, history,
operations, refused or failed requests) is recorded by :class:`AuditMiddleware` after the
response, queued and written in batches by :class:`AuditTrail`; the queue is drained on a clean
shutdown. Records carry references and the query text only, never resource content, and are
never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_gateway.auth.principal import Principal

log = logging.getLogger("fhir_gateway.audit")

EVENT_TYPE = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "RESTful Operation",
}
INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
CLIENT_SYSTEM = "urn:fhir-gateway:client"
ACTIONS = {
    "create": "C",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "history-type": "R",
    "history-system": "R",
}


@dataclass
class Access:
    interaction: str  # a restful-interaction code, or "operation", "transaction", "batch"
    entities: list[str] = field(default_factory=list)  # "Type/id"
    query: str | None = None
    patient: str | None = None  # the patient's id
    outcome: str = "0"  # 0 success, 4 minor failure, 8 serious failure
    address: str | None = None

    @property
    def action(self) -> str:
        return ACTIONS.get(self.interaction, "E")


def build_event(principal: Principal, access: Access, recorded: datetime) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {
            "identifier": {"system": CLIENT_SYSTEM, "value": principal.client_id},
            "display": principal.client_id,
        },
        "requestor": True,
    }
    if access.address:
        agent["network"] = {"address": access.address, "type": "2"}
    agents = [agent]
    if principal.user:
        agents.append(
            {
                "type": {
                    "coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]
                },
                "who": {"reference": principal.user},
                "requestor": True,
            }
        )
    entities: list[dict[str, Any]] = []
    if access.patient:
        entities.append(
            {
                "what": {"reference": f"Patient/{access.patient}"},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    for ref in access.entities:
        if access.patient and ref == f"Patient/{access.patient}":
            continue
        entities.append(
            {
                "what": {"reference": ref},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            }
        )
    if access.query:
        import base64

        entities.append(
            {
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
                "query": base64.b64encode(access.query.encode()).decode(),
            }
        )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "type": EVENT_TYPE,
        "subtype": [{"system": INTERACTION_SYSTEM, "code": access.interaction}],
        "action": access.action,
        "recorded": recorded.isoformat().replace("+00:00", "Z"),
        "outcome": access.outcome,
        "agent": agents,
        "source": {
            "site": principal.tenant,
            "observer": {"display": "fhir-gateway"},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
    }
    if entities:
        event["entity"] = entities
    return event


def _clean(text: str) -> str:
    """PostgreSQL text cannot hold NUL; a request may carry one (e.g. ``Patient/a%00b``)."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


_AUDIT_COLUMNS = (
    "id",
    "tenant",
    "recorded",
    "patient",
    "agent",
    "entities",
    "action",
    "outcome",
    "content",
)


async def write_events(conn: asyncpg.Connection, items: Iterable[tuple[Principal, Access]]) -> int:
    rows = []
    now = datetime.now(UTC)
    for principal, access in items:
        event = build_event(principal, access, now)
        rows.append(
            (
                event["id"],
                _clean(principal.tenant),
                now,
                _clean(f"Patient/{access.patient}") if access.patient else None,
                _clean(principal.client_id),
                [_clean(e) for e in access.entities],
                access.action,
                access.outcome,
                _clean(orjson.dumps(event).decode()),
            )
        )
    if len(rows) > 1:
        # The trail's batches: COPY is one round trip with the rows encoded in the driver's C
        # code, which keeps the event loop's pause per batch short.
        await conn.copy_records_to_table("audit_event", records=rows, columns=_AUDIT_COLUMNS)
    elif rows:
        await conn.execute(
            "INSERT INTO audit_event (id, tenant, recorded, patient, agent, entities, action,"
            " outcome, content) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            *rows[0],
        )
    return len(rows)


def patient_of(resource_type: str, resource: Mapping[str, Any] | None) -> str | None:
    """The patient a resource is about, through its Patient-compartment references."""
    if resource is None:
        return None
    if resource_type == "Patient":
        rid = resource.get("id")
        return str(rid) if rid else None
    from fhir_gateway.search.definitions import patient_compartment
    from fhir_gateway.search.index import extract

    params = patient_compartment(resource_type)
    if not params:
        return None
    for row in extract(resource_type, resource).reference:
        if row[0] in params and row[1] == "Patient" and row[2]:
            return str(row[2])
    return None


def client_address(scope: Mapping[str, Any]) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


async def record_write(
    conn: asyncpg.Connection,
    request: Any,
    principal: Principal,
    interaction: str,
    versions: Iterable[Any],
) -> None:
    """Inside the write's transaction: one record naming every written resource."""
    entities: list[str] = []
    patient = None
    for v in versions:
        if v is None:
            continue
        entities.append(f"{v.type}/{v.id}")
        if patient is None and v.content is not None:
            patient = patient_of(v.type, orjson.loads(v.content))
    access = Access(
        interaction,
        entities,
        patient=patient or principal.patient,
        address=client_address(request.scope),
    )
    await write_events(conn, [(principal, access)])
    request.state.audited = True


MAX_QUEUED = 100_000


class AuditTrail:
    """Queue of read records written in batches by one background task; drained on stop."""

    # Batches are written while requests are being served on the same event loop: a batch of
    # 50 holds the loop for well under a millisecond, which keeps it out of request latency.
    def __init__(self, db: Any, batch: int = 50, interval: float = 0.5) -> None:
        self.db = db
        self.batch = batch
        self.interval = interval
        self._pending: list[tuple[Principal, Access]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def record(self, principal: Principal, access: Access) -> None:
        if len(self._pending) >= MAX_QUEUED:
            log.error("audit queue full; record dropped")
            return
        self._pending.append((principal, access))
        if len(self._pending) >= self.batch:
            self._wake.set()

    async def flush(self) -> int:
        """Write what is queued. A batch that fails is retried record by record, so one bad
        record can never hold back the others; a record that fails on its own is logged (by
        type of error only) and dropped. A database outage puts the rest back for later."""
        written = 0
        while self._pending:
            chunk, self._pending = self._pending[: self.batch], self._pending[self.batch :]
            try:
                async with self.db.connection() as conn, conn.transaction():
                    written += await write_events(conn, chunk)
                continue
            except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError):
                self._pending[:0] = chunk
                log.warning("audit records could not be written; will retry")
                raise
            except Exception:
                log.warning("audit batch refused; writing its records one by one")
            for item in chunk:
                try:
                    async with self.db.connection() as conn, conn.transaction():
                        written += await write_events(conn, [item])
                except Exception as exc:
                    log.error("audit record dropped", extra={"error": type(exc).__name__})
        return written

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # logged in flush; keep the loop alive
                await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-trail")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        try:
            await self.flush()
        except Exception:  # the database is gone; nothing more can be written
            log.error(
                "audit records left unwritten at shutdown", extra={"count": len(self._pending)}
            )


def describe(method: str, path: str, query: str) -> Access | None:
    """Map an HTTP request under ``/fhir`` to the interaction it was."""
    if not path.startswith("/fhir"):
        return None
    parts = [p for p in path[len("/fhir") :].split("/") if p]
    if parts and parts[0] in ("metadata", ".well-known"):
        return None
    op = next((p for p in parts if p.startswith("$")), None)
    rtype = parts[0] if parts and parts[0][:1].isupper() else None
    rid = parts[1] if len(parts) > 1 and not parts[1].startswith(("$", "_")) else None
    patient = None
    if rtype == "Patient" and rid:
        patient = rid
    for name, value in parse_qsl(query):
        is_patient = name == "patient" or value.startswith("Patient/")
        if name in ("patient", "subject") and patient is None and is_patient:
            patient = value.split("/")[-1] or None
    entities = [f"{rtype}/{rid}"] if rtype and rid else []
    if op is not None:
        interaction = "operation"
    elif "_history" in parts:
        idx = parts.index("_history")
        interaction = (
            "vread"
            if idx == 2 and len(parts) == 4
            else "history-instance"
            if idx == 2
            else "history-type"
            if idx == 1
            else "history-system"
        )
    elif method == "GET":
        if rtype and rid and len(parts) == 2:
            interaction = "read"
        else:
            interaction = "search-type" if rtype else "search-system"
    elif method == "POST":
        if parts and parts[-1] == "_search":
            interaction = "search-type" if rtype else "search-system"
        else:
            interaction = "create" if rtype else "transaction"
    else:
        interaction = {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "read")
    return Access(interaction, entities, query or None, patient)


class AuditMiddleware:
    """Records every authenticated ``/fhir`` request not already recorded by its route."""

    def __init__(self, app: ASGIApp, trail_holder: dict[str, Any]) -> None:
        self.app = app
        self.holder = trail_holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self._after(scope, status)

    def _after(self, scope: Scope, status: int) -> None:
        state = scope.get("state") or {}
        principal = state.get("principal")
        trail = self.holder.get("audit_trail")
        if not isinstance(principal, Principal) or trail is None or state.get("audited"):
            return
        query = scope.get("query_string", b"").decode("latin-1")
        access = describe(scope["method"], scope["path"], query)
        if access is None:
            return
        access.patient = access.patient or principal.patient
        access.outcome = "0" if status < 400 else ("4" if status < 500 else "8")
        access.address = client_address(scope)
        trail.record(principal, access)
