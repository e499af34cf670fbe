"""The CDS tables through the store: replay claims and issued cards, on a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds_services.store import CdsStore, IssuedCard

pytestmark = pytest.mark.anyio


async def test_jti_is_claimed_once_per_issuer(engine: Any) -> None:
    store = CdsStore(engine)
    expires = datetime.now(UTC) + timedelta(minutes=5)
    jti = str(uuid.uuid4())
    assert await store.claim_jti("https://a", jti, expires) is True
    assert await store.claim_jti("https://a", jti, expires) is False
    assert await store.claim_jti("https://b", jti, expires) is True


async def test_expired_claims_are_purged(engine: Any, db: Any) -> None:
    old = str(uuid.uuid4())
    await db.execute("INSERT INTO cds_jti VALUES ('https://a', $1, now() - interval '1 hour')", old)
    await CdsStore(engine).claim_jti("https://a", str(uuid.uuid4()), datetime.now(UTC))
    assert await db.fetchval("SELECT count(*) FROM cds_jti WHERE jti = $1", old) == 0


async def test_quick_writes_leave_the_pooled_session_as_it_was(engine: Any, db: Any) -> None:
    store = CdsStore(engine)
    card = IssuedCard(uuid.uuid4(), "ukhd", "p-1", "e-1", str(uuid.uuid4()), "info", "1.0", ())
    await store.record_card(card)
    await store.claim_jti("https://a", str(uuid.uuid4()), datetime.now(UTC))
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert await raw.driver_connection.fetchval("SHOW synchronous_commit") == "on"
    row = await db.fetchrow("SELECT * FROM cds_issued_card WHERE uuid = $1", card.uuid)
    assert (row["tenant"], row["patient_id"], row["suggestion_uuids"]) == ("ukhd", "p-1", [])
