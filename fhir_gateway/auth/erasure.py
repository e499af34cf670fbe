"""GDPR art. 17 erasure: a hard delete of one patient's compartment and every stored version.

Unlike the FHIR delete (a new, empty version that keeps history), this removes the rows: the
current versions, their history and their search index entries, inside one transaction, and
writes an AuditEvent for the erasure in that same transaction. The audit trail itself keeps only
references, so it is left in place as the record that the erasure happened.
"""

from __future__ import annotations

import asyncpg

from fhir_gateway.auth.audit import Access, write_events
from fhir_gateway.auth.principal import Principal
from fhir_gateway.fhir import errors
from fhir_gateway.fhir.references import ID_PATTERN

INDEX_TABLES = ("idx_token", "idx_string", "idx_date", "idx_reference", "idx_quantity")


async def compartment_members(
    conn: asyncpg.Connection, tenant: str, patient_id: str
) -> list[tuple[str, str, int]]:
    """(type, id, rid) of the Patient and every resource referring to it (any version now)."""
    from fhir_gateway.search.definitions import patient_compartment, searchable_types
    from fhir_gateway.search.derived import patient_reference_params

    rows = await conn.fetch(
        "SELECT r.type, r.id, r.rid FROM resource r WHERE r.tenant = $1 AND "
        "((r.type = 'Patient' AND r.id = $2) OR EXISTS (SELECT 1 FROM idx_reference x "
        "WHERE x.rid = r.rid AND x.tenant = $1 AND x.target_type = 'Patient' "
        "AND x.target_id = $2 AND x.param = ANY($3::text[])))",
        tenant,
        patient_id,
        patient_reference_params({p for t in searchable_types() for p in patient_compartment(t)}),
    )
    return [(r["type"], r["id"], r["rid"]) for r in rows]


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def erase_patient(
    conn: asyncpg.Connection, tenant: str, patient_id: str, principal: Principal
) -> list[str]:
    """Erase the compartment; returns the ``Type/id`` of every resource removed."""
    if not ID_PATTERN.match(patient_id):
        # The id also goes into a LIKE pattern below: only a valid FHIR id (letters, digits,
        # '-' and '.') may reach it, and it is escaped there all the same.
        raise errors.invalid(f"'{patient_id}' is not a valid FHIR id", ["id"])
    async with conn.transaction():
        members = await compartment_members(conn, tenant, patient_id)
        # Versions of compartment resources deleted earlier have no index rows any more; their
        # history is found through the stored references in the history text.
        stale = await conn.fetch(
            "SELECT DISTINCT h.type, h.id FROM resource_history h WHERE h.tenant = $1 AND "
            "h.content IS NOT NULL AND (h.content LIKE $2 ESCAPE '\\'"
            " OR (h.type = 'Patient' AND h.id = $3))",
            tenant,
            f'%"Patient/{_like_literal(patient_id)}"%',
            patient_id,
        )
        targets = {(t, i) for t, i, _ in members} | {(r["type"], r["id"]) for r in stale}
        rids = [rid for _, _, rid in members]
        for table in INDEX_TABLES:
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
            if exists:
                await conn.execute(f"DELETE FROM {table} WHERE rid = ANY($1::bigint[])", rids)
        types = [t for t, _ in sorted(targets)]
        ids = [i for _, i in sorted(targets)]
        for table in ("resource", "resource_history"):
            await conn.execute(
                f"DELETE FROM {table} WHERE tenant = $1 AND (type, id) IN "
                "(SELECT * FROM unnest($2::text[], $3::text[]))",
                tenant,
                types,
                ids,
            )
        removed = [f"{t}/{i}" for t, i in sorted(targets)]
        await write_events(
            conn, [(principal, Access("erasure", [f"Patient/{patient_id}"], patient=patient_id))]
        )
    return removed
