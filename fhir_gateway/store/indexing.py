"""Bridge from the store to the search index extractor.

The store writes index rows for every current version; which values go into them is search's
business (``fhir_gateway.search.index``). Keeping the call behind this seam lets the write path
batch the rows of many resources into one COPY per table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Row = tuple[Any, ...]


@dataclass
class IndexBatch:
    """Rows for all index tables, already prefixed with (rid, tenant, type)."""

    token: list[Row] = field(default_factory=list)
    string: list[Row] = field(default_factory=list)
    date: list[Row] = field(default_factory=list)
    reference: list[Row] = field(default_factory=list)
    quantity: list[Row] = field(default_factory=list)

    TABLES = (
        ("token", "idx_token", ("rid", "tenant", "type", "param", "system", "code", "text")),
        ("string", "idx_string", ("rid", "tenant", "type", "param", "value", "exact")),
        ("date", "idx_date", ("rid", "tenant", "type", "param", "low", "high")),
        (
            "reference",
            "idx_reference",
            ("rid", "tenant", "type", "param", "target_type", "target_id", "url"),
        ),
        ("quantity", "idx_quantity", ("rid", "tenant", "type", "param", "value", "system", "code")),
    )

    # PostgreSQL type of each table's value columns (after rid, tenant, type), for the arrays a
    # single resource's rows are sent as (``index_columns``).
    VALUE_TYPES = {
        "token": ("text", "text", "text", "text"),
        "string": ("text", "text", "text"),
        "date": ("text", "timestamptz", "timestamptz"),
        "reference": ("text", "text", "text", "text"),
        "quantity": ("text", "numeric", "text", "text"),
    }

    def add(self, rid: int, tenant: str, rtype: str, resource: Mapping[str, Any]) -> None:
        extract = _extractor()
        if extract is None:
            return
        rows = extract(rtype, resource)
        prefix = (rid, tenant, rtype)
        for attr, _table, _cols in self.TABLES:
            target: list[Row] = getattr(self, attr)
            target.extend(prefix + r for r in getattr(rows, attr))


_cached: list[Callable[[str, Mapping[str, Any]], Any] | None] = []


def _extractor() -> Callable[[str, Mapping[str, Any]], Any] | None:
    if not _cached:
        try:
            from fhir_gateway.search.index import extract_stored as extract
        except ImportError:
            _cached.append(None)
        else:
            _cached.append(extract)
    return _cached[0]


def index_columns(rtype: str, resource: Mapping[str, Any]) -> list[list[Any]]:
    """One resource's index rows as one list per value column, table after table (``TABLES``
    order, without rid, tenant and type): what a single-statement write unnests, so a resource
    written on its own costs one round trip instead of one per index table."""
    extract = _extractor()
    rows = extract(rtype, resource) if extract is not None else None
    out: list[list[Any]] = []
    for attr, _table, _cols in IndexBatch.TABLES:
        width = len(IndexBatch.VALUE_TYPES[attr])
        found = getattr(rows, attr) if rows is not None else []
        out.extend(
            [list(column) for column in zip(*found, strict=True)] or [[] for _ in range(width)]
        )
    return out
