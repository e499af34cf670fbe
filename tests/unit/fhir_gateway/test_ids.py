"""Server-assigned ids: random version 4 UUIDs, however many a Bundle needs at once."""

from __future__ import annotations

import re
import uuid

from fhir_gateway.fhir.references import ID_PATTERN
from fhir_gateway.store.repository import new_id, new_ids

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_new_ids_are_distinct_version_4_uuids() -> None:
    ids = new_ids(20_000)
    assert len(ids) == len(set(ids)) == 20_000
    for text in ids[:2_000]:
        assert UUID4.match(text), text
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text
        assert ID_PATTERN.match(text)
    assert new_ids(0) == []
    assert UUID4.match(new_id())


def test_every_random_digit_varies() -> None:
    ids = new_ids(2_000)
    for position in range(36):
        seen = {text[position] for text in ids}
        if position in (8, 13, 18, 23):
            assert seen == {"-"}
        elif position == 14:
            assert seen == {"4"}
        elif position == 19:
            assert seen == set("89ab")
        else:
            assert len(seen) == 16, position
