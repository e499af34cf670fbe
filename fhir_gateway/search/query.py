"""Parse FHIR search parameters into a typed query, before any SQL is written.

Names, modifiers, chains and ``_has`` are resolved against the generated definitions here, so the
SQL compiler only ever sees parameters that exist. Unknown parameters are dropped (and left out of
the ``self`` link) unless the client asked for ``Prefer: handling=strict``; a malformed value or an
unsupported modifier on a known parameter is always a 400 naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_gateway.fhir.errors import invalid, not_supported
from fhir_gateway.search.definitions import SearchParamDef, search_parameters, searchable_types

# Modifiers each parameter type accepts (besides :missing, valid everywhere).
MODIFIERS: dict[str, frozenset[str]] = {
    "token": frozenset({"not", "text"}),
    "uri": frozenset({"not"}),
    "string": frozenset({"exact", "contains"}),
    "date": frozenset(),
    "reference": frozenset(),  # plus :[Type]
    "quantity": frozenset(),
    "number": frozenset(),
}
RESULT_PARAMS = frozenset(
    {
        "_count",
        "_sort",
        "_total",
        "_summary",
        "_elements",
        "_include",
        "_revinclude",
        "_page",
        "_format",
        "_pretty",
    }
)


@dataclass(frozen=True)
class ParamFilter:
    """One parameter occurrence: its values are ORed; separate occurrences are ANDed."""

    name: str  # as the client wrote it (for error expressions)
    definition: SearchParamDef
    modifier: str | None
    values: tuple[str, ...]


@dataclass(frozen=True)
class ChainFilter:
    name: str
    reference: SearchParamDef
    inners: tuple[tuple[str, Filter], ...]  # (target type, filter on that type); any may match


@dataclass(frozen=True)
class HasFilter:
    name: str
    source_type: str
    reference: SearchParamDef
    inner: Filter


@dataclass(frozen=True)
class TypeFilter:
    """``_type`` in a system-level search."""

    types: tuple[str, ...]


Filter = ParamFilter | ChainFilter | HasFilter | TypeFilter


@dataclass(frozen=True)
class IncludeSpec:
    source_type: str
    param: SearchParamDef | None  # None = every reference parameter ("*")
    target_type: str | None
    iterate: bool
    reverse: bool


@dataclass(frozen=True)
class SortKey:
    name: str
    definition: SearchParamDef
    descending: bool


@dataclass
class SearchQuery:
    resource_type: str | None
    filters: list[Filter] = field(default_factory=list)
    count: int | None = None
    sort: list[SortKey] = field(default_factory=list)
    total: str | None = None  # none | estimate | accurate
    summary: str | None = None  # count | data | false
    elements: tuple[str, ...] = ()
    includes: list[IncludeSpec] = field(default_factory=list)
    page: str | None = None
    # The parameters that took effect, in order, for the self link.
    used: list[tuple[str, str]] = field(default_factory=list)


def split_escaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` where it is not escaped with a backslash; pieces keep their escapes."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _unknown(name: str, strict: bool, why: str) -> None:
    if strict:
        raise invalid(f"Unknown or unsupported search parameter '{name}': {why}", [name])


def _lookup(resource_type: str | None, code: str) -> SearchParamDef | None:
    if resource_type is None:
        from fhir_gateway.search.definitions import common_parameters

        return common_parameters().get(code)
    return search_parameters(resource_type).get(code)


def _parse_simple(resource_type: str | None, name: str, value: str, strict: bool) -> Filter | None:
    """A parameter with an optional modifier, or a chain (``a.b``) — not ``_has``."""
    if name.startswith("_has:"):
        return _parse_has(resource_type, name, value, strict)
    head, dot, rest = name.partition(".")
    code, colon, modifier = head.partition(":")
    definition = _lookup(resource_type, code)
    if definition is None:
        _unknown(name, strict, f"not defined for {resource_type or 'system search'}")
        return None
    if dot:
        return _parse_chain(resource_type, name, definition, modifier or None, rest, value, strict)
    mod = modifier if colon else None
    if mod is not None and mod != "missing" and mod not in MODIFIERS.get(definition.type, ()):
        is_type_modifier = definition.type == "reference" and mod in searchable_types()
        if not is_type_modifier:
            raise not_supported(f"Modifier ':{mod}' is not supported on '{code}'", status=400)
    if mod == "missing" and value not in {"true", "false"}:
        raise invalid(f"':missing' takes true or false, not '{value}'", [name])
    if value == "" and mod != "missing":
        raise invalid(f"Search parameter '{name}' has an empty value", [name])
    values = tuple(split_escaped(value, ","))
    return ParamFilter(name, definition, mod, values)


def _parse_chain(
    resource_type: str | None,
    name: str,
    reference: SearchParamDef,
    type_modifier: str | None,
    rest: str,
    value: str,
    strict: bool,
) -> Filter | None:
    if reference.type != "reference":
        raise invalid(f"'{reference.code}' is not a reference and cannot be chained", [name])
    if type_modifier is not None:
        if type_modifier not in searchable_types():
            raise invalid(f"Unknown resource type '{type_modifier}' in chain", [name])
        candidates: tuple[str, ...] = (type_modifier,)
    else:
        candidates = tuple(t for t in reference.targets if t in searchable_types())
    inner_code = rest.partition(".")[0].partition(":")[0]
    inners: list[tuple[str, Filter]] = []
    for target in candidates:
        if inner_code not in search_parameters(target):
            continue
        inner = _parse_simple(target, rest, value, strict=True)
        if inner is not None:
            inners.append((target, inner))
    if not inners:
        _unknown(name, strict, f"no target of '{reference.code}' has parameter '{inner_code}'")
        return None
    return ChainFilter(name, reference, tuple(inners))


def _parse_has(resource_type: str | None, name: str, value: str, strict: bool) -> Filter | None:
    parts = name.split(":", 3)
    if len(parts) != 4 or resource_type is None:
        raise invalid(f"Malformed _has parameter '{name}'", [name])
    _, source_type, ref_code, rest = parts
    if source_type not in searchable_types():
        raise invalid(f"Unknown resource type '{source_type}' in _has", [name])
    reference = search_parameters(source_type).get(ref_code)
    if reference is None or reference.type != "reference":
        raise invalid(f"'{ref_code}' is not a reference parameter of {source_type}", [name])
    inner = _parse_simple(source_type, rest, value, strict=True)
    if inner is None:  # pragma: no cover - strict parsing raises instead
        return None
    return HasFilter(name, source_type, reference, inner)


def _int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise invalid(f"'{name}' must be a whole number, not '{value}'", [name]) from exc
    if number < 0:
        raise invalid(f"'{name}' must not be negative", [name])
    return number


def _parse_include(
    resource_type: str | None, name: str, value: str, strict: bool
) -> IncludeSpec | None:
    base, _, modifier = name.partition(":")
    if modifier not in {"", "iterate", "recurse"}:
        raise invalid(f"Unsupported modifier on {base}: '{modifier}'", [name])
    reverse = base == "_revinclude"
    iterate = modifier in {"iterate", "recurse"}
    if value == "*":
        # "_include=*" follows every reference of the matches; a reverse "*" names no source
        # type to look in, so it is treated as unsupported.
        if resource_type is None or reverse:
            _unknown(name, strict, "'*' is supported for _include only")
            return None
        return IncludeSpec(resource_type, None, None, iterate, reverse)
    parts = value.split(":")
    if len(parts) not in {2, 3} or parts[0] not in searchable_types():
        raise invalid(f"Malformed {base} value '{value}'", [name])
    source, code = parts[0], parts[1]
    definition = search_parameters(source).get(code)
    if definition is None or definition.type != "reference":
        raise invalid(f"'{code}' is not a reference parameter of {source}", [name])
    target = parts[2] if len(parts) == 3 else None
    if target is not None and target not in searchable_types():
        raise invalid(f"Unknown target type '{target}' in {base}", [name])
    if not reverse and not iterate and source != resource_type:
        _unknown(name, strict, f"{source} is not the searched type")
        return None
    return IncludeSpec(source, definition, target, iterate, reverse)


def parse(resource_type: str | None, params: list[tuple[str, str]], *, strict: bool) -> SearchQuery:
    """Resolve ``params`` (already URL-decoded pairs) into a SearchQuery, or raise a 400."""
    query = SearchQuery(resource_type)
    for name, value in params:
        if _parse_one(query, name, value, strict):
            query.used.append((name, value))
    return query


_SUMMARIES = frozenset({"count", "data", "false"})
_TOTALS = frozenset({"none", "estimate", "accurate"})


def _parse_one(query: SearchQuery, name: str, value: str, strict: bool) -> bool:
    rt = query.resource_type
    base = name.partition(":")[0]
    if base in RESULT_PARAMS or base in {"_include", "_revinclude"}:
        if name == "_count":
            query.count = _int(name, value)
        elif name == "_sort":
            query.sort = _parse_sort(rt, value)
        elif name == "_total":
            if value not in _TOTALS:
                raise invalid(
                    f"_total must be one of none, estimate, accurate; not '{value}'", [name]
                )
            query.total = value
        elif name == "_summary":
            if value not in _SUMMARIES:
                raise not_supported(f"_summary={value} is not supported", status=400)
            query.summary = value
        elif name == "_elements":
            query.elements = tuple(e.strip() for e in value.split(",") if e.strip())
        elif base in {"_include", "_revinclude"}:
            spec = _parse_include(rt, name, value, strict)
            if spec is None:
                return False
            query.includes.append(spec)
        elif name == "_page":
            query.page = value
            return False
        else:
            return name in {"_format", "_pretty"}
        return True
    if name == "_type":
        if rt is not None:
            _unknown(name, strict, "_type applies to system-level search only")
            return False
        types = tuple(t for t in value.split(",") if t)
        for t in types:
            if t not in searchable_types():
                raise invalid(f"Unknown resource type '{t}' in _type", [name])
        query.filters.append(TypeFilter(types))
        return True
    flt = _parse_simple(rt, name, value, strict)
    if flt is None:
        return False
    query.filters.append(flt)
    return True


def _parse_sort(resource_type: str | None, value: str) -> list[SortKey]:
    keys = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        descending = item.startswith("-")
        code = item.lstrip("-")
        definition = _lookup(resource_type, code)
        if definition is None or definition.type not in {
            "token",
            "string",
            "date",
            "quantity",
            "number",
            "reference",
            "uri",
        }:
            raise invalid(f"Cannot sort by '{code}'", ["_sort"])
        keys.append(SortKey(code, definition, descending))
    return keys
