"""Reference handling that needs neither HTTP nor SQL: parsing and rewriting.

A transaction may refer to its own entries by ``urn:uuid:`` fullUrls or by absolute URLs; the
server assigns ids and rewrites every ``reference`` element, however deeply nested, before the
resources are stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

_RELATIVE = re.compile(
    r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([A-Za-z0-9\-.]{1,64}))?$"
)
ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class LocalRef:
    type: str
    id: str
    version: str | None = None


def parse_relative(value: str) -> LocalRef | None:
    m = _RELATIVE.match(value)
    if not m:
        return None
    return LocalRef(m.group(1), m.group(2), m.group(3))


def parse_local(value: str, base_url: str) -> LocalRef | None:
    """A reference to this server: relative, or absolute under ``base_url``."""
    if value.startswith(base_url + "/"):
        value = value[len(base_url) + 1 :]
    return parse_relative(value)


def iter_references(node: Any, path: str = "") -> Iterator[tuple[dict[str, Any], str]]:
    """Yield (the dict holding a ``reference`` string, its FHIRPath-like location)."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            yield node, path
        for key, value in node.items():
            if isinstance(value, dict | list):
                yield from iter_references(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from iter_references(item, f"{path}[{i}]")


def reference_holders(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Every dict holding a ``reference`` string, in no particular order.

    The write path rewrites references of every resource of every transaction; building a
    location string for each element (as ``iter_references`` does) costs more than the walk,
    and it is only needed when something is wrong, so this walk skips it. ``locate`` finds the
    location of one holder afterwards.
    """
    found: list[dict[str, Any]] = []
    stack: list[Any] = [resource]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if type(node) is dict:
            if type(node.get("reference")) is str:
                found.append(node)
            for value in node.values():
                kind = type(value)
                if kind is dict or kind is list:
                    push(value)
        else:
            for value in node:
                kind = type(value)
                if kind is dict or kind is list:
                    push(value)
    return found


def locate(resource: dict[str, Any], holder: dict[str, Any]) -> str:
    """The FHIRPath-like location of ``holder`` inside ``resource`` (for error messages)."""
    for candidate, location in iter_references(resource, resource.get("resourceType", "")):
        if candidate is holder:
            return location
    return str(resource.get("resourceType", ""))


def rewrite_references(resource: dict[str, Any], resolve: Callable[[str, str], str | None]) -> None:
    """Replace each reference for which ``resolve(reference, location)`` returns a new value."""
    for holder, location in iter_references(resource, resource.get("resourceType", "")):
        new = resolve(holder["reference"], location)
        if new is not None:
            holder["reference"] = new
