"""SMART scopes: parse v2 (``patient/Observation.rs?category=laboratory``) and v1 (``.read``,
``.write``, ``.*``) into one value type, and answer "does this scope set allow X?".

v1 scopes are mapped onto v2 letters (read → ``rs``, write → ``cud``, ``*`` → ``cruds``) so that
enforcement only knows one vocabulary. Launch and identity scopes (``launch``, ``openid``,
``offline_access``…) parse to ``None``: they grant no data access.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

LETTERS = "cruds"
CONTEXTS = ("patient", "user", "system")
# Audit records are visible only to a scope that names AuditEvent itself: a wildcard such as
# ``system/*.cruds`` (what an institution API key holds) must never reveal who saw what.
EXPLICIT_ONLY = frozenset({"AuditEvent"})

_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]+)\."
    r"(?P<actions>[a-z*]+)(?:\?(?P<query>.+))?$"
)


@dataclass(frozen=True)
class Scope:
    context: str
    resource_type: str  # a FHIR type or "*"
    actions: frozenset[str]
    params: tuple[tuple[str, str], ...] = ()

    def covers_type(self, resource_type: str) -> bool:
        if self.resource_type == resource_type:
            return True
        return self.resource_type == "*" and resource_type not in EXPLICIT_ONLY

    def allows(self, letter: str, resource_type: str) -> bool:
        return letter in self.actions and self.covers_type(resource_type)

    def covers(self, other: Scope) -> bool:
        """Whether ``other`` asks for nothing beyond this scope (used to grant requested scopes)."""
        return (
            self.context == other.context
            and (self.resource_type == "*" or self.resource_type == other.resource_type)
            and other.actions <= self.actions
            and set(self.params) <= set(other.params)
        )


def parse_scope(text: str) -> Scope | None:
    """One scope string → Scope; None for non-resource scopes and for malformed ones."""
    m = _SCOPE.match(text.strip())
    if m is None:
        return None
    actions = m["actions"]
    if actions in _V1:
        letters = _V1[actions]
    else:
        # v2 letters must appear in the order c, r, u, d, s, each at most once.
        positions = [LETTERS.find(ch) for ch in actions]
        if -1 in positions or positions != sorted(set(positions)):
            return None
        letters = actions
        if m["query"] is not None:
            params = tuple(parse_qsl(m["query"], keep_blank_values=False))
            return Scope(m["context"], m["type"], frozenset(letters), params)
    if m["query"] is not None:
        return None  # v1 has no query form
    return Scope(m["context"], m["type"], frozenset(letters))


@functools.lru_cache(maxsize=1024)
def parse_scopes(scopes: frozenset[str] | str) -> tuple[Scope, ...]:
    items: Iterable[str] = scopes.split() if isinstance(scopes, str) else scopes
    parsed = (parse_scope(s) for s in items)
    return tuple(sorted((s for s in parsed if s is not None), key=repr))


def granting(scopes: Iterable[Scope], letter: str, resource_type: str) -> list[Scope]:
    return [s for s in scopes if s.allows(letter, resource_type)]
