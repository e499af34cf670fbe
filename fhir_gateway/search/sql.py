"""Compile a parsed search into parameterised SQL over the resource and index tables.

Every predicate is an ``EXISTS`` over one index table correlated on ``rid``, which PostgreSQL turns
into a semi-join it can drive from either side (the index's ``(tenant, type, param, value)``
prefix or the resource's ``rid``). Every subquery repeats ``tenant = $1``: chains, ``_has`` and
includes must never see another tenant's rows, whatever the join order the planner picks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fhir_gateway.fhir.errors import invalid
from fhir_gateway.search.definitions import SearchParamDef
from fhir_gateway.search.derived import patient_reference_params, source_of
from fhir_gateway.search.query import (
    ChainFilter,
    Filter,
    HasFilter,
    ParamFilter,
    SortKey,
    TypeFilter,
    split_escaped,
    unescape,
)
from fhir_gateway.search.values import date_range, implicit_range, normalise, parse_decimal

PREFIXES = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"})
TABLES = {
    "token": "idx_token",
    "uri": "idx_token",
    "string": "idx_string",
    "date": "idx_date",
    "reference": "idx_reference",
    "quantity": "idx_quantity",
    "number": "idx_quantity",
}


class Sql:
    """Positional arguments and fresh aliases for one statement; ``$1`` is always the tenant."""

    def __init__(self, tenant: str, base_url: str) -> None:
        self.args: list[Any] = [tenant]
        self.base_url = base_url.rstrip("/")
        self._aliases = 0

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def alias(self, prefix: str) -> str:
        self._aliases += 1
        return f"{prefix}{self._aliases}"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _split_prefix(value: str) -> tuple[str, str]:
    if len(value) > 2 and value[:2] in PREFIXES and not value[2].isalpha():
        return value[:2], value[2:]
    return "eq", value


def param_match(sql: Sql, x: str, resource_type: str | None, code: str) -> str:
    """The predicate picking index rows (alias ``x``) of parameter ``code``: its own rows, or,
    for a parameter derived from others (``fhir_gateway.search.derived``), theirs."""
    source = source_of(resource_type, code)
    if len(source.params) == 1:
        pred = f"{x}.param = {sql.arg(source.params[0])}"
    else:
        pred = f"{x}.param = ANY({sql.arg(list(source.params))}::text[])"
    if source.target_type is not None:
        pred += f" AND {x}.target_type = {sql.arg(source.target_type)}"
    return pred


def condition(sql: Sql, flt: Filter, alias: str, resource_type: str | None) -> str:
    """A boolean SQL expression true when resource row ``alias`` matches ``flt``."""
    if isinstance(flt, TypeFilter):
        return f"{alias}.type = ANY({sql.arg(list(flt.types))}::text[])"
    if isinstance(flt, ChainFilter):
        return _chain(sql, flt, alias, resource_type)
    if isinstance(flt, HasFilter):
        return _has(sql, flt, alias, resource_type)
    code = flt.definition.code
    if code == "_id":
        return _id_condition(sql, flt, alias)
    if code == "_lastUpdated":
        return _last_updated(sql, flt, alias)
    return _indexed(sql, flt, alias, resource_type)


def _id_condition(sql: Sql, flt: ParamFilter, alias: str) -> str:
    if flt.modifier == "missing":
        return "false" if flt.values[0] == "true" else "true"
    ids = [unescape(v) for v in flt.values]
    test = f"{alias}.id = ANY({sql.arg(ids)}::text[])"
    return f"NOT ({test})" if flt.modifier == "not" else test


def _date_bounds(flt: ParamFilter, raw: str) -> tuple[str, datetime, datetime]:
    prefix, text = _split_prefix(raw)
    try:
        low, high = date_range(text)
    except ValueError as exc:
        raise invalid(f"Invalid date '{raw}' for parameter '{flt.name}'", [flt.name]) from exc
    return prefix, low, high


def _approx_gap(low: datetime) -> timedelta:
    gap = abs(datetime.now(UTC) - low) / 10
    return max(gap, timedelta(days=1))


def _last_updated(sql: Sql, flt: ParamFilter, alias: str) -> str:
    if flt.modifier == "missing":
        return "false" if flt.values[0] == "true" else "true"
    col = f"{alias}.last_updated"
    preds = []
    for raw in flt.values:
        prefix, low, high = _date_bounds(flt, raw)
        if prefix == "eq":
            preds.append(f"({col} >= {sql.arg(low)} AND {col} < {sql.arg(high)})")
        elif prefix == "ne":
            preds.append(f"({col} < {sql.arg(low)} OR {col} >= {sql.arg(high)})")
        elif prefix in {"gt", "sa"}:
            preds.append(f"{col} >= {sql.arg(high)}")
        elif prefix in {"lt", "eb"}:
            preds.append(f"{col} < {sql.arg(low)}")
        elif prefix == "ge":
            preds.append(f"{col} >= {sql.arg(low)}")
        elif prefix == "le":
            preds.append(f"{col} < {sql.arg(high)}")
        else:
            preds.append(_approx_point(sql, col, low, high))
    return "(" + " OR ".join(preds) + ")"


def _approx_point(sql: Sql, col: str, low: datetime, high: datetime) -> str:
    gap = _approx_gap(low)
    return f"({col} >= {sql.arg(low - gap)} AND {col} < {sql.arg(high + gap)})"


def _indexed(sql: Sql, flt: ParamFilter, alias: str, resource_type: str | None) -> str:
    d = flt.definition
    x = sql.alias("i")
    type_sql = sql.arg(resource_type) if resource_type else f"{alias}.type"
    base = (
        f"SELECT 1 FROM {TABLES[d.type]} {x} WHERE {x}.rid = {alias}.rid AND {x}.tenant = $1 "
        f"AND {x}.type = {type_sql} AND {param_match(sql, x, resource_type, d.code)}"
    )
    if flt.modifier == "missing":
        exists = f"EXISTS ({base})"
        return f"NOT {exists}" if flt.values[0] == "true" else exists
    preds = [_value_predicate(sql, flt, x, v) for v in flt.values]
    body = f"EXISTS ({base} AND ({' OR '.join(preds)}))"
    return f"NOT {body}" if flt.modifier == "not" else body


def _value_predicate(sql: Sql, flt: ParamFilter, x: str, raw: str) -> str:
    kind = flt.definition.type
    if kind == "token":
        return _token(sql, flt, x, raw)
    if kind == "uri":
        return f"{x}.code = {sql.arg(unescape(raw))}"
    if kind == "string":
        return _string(sql, flt, x, raw)
    if kind == "date":
        return _date(sql, flt, x, raw)
    if kind == "reference":
        return _reference(sql, flt, x, raw)
    return _quantity(sql, flt, x, raw)


def _token(sql: Sql, flt: ParamFilter, x: str, raw: str) -> str:
    if flt.modifier == "text":
        text = _like_escape(normalise(unescape(raw)))
        return (
            f"({x}.text LIKE {sql.arg(text + '%')} OR {x}.text LIKE {sql.arg('% ' + text + '%')})"
        )
    parts = split_escaped(raw, "|")
    if len(parts) == 1:
        return f"{x}.code = {sql.arg(unescape(parts[0]))}"
    if len(parts) != 2:
        raise invalid(f"Invalid token '{raw}' for parameter '{flt.name}'", [flt.name])
    system, code = unescape(parts[0]), unescape(parts[1])
    if not system and not code:
        raise invalid(f"Invalid token '{raw}' for parameter '{flt.name}'", [flt.name])
    if not system:
        return f"({x}.system IS NULL AND {x}.code = {sql.arg(code)})"
    if not code:
        return f"{x}.system = {sql.arg(system)}"
    return f"({x}.code = {sql.arg(code)} AND {x}.system = {sql.arg(system)})"


def _next_prefix(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix`` (byte order)."""
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return prefix + "\U0010ffff"
    return prefix[:-1] + chr(last + 1 if last + 1 not in range(0xD800, 0xE000) else 0xE000)


def _string(sql: Sql, flt: ParamFilter, x: str, raw: str) -> str:
    text = unescape(raw)
    if flt.modifier == "exact":
        return f"{x}.exact = {sql.arg(text)}"
    value = normalise(text)
    if not value:
        raise invalid(f"Empty string value for parameter '{flt.name}'", [flt.name])
    if flt.modifier == "contains":
        return f"{x}.value LIKE {sql.arg('%' + _like_escape(value) + '%')}"
    # Starts-with as a byte-order range, which the text_pattern_ops index serves even in a
    # generic (parameterised) plan, unlike LIKE $n.
    return f"({x}.value ~>=~ {sql.arg(value)} AND {x}.value ~<~ {sql.arg(_next_prefix(value))})"


def _date(sql: Sql, flt: ParamFilter, x: str, raw: str) -> str:
    prefix, low, high = _date_bounds(flt, raw)
    # Arguments are added only when used: PostgreSQL cannot type an unreferenced parameter.
    if prefix in {"eq", "ne", "ge", "le"}:
        eq = f"({x}.low >= {sql.arg(low)} AND {x}.high <= {sql.arg(high)})"
        if prefix == "eq":
            return eq
        if prefix == "ne":
            return f"NOT {eq}"
        if prefix == "ge":
            return f"({x}.high > {sql.arg(high)} OR {eq})"
        return f"({x}.low < {sql.arg(low)} OR {eq})"
    if prefix == "gt":
        return f"{x}.high > {sql.arg(high)}"
    if prefix == "lt":
        return f"{x}.low < {sql.arg(low)}"
    if prefix == "sa":
        return f"{x}.low >= {sql.arg(high)}"
    if prefix == "eb":
        return f"{x}.high <= {sql.arg(low)}"
    gap = _approx_gap(low)
    return f"({x}.low < {sql.arg(high + gap)} AND {x}.high > {sql.arg(low - gap)})"


def _reference(sql: Sql, flt: ParamFilter, x: str, raw: str) -> str:
    value = unescape(raw)
    type_modifier = flt.modifier if flt.modifier not in {None, "not", "missing"} else None
    extra = ""
    if sql.base_url and value.startswith(sql.base_url + "/"):
        extra = f" OR {x}.url = {sql.arg(value)}"
        value = value[len(sql.base_url) + 1 :]
    elif "://" in value or value.startswith("urn:"):
        return f"{x}.url = {sql.arg(value)}"
    parts = value.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) == 2 and parts[0] and parts[1]:
        if type_modifier is not None and type_modifier != parts[0]:
            return "false"
        return (
            f"(({x}.target_type = {sql.arg(parts[0])} AND {x}.target_id = {sql.arg(parts[1])})"
            f"{extra})"
        )
    if len(parts) == 1 and parts[0]:
        test = f"{x}.target_id = {sql.arg(parts[0])}"
        if type_modifier is not None:
            test += f" AND {x}.target_type = {sql.arg(type_modifier)}"
        return f"({test})"
    raise invalid(f"Invalid reference '{raw}' for parameter '{flt.name}'", [flt.name])


def _quantity(sql: Sql, flt: ParamFilter, x: str, raw: str) -> str:
    parts = split_escaped(raw, "|")
    if len(parts) not in {1, 3}:
        raise invalid(f"Invalid quantity '{raw}' for parameter '{flt.name}'", [flt.name])
    prefix, number_text = _split_prefix(parts[0])
    try:
        number = parse_decimal(number_text)
    except ValueError as exc:
        raise invalid(f"Invalid number '{raw}' for parameter '{flt.name}'", [flt.name]) from exc
    col = f"{x}.value"
    if prefix in {"eq", "ne"}:
        lo, hi = implicit_range(number)
        test = f"({col} >= {sql.arg(lo)} AND {col} < {sql.arg(hi)})"
        pred = test if prefix == "eq" else f"NOT {test}"
    elif prefix == "ap":
        slack = abs(number) / 10 or Decimal("0.5")
        pred = f"({col} >= {sql.arg(number - slack)} AND {col} <= {sql.arg(number + slack)})"
    else:
        op = {"gt": ">", "sa": ">", "lt": "<", "eb": "<", "ge": ">=", "le": "<="}[prefix]
        pred = f"{col} {op} {sql.arg(number)}"
    if len(parts) == 3:
        system, code = unescape(parts[1]), unescape(parts[2])
        if code:
            pred += f" AND {x}.code = {sql.arg(code)}"
        if system:
            pred += f" AND {x}.system = {sql.arg(system)}"
    return f"({pred})"


def _chain(sql: Sql, flt: ChainFilter, alias: str, resource_type: str | None) -> str:
    c = sql.alias("c")
    type_sql = sql.arg(resource_type) if resource_type else f"{alias}.type"
    alternatives = []
    for target_type, inner in flt.inners:
        t = sql.alias("t")
        tt = sql.arg(target_type)
        alternatives.append(
            f"({c}.target_type = {tt} AND {c}.target_id IN (SELECT {t}.id FROM resource {t} "
            f"WHERE {t}.tenant = $1 AND {t}.type = {tt} AND NOT {t}.deleted AND "
            f"{condition(sql, inner, t, target_type)}))"
        )
    return (
        f"EXISTS (SELECT 1 FROM idx_reference {c} WHERE {c}.rid = {alias}.rid AND "
        f"{c}.tenant = $1 AND {c}.type = {type_sql} AND "
        f"{param_match(sql, c, resource_type, flt.reference.code)} "
        f"AND ({' OR '.join(alternatives)}))"
    )


def _has(sql: Sql, flt: HasFilter, alias: str, resource_type: str | None) -> str:
    h, s = sql.alias("h"), sql.alias("s")
    target_type = sql.arg(resource_type) if resource_type else f"{alias}.type"
    return (
        f"EXISTS (SELECT 1 FROM idx_reference {h} JOIN resource {s} ON {s}.rid = {h}.rid "
        f"WHERE {h}.tenant = $1 AND {h}.type = {sql.arg(flt.source_type)} "
        f"AND {param_match(sql, h, flt.source_type, flt.reference.code)} "
        f"AND {h}.target_type = {target_type} "
        f"AND {h}.target_id = {alias}.id AND {s}.tenant = $1 AND NOT {s}.deleted AND "
        f"{condition(sql, flt.inner, s, flt.source_type)})"
    )


def compartment_condition(
    sql: Sql, alias: str, resource_type: str, params: tuple[str, ...], patient_id: str
) -> str:
    """Membership of ``Patient/patient_id``'s compartment through any of ``params``."""
    pid = sql.arg(patient_id)
    tests = []
    if resource_type == "Patient":
        tests.append(f"{alias}.id = {pid}")
    stored = patient_reference_params(params, [resource_type])
    if stored:
        x = sql.alias("p")
        tests.append(
            f"EXISTS (SELECT 1 FROM idx_reference {x} WHERE {x}.rid = {alias}.rid AND "
            f"{x}.tenant = $1 AND {x}.type = {sql.arg(resource_type)} AND "
            f"{x}.param = ANY({sql.arg(stored)}::text[]) AND {x}.target_type = 'Patient' "
            f"AND {x}.target_id = {pid})"
        )
    return "(" + (" OR ".join(tests) or "false") + ")"


@dataclass(frozen=True)
class SortExpr:
    sql: str  # never NULL: missing values map to a sentinel that sorts last
    cast: str  # type the cursor text is cast back to
    descending: bool


_SORT_COLUMNS = {
    "date": (
        "idx_date",
        "low",
        "timestamptz",
        "'infinity'::timestamptz",
        "'-infinity'::timestamptz",
    ),
    "string": ("idx_string", "value", "text", "chr(1114111)", "''"),
    "token": ("idx_token", "code", "text", "chr(1114111)", "''"),
    "uri": ("idx_token", "code", "text", "chr(1114111)", "''"),
    "quantity": ("idx_quantity", "value", "numeric", "'Infinity'::numeric", "'-Infinity'::numeric"),
    "number": ("idx_quantity", "value", "numeric", "'Infinity'::numeric", "'-Infinity'::numeric"),
    "reference": (
        "idx_reference",
        "coalesce(target_type || '/' || target_id, url)",
        "text",
        "chr(1114111)",
        "''",
    ),
}


def sort_expression(sql: Sql, key: SortKey, alias: str, resource_type: str | None) -> SortExpr:
    d: SearchParamDef = key.definition
    if d.code == "_id":
        return SortExpr(f'{alias}.id COLLATE "C"', "text", key.descending)
    if d.code == "_lastUpdated":
        return SortExpr(f"{alias}.last_updated", "timestamptz", key.descending)
    table, column, cast, high, low = _SORT_COLUMNS[d.type]
    agg = "max" if key.descending else "min"
    sentinel = low if key.descending else high
    x = sql.alias("o")
    collate = ' COLLATE "C"' if cast == "text" else ""
    col = column if "(" in column else f"{x}.{column}"
    expr = (
        f"coalesce((SELECT {agg}({col}{collate}) FROM {table} {x} WHERE {x}.rid = {alias}.rid "
        f"AND {param_match(sql, x, resource_type, d.code)}), {sentinel}{collate})"
    )
    return SortExpr(expr, cast, key.descending)
