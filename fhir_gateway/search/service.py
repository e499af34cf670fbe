"""Run searches on a raw asyncpg connection and build searchset Bundles from the stored text.

Paging is keyset-based: the ``next``/``previous`` links carry the sort values and ``rid`` of the
page's edge rows, so a page boundary never shifts when resources are created or deleted between
requests (an offset would skip or repeat rows). Resources go into the Bundle as the stored JSON
text (``orjson.Fragment``), never parsed and re-serialised, except when ``_elements`` or
``_summary=data`` asks for a subset.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import asyncpg
import orjson

from fhir_gateway.fhir.errors import invalid, not_supported
from fhir_gateway.search.definitions import patient_compartment, searchable_types
from fhir_gateway.search.query import ChainFilter, HasFilter, IncludeSpec, SearchQuery, parse
from fhir_gateway.search.sql import (
    SortExpr,
    Sql,
    compartment_condition,
    condition,
    param_match,
    sort_expression,
)

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
MAX_INCLUDE_ROUNDS = 3


def _check_type(resource_type: str | None) -> None:
    if resource_type is not None and resource_type not in searchable_types():
        raise not_supported(f"Search is not supported for resource type '{resource_type}'")


def _where(
    sql: Sql,
    query: SearchQuery,
    alias: str,
    compartment: tuple[str, str] | None,
) -> str:
    rt = query.resource_type
    parts = [f"{alias}.tenant = $1", f"NOT {alias}.deleted"]
    if rt is not None:
        parts.append(f"{alias}.type = {sql.arg(rt)}")
    if compartment is not None and rt is not None:
        comp_type, comp_id = compartment
        if comp_type != "Patient":
            raise not_supported(f"Compartment '{comp_type}' is not supported")
        parts.append(compartment_condition(sql, alias, rt, patient_compartment(rt), comp_id))
    for flt in query.filters:
        parts.append(condition(sql, flt, alias, rt))
    return " AND ".join(parts)


async def find_ids(
    conn: asyncpg.Connection, tenant: str, resource_type: str, query: str
) -> list[str]:
    """Ids matching conditional-interaction criteria; unknown parameters are errors here, because
    ignoring one would widen a conditional update or delete to unintended resources."""
    _check_type(resource_type)
    params = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    parsed = parse(resource_type, params, strict=True)
    if not parsed.filters:
        raise invalid(f"Conditional criteria '{query}' select no search parameter", ["criteria"])
    sql = Sql(tenant, "")
    where = _where(sql, parsed, "r", None)
    rows = await conn.fetch(f"SELECT r.id FROM resource r WHERE {where} ORDER BY r.rid", *sql.args)
    return [row["id"] for row in rows]


def _encode_cursor(values: Sequence[str], rid: int, direction: str) -> str:
    raw = orjson.dumps({"v": list(values), "r": rid, "d": direction})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str, keys: int) -> tuple[list[str], int, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        values, rid, direction = data["v"], int(data["r"]), data["d"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise invalid("Malformed _page cursor", ["_page"]) from exc
    if not isinstance(values, list) or len(values) != keys or direction not in {"n", "p"}:
        raise invalid("The _page cursor does not belong to this search", ["_page"])
    return [str(v) for v in values], rid, direction


def _keyset(sql: Sql, exprs: list[SortExpr], values: list[str], rid: int, backwards: bool) -> str:
    keys = [(e.sql, e.cast, e.descending) for e in exprs] + [("r.rid", "bigint", False)]
    vals: list[str] = [*values, str(rid)]
    terms = []
    for i, (expr, cast, descending) in enumerate(keys):
        eqs = [f"{keys[j][0]} = {sql.arg(vals[j])}::text::{keys[j][1]}" for j in range(i)]
        ascending = not descending
        op = ">" if ascending != backwards else "<"
        eqs.append(f"{expr} {op} {sql.arg(vals[i])}::text::{cast}")
        terms.append("(" + " AND ".join(eqs) + ")")
    return "(" + " OR ".join(terms) + ")"


def _order(exprs: list[SortExpr], backwards: bool) -> str:
    items = [f"{e.sql} {'DESC' if e.descending != backwards else 'ASC'}" for e in exprs]
    items.append(f"r.rid {'DESC' if backwards else 'ASC'}")
    return ", ".join(items)


async def _fetch(
    conn: asyncpg.Connection, stmt: str, args: list[Any], query: SearchQuery
) -> list[asyncpg.Record]:
    """Run a search statement, planned with its values when the search combines conditions.

    The driver caches prepared statements, and after a few runs PostgreSQL may switch a cached
    statement to a generic plan made without the values. For a search that combines conditions
    the right order of indexes depends on them: a generic plan cannot know that a LOINC code has
    thousands of rows and a patient a few hundred, and at 1.5 million resources it started from
    the code (577 ms) where a plan with the values starts from the patient (2 ms). A statement
    prepared afresh is planned with its values; the price is one round trip and the planning,
    paid only by searches whose plan has such a choice: several conditions, a chain or reverse
    chain (two index lookups joined), or a sort (its index against the condition's).
    """
    if (
        len(query.filters) > 1
        or query.sort
        or any(isinstance(f, ChainFilter | HasFilter) for f in query.filters)
    ):
        prepared = await conn.prepare(stmt)
        return list(await prepared.fetch(*args))
    return list(await conn.fetch(stmt, *args))


async def _count(conn: asyncpg.Connection, where: str, args: list[Any], query: SearchQuery) -> int:
    rows = await _fetch(conn, f"SELECT count(*) FROM resource r WHERE {where}", args, query)
    return int(rows[0][0])


async def _estimate(conn: asyncpg.Connection, where: str, args: list[Any]) -> int:
    plan = await conn.fetchval(
        f"EXPLAIN (FORMAT JSON) SELECT 1 FROM resource r WHERE {where}", *args
    )
    parsed = orjson.loads(plan) if isinstance(plan, str) else plan
    return int(parsed[0]["Plan"]["Plan Rows"])


def _subset(content: str, query: SearchQuery) -> Any:
    if not query.elements and query.summary != "data":
        return orjson.Fragment(content)
    resource: dict[str, Any] = orjson.loads(content)
    if query.elements:
        keep = {"resourceType", "id", "meta", *query.elements}
        resource = {
            k: v
            for k, v in resource.items()
            if k in keep
            or any(k.startswith(e) and k[len(e) : len(e) + 1].isupper() for e in query.elements)
        }
    else:
        resource.pop("text", None)
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    resource["meta"] = meta
    return resource


def _entry(
    base_url: str, rtype: str, rid: str, content: str, mode: str, query: SearchQuery
) -> dict[str, Any]:
    return {
        "fullUrl": f"{base_url}/{rtype}/{rid}",
        "resource": _subset(content, query),
        "search": {"mode": mode},
    }


async def _include_round(
    conn: asyncpg.Connection,
    tenant: str,
    specs: list[IncludeSpec],
    sources: list[asyncpg.Record],
    seen: set[int],
    limit: int,
) -> list[asyncpg.Record]:
    found: list[asyncpg.Record] = []
    for spec in specs:
        if len(found) >= limit:
            break
        if spec.reverse:
            targets = [(s["type"], s["id"]) for s in sources]
            if not targets:
                continue
            sql = Sql(tenant, "")
            cond = ["x.tenant = $1", f"x.type = {sql.arg(spec.source_type)}"]
            if spec.param is not None:
                cond.append(param_match(sql, "x", spec.source_type, spec.param.code))
            types, ids = sql.arg([t for t, _ in targets]), sql.arg([i for _, i in targets])
            stmt = (
                "SELECT DISTINCT t.rid, t.type, t.id, t.content FROM idx_reference x "
                "JOIN resource t ON t.rid = x.rid "
                f"WHERE {' AND '.join(cond)} AND (x.target_type, x.target_id) IN "
                f"(SELECT * FROM unnest({types}::text[], {ids}::text[])) "
                f"AND t.tenant = $1 AND NOT t.deleted ORDER BY t.rid LIMIT {int(limit)}"
            )
        else:
            rids = [s["rid"] for s in sources if s["type"] == spec.source_type]
            if not rids:
                continue
            sql = Sql(tenant, "")
            cond = ["x.tenant = $1", f"x.rid = ANY({sql.arg(rids)}::bigint[])"]
            cond.append(f"x.type = {sql.arg(spec.source_type)}")
            if spec.param is not None:
                cond.append(param_match(sql, "x", spec.source_type, spec.param.code))
            if spec.target_type is not None:
                cond.append(f"x.target_type = {sql.arg(spec.target_type)}")
            stmt = (
                "SELECT DISTINCT t.rid, t.type, t.id, t.content FROM idx_reference x "
                "JOIN resource t ON t.tenant = $1 AND t.type = x.target_type "
                "AND t.id = x.target_id "
                f"WHERE {' AND '.join(cond)} AND NOT t.deleted ORDER BY t.rid LIMIT {int(limit)}"
            )
        for row in await conn.fetch(stmt, *sql.args):
            if row["rid"] not in seen:
                seen.add(row["rid"])
                found.append(row)
    return found


async def _includes(
    conn: asyncpg.Connection,
    tenant: str,
    query: SearchQuery,
    matches: list[asyncpg.Record],
    limit: int,
) -> list[asyncpg.Record]:
    if not query.includes or not matches:
        return []
    seen = {m["rid"] for m in matches}
    included = await _include_round(conn, tenant, query.includes, matches, seen, limit)
    iterate = [s for s in query.includes if s.iterate]
    frontier = included
    for _ in range(MAX_INCLUDE_ROUNDS):
        if not iterate or not frontier or len(included) >= limit:
            break
        frontier = await _include_round(
            conn, tenant, iterate, frontier, seen, limit - len(included)
        )
        included.extend(frontier)
    return included


def _page_statement(
    sql: Sql, query: SearchQuery, where: str, count: int
) -> tuple[str, list[SortExpr], bool]:
    """The SELECT for one page: sort keys as text columns for the cursor, one row extra to
    learn whether another page follows."""
    exprs = [sort_expression(sql, key, "r", query.resource_type) for key in query.sort]
    backwards = False
    page_where = where
    if query.page is not None:
        values, rid, direction = _decode_cursor(query.page, len(exprs))
        backwards = direction == "p"
        page_where += " AND " + _keyset(sql, exprs, values, rid, backwards)
    key_cols = "".join(f", ({e.sql})::text AS k{i}" for i, e in enumerate(exprs))
    stmt = (
        f"SELECT r.rid, r.type, r.id, r.content{key_cols} FROM resource r WHERE {page_where} "
        f"ORDER BY {_order(exprs, backwards)} LIMIT {sql.arg(count + 1)}"
    )
    return stmt, exprs, backwards


async def explain(
    conn: asyncpg.Connection,
    tenant: str,
    resource_type: str | None,
    params: list[tuple[str, str]],
    *,
    analyze: bool = False,
    count: int = 50,
) -> str:
    """The plan of a search's page query (for benchmarks and index checks)."""
    _check_type(resource_type)
    query = parse(resource_type, params, strict=True)
    sql = Sql(tenant, "")
    where = _where(sql, query, "r", None)
    stmt, _, _ = _page_statement(sql, query, where, query.count or count)
    options = "ANALYZE, BUFFERS, " if analyze else ""
    rows = await conn.fetch(f"EXPLAIN ({options}FORMAT TEXT) {stmt}", *sql.args)
    return "\n".join(r[0] for r in rows)


def _link(url: str, params: list[tuple[str, str]]) -> str:
    return f"{url}?{urlencode(params)}" if params else url


async def search_bundle(
    conn: asyncpg.Connection,
    tenant: str,
    resource_type: str | None,
    params: list[tuple[str, str]],
    *,
    base_url: str,
    strict: bool,
    compartment: tuple[str, str] | None = None,
    default_count: int = 50,
    max_count: int = 1000,
    include_filter: Callable[[str, str], bool] | None = None,
) -> dict[str, Any]:
    """A searchset Bundle for ``params`` (decoded pairs, in request order).

    ``include_filter(type, content)`` drops ``_include``/``_revinclude`` results the caller may
    not see (authorization lives outside search; search only offers the hook)."""
    _check_type(resource_type)
    base_url = base_url.rstrip("/")
    query = parse(resource_type, params, strict=strict)
    count = min(default_count if query.count is None else query.count, max_count)
    if compartment is not None:
        path = f"{base_url}/{compartment[0]}/{compartment[1]}/{resource_type}"
    else:
        path = f"{base_url}/{resource_type}" if resource_type else base_url
    sql = Sql(tenant, base_url)
    where = _where(sql, query, "r", compartment)
    where_args = list(sql.args)

    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": datetime.now(UTC).isoformat().replace("+00:00", "Z")},
        "type": "searchset",
    }
    links = [{"relation": "self", "url": _link(path, query.used)}]
    if query.summary == "count" or count == 0:
        bundle["total"] = await _count(conn, where, where_args, query)
        bundle["link"] = links
        return bundle

    stmt, exprs, backwards = _page_statement(sql, query, where, count)
    rows = await _fetch(conn, stmt, sql.args, query)
    more = len(rows) > count
    rows = rows[:count]
    if backwards:
        rows.reverse()

    total: int | None = None
    if query.total == "estimate":
        total = await _estimate(conn, where, where_args)
    elif query.total != "none":
        if query.page is None and not more:
            total = len(rows)
        else:
            total = await _count(conn, where, where_args, query)
    if total is not None:
        bundle["total"] = total

    def cursor(row: asyncpg.Record, direction: str) -> str:
        return _encode_cursor([row[f"k{i}"] for i in range(len(exprs))], row["rid"], direction)

    link_params = [p for p in query.used if p[0] != "_count"] + [("_count", str(count))]
    links.append({"relation": "first", "url": _link(path, link_params)})
    has_next = more if not backwards else query.page is not None
    has_prev = (query.page is not None) if not backwards else more
    if rows and has_prev:
        links.append(
            {
                "relation": "previous",
                "url": _link(path, [*link_params, ("_page", cursor(rows[0], "p"))]),
            }
        )
    if rows and has_next:
        links.append(
            {
                "relation": "next",
                "url": _link(path, [*link_params, ("_page", cursor(rows[-1], "n"))]),
            }
        )
    bundle["link"] = links

    entries = [_entry(base_url, r["type"], r["id"], r["content"], "match", query) for r in rows]
    included = await _includes(conn, tenant, query, rows, max_count)
    if include_filter is not None:
        included = [r for r in included if include_filter(r["type"], r["content"])]
    entries.extend(
        _entry(base_url, r["type"], r["id"], r["content"], "include", query) for r in included
    )
    bundle["entry"] = entries
    return bundle
