"""Background scoring of discharges, after the write that queued them has committed.

The queue is a table, claimed with ``FOR UPDATE SKIP LOCKED`` so several workers and pods share
it without double work. A failing prediction never touches the write that triggered it: the row
stays queued with its error and is retried a few times. On shutdown the worker drains what it
can; whatever remains is still in the table for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fhir_gateway.scoring.service import store_assessment

log = logging.getLogger("fhir_gateway.scoring")

MAX_ATTEMPTS = 5
BATCH = 20


async def drain_once(db: Any, predictor: Any) -> int:
    """Score up to BATCH queued discharges; returns how many were handled."""
    handled = 0
    async with db.connection() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT tenant, patient_id, encounter_id FROM scoring_queue"
            " WHERE attempts < $1 AND enqueued_at <= now()"
            " ORDER BY enqueued_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            MAX_ATTEMPTS,
            BATCH,
        )
        done: list[tuple[str, str]] = []
        for row in rows:
            tenant, pid, eid = row["tenant"], row["patient_id"], row["encounter_id"]
            try:
                # Its own transaction is a savepoint here: one failure spoils nothing else.
                await store_assessment(conn, tenant, predictor, pid, eid)
                done.append((tenant, eid))
            except Exception as exc:  # never crash the loop
                await conn.execute(
                    # Back off: the rest of the record (e.g. the Patient of an NDJSON import)
                    # may still be on its way.
                    "UPDATE scoring_queue SET attempts = attempts + 1, last_error = $3,"
                    " enqueued_at = now() + make_interval(secs => 2 * (attempts + 1))"
                    " WHERE tenant = $1 AND encounter_id = $2",
                    tenant,
                    eid,
                    type(exc).__name__ + ": " + str(exc)[:200],
                )
                log.warning("discharge scoring failed", extra={"error": type(exc).__name__})
            handled += 1
        if done:
            await conn.execute(
                "DELETE FROM scoring_queue q USING unnest($1::text[], $2::text[]) AS d(tenant, eid)"
                " WHERE q.tenant = d.tenant AND q.encounter_id = d.eid",
                [t for t, _ in done],
                [e for _, e in done],
            )
    return handled


class ScoringWorker:
    def __init__(self, db: Any, predictor: Any, interval: float = 0.25) -> None:
        self.db = db
        self.predictor = predictor
        self.interval = interval
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="discharge-scoring")

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n = await drain_once(self.db, self.predictor)
            except Exception:  # the database may be briefly unavailable; try again later
                log.exception("scoring loop error")
                n = 0
            if n:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    async def stop(self, drain_seconds: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_seconds
        while loop.time() < deadline:
            try:
                if not await drain_once(self.db, self.predictor):
                    break
            except Exception:
                log.exception("final scoring drain failed")
                break
