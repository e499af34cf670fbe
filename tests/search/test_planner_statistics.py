"""The index tables' statistics (migration 0008) let the planner estimate a code's rows.

A multi-condition search is only fast when PostgreSQL starts from its rarest condition, which it
can only do if the row estimates are right. Codes of similar frequency, more of them than the
default most-common-value list holds, and a second code system in the same param: the case in
which per-column statistics multiplied as if independent were off several-fold.
"""

from __future__ import annotations

import re

import asyncpg

from tests.search.pg import SearchDb

CODES = 400  # distinct LOINC-like codes, more than the default statistics keep


def _estimate(plan: str) -> int:
    found = re.search(r"rows=(\d+)", plan)
    assert found, plan
    return int(found.group(1))


def test_code_row_estimates_follow_the_data(search_db: SearchDb) -> None:
    tenant = search_db.tenant()

    async def body(conn: asyncpg.Connection) -> None:
        rows = []
        rid = 10_000_000
        for i in range(CODES):
            # A skewed but flat-topped spread: 20 to 59 rows per code.
            for _ in range(20 + i % 40):
                rid += 1
                rows.append(
                    (rid, tenant, "Observation", "code", "http://loinc.org", f"{i}-0", None)
                )
        for i in range(3000):  # other systems and params share the table
            rid += 1
            rows.append((rid, tenant, "Observation", "category", "http://cat", f"c{i % 5}", None))
            rows.append((rid, tenant, "Condition", "code", "http://snomed.info/sct", f"s{i}", None))
        await conn.copy_records_to_table(
            "idx_token",
            records=rows,
            columns=("rid", "tenant", "type", "param", "system", "code", "text"),
        )
        await conn.execute("ANALYZE idx_token")
        for i in (7, 123, 333):
            actual = 20 + i % 40
            plan = "\n".join(
                r[0]
                for r in await conn.fetch(
                    # Without the tenant: the test database holds every test's tenant, a
                    # deployment three, so its selectivity here says nothing about the codes.
                    "EXPLAIN SELECT rid FROM idx_token WHERE type = 'Observation'"
                    " AND param = 'code' AND system = 'http://loinc.org' AND code = $1",
                    f"{i}-0",
                )
            )
            estimate = _estimate(plan)
            assert actual / 2 <= estimate <= actual * 2, (i, actual, plan)

    search_db.run(body)
