"""PostgreSQL state of the CDS service: JWT replay cache, issued cards, feedback.

The hot path (one jti insert and one card insert per hook call) talks to the asyncpg connection
behind the SQLAlchemy engine directly: each statement is a single autocommitted round trip.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

_PURGE_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class IssuedCard:
    uuid: uuid.UUID
    tenant: str
    patient_id: str
    encounter_id: str | None
    hook_instance: str
    indicator: str
    model_version: str
    suggestion_uuids: tuple[str, ...]


@dataclass(frozen=True)
class FeedbackEntry:
    card_uuid: uuid.UUID
    outcome: str
    accepted_suggestions: tuple[str, ...]
    reason_system: str | None
    reason_code: str | None
    reason_display: str | None
    user_comment: str | None
    outcome_timestamp: datetime


class UnknownCard(Exception):  # noqa: N818 (reads as a condition)
    """Feedback names a card this service never issued to the caller's tenant."""

    def __init__(self, card_uuid: uuid.UUID) -> None:
        super().__init__(f"no card {card_uuid} was issued to this tenant")
        self.card_uuid = card_uuid


class UnknownSuggestion(Exception):  # noqa: N818 (reads as a condition)
    """Feedback accepts a suggestion that was not on the card."""

    def __init__(self, card_uuid: uuid.UUID, suggestion: str) -> None:
        super().__init__(f"card {card_uuid} has no suggestion {suggestion!r}")


class CdsStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._next_purge = 0.0

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            yield raw.driver_connection

    async def claim_jti(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """Record a token id; False when it was seen before (a replay)."""
        async with self._connection() as con:
            now = time.monotonic()
            if now >= self._next_purge:
                self._next_purge = now + _PURGE_INTERVAL_SECONDS
                await con.execute("DELETE FROM cds_jti WHERE expires_at < now()")
            inserted = await con.fetchval(
                "INSERT INTO cds_jti (iss, jti, expires_at) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING RETURNING true",
                iss,
                jti,
                expires_at,
            )
        return bool(inserted)

    async def record_cards(self, cards: Sequence[IssuedCard]) -> None:
        if not cards:
            return
        async with self._connection() as con:
            await con.executemany(
                "INSERT INTO cds_issued_card (uuid, tenant, patient_id, encounter_id, "
                "hook_instance, indicator, model_version, suggestion_uuids) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                [
                    (
                        c.uuid,
                        c.tenant,
                        c.patient_id,
                        c.encounter_id,
                        c.hook_instance,
                        c.indicator,
                        c.model_version,
                        list(c.suggestion_uuids),
                    )
                    for c in cards
                ],
            )

    async def record_feedback(
        self, tenant: str, client_iss: str, entries: Sequence[FeedbackEntry]
    ) -> None:
        """Store all entries or none: one unknown card refuses the whole report."""
        async with self._connection() as con, con.transaction():
            wanted = sorted({e.card_uuid for e in entries})
            rows = await con.fetch(
                "SELECT uuid, suggestion_uuids FROM cds_issued_card "
                "WHERE tenant = $1 AND uuid = ANY($2::uuid[])",
                tenant,
                wanted,
            )
            issued = {r["uuid"]: set(r["suggestion_uuids"]) for r in rows}
            for entry in entries:
                if entry.card_uuid not in issued:
                    raise UnknownCard(entry.card_uuid)
                for suggestion in entry.accepted_suggestions:
                    if suggestion not in issued[entry.card_uuid]:
                        raise UnknownSuggestion(entry.card_uuid, suggestion)
            await con.executemany(
                "INSERT INTO cds_feedback (tenant, card_uuid, outcome, accepted_suggestions, "
                "reason_system, reason_code, reason_display, user_comment, outcome_timestamp, "
                "client_iss) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                [
                    (
                        tenant,
                        e.card_uuid,
                        e.outcome,
                        list(e.accepted_suggestions),
                        e.reason_system,
                        e.reason_code,
                        e.reason_display,
                        e.user_comment,
                        e.outcome_timestamp,
                        client_iss,
                    )
                    for e in entries
                ],
            )
