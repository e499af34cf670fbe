"""The small FHIRPath subset that R4 search-parameter expressions use, parsed into path steps.

Search values are extracted on every write, so evaluating a general FHIRPath engine per resource
would dominate the write path. The R4 definitions for the types we serve only ever use member
navigation, unions (``|``), type casts (``as`` / ``.as()``), ``where(resolve() is T)``,
``where(key='literal')`` and ``extension('url')``; those parse once into tuples of steps. An
expression outside that subset does not compile, and the generator leaves its parameter out, so
the server never advertises a parameter it cannot index.

The steps are turned into generated Python per resource type by ``compile_extract`` for the write
path. ``evaluate`` interprets them directly: it defines what the steps mean and is the reference
the generated extractors are tested against.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# FHIR data-type names that may end a choice element's JSON key (valueQuantity, onsetPeriod, ...).
CHOICE_TYPES = frozenset(
    {
        "Address",
        "Age",
        "Annotation",
        "Attachment",
        "Base64Binary",
        "Boolean",
        "Canonical",
        "Code",
        "CodeableConcept",
        "Coding",
        "ContactPoint",
        "Count",
        "Date",
        "DateTime",
        "Decimal",
        "Distance",
        "Duration",
        "Expression",
        "HumanName",
        "Id",
        "Identifier",
        "Instant",
        "Integer",
        "Markdown",
        "Money",
        "Oid",
        "Period",
        "PositiveInt",
        "Quantity",
        "Range",
        "Ratio",
        "Reference",
        "SampledData",
        "Signature",
        "String",
        "Time",
        "Timing",
        "UnsignedInt",
        "Uri",
        "Url",
        "Uuid",
    }
)


class UnsupportedExpressionError(ValueError):
    """The expression uses FHIRPath beyond the subset search extraction supports."""


@dataclass(frozen=True)
class Field:
    name: str
    as_type: str | None = None  # FHIR type name with a capital initial, e.g. "DateTime"


@dataclass(frozen=True)
class WhereEquals:
    key: str
    literal: str


@dataclass(frozen=True)
class WhereResolveIs:
    resource_type: str


@dataclass(frozen=True)
class Extension:
    url: str


Step = Field | WhereEquals | WhereResolveIs | Extension


@dataclass(frozen=True)
class Path:
    root: str  # a resource type, or "Resource"/"DomainResource" for every type
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Node:
    """One value reached by a path, with the FHIR type a choice key or cast revealed (if any)."""

    value: Any
    type_hint: str | None


_WHERE_RESOLVE = re.compile(r"^where\(resolve\(\) is (\w+)\)$")
_WHERE_EQ = re.compile(r"^where\((\w+) ?= ?'([^']*)'\)$")
_AS_CALL = re.compile(r"^as\((\w+)\)$")
_EXT_CALL = re.compile(r"^extension\('([^']+)'\)$")
_NAME = re.compile(r"^[A-Za-z_][\w]*$")


def split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if not quoted and depth == 0 and text.startswith(sep, i):
            parts.append("".join(current))
            current = []
            i += len(sep)
            continue
        current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _cap(type_name: str) -> str:
    return type_name[:1].upper() + type_name[1:]


def _compile_one(text: str) -> Path:
    text = text.strip()
    cast: str | None = None
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
        inner = split_top(text, " as ")
        if len(inner) == 2:
            text, cast = inner[0].strip(), _cap(inner[1].strip())
        elif len(inner) != 1:
            raise UnsupportedExpressionError(text)
    pieces = split_top(text, ".")
    if not pieces or not _NAME.match(pieces[0]):
        raise UnsupportedExpressionError(text)
    root = pieces[0]
    steps: list[Step] = []
    for piece in pieces[1:]:
        if m := _AS_CALL.match(piece):
            if not steps or not isinstance(steps[-1], Field):
                raise UnsupportedExpressionError(text)
            steps[-1] = Field(steps[-1].name, _cap(m.group(1)))
        elif m := _WHERE_RESOLVE.match(piece):
            steps.append(WhereResolveIs(m.group(1)))
        elif m := _WHERE_EQ.match(piece):
            steps.append(WhereEquals(m.group(1), m.group(2)))
        elif m := _EXT_CALL.match(piece):
            steps.append(Extension(m.group(1)))
        elif _NAME.match(piece):
            steps.append(Field(piece))
        else:
            raise UnsupportedExpressionError(text)
    if cast is not None:
        if not steps or not isinstance(steps[-1], Field):
            raise UnsupportedExpressionError(text)
        steps[-1] = Field(steps[-1].name, cast)
    if not steps and root not in {"Resource", "DomainResource"}:
        raise UnsupportedExpressionError(text)
    return Path(root, tuple(steps))


@functools.cache
def compile_expression(expression: str) -> tuple[Path, ...]:
    """Compile a union of paths; raises UnsupportedExpressionError outside the subset."""
    if not expression.strip():
        raise UnsupportedExpressionError(expression)
    return tuple(_compile_one(part) for part in split_top(expression, "|"))


def paths_for_type(expression: str, resource_type: str) -> tuple[Path, ...]:
    """The alternatives of a (possibly multi-base) expression that apply to ``resource_type``."""
    return tuple(
        p
        for p in compile_expression(expression)
        if p.root in {resource_type, "Resource", "DomainResource"}
    )


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        yield from value
    elif value is not None:
        yield value


def _field(node: Node, step: Field) -> Iterator[Node]:
    obj = node.value
    if not isinstance(obj, Mapping):
        return
    if step.as_type is not None:
        key = step.name + step.as_type
        if key in obj:
            for v in _children(obj[key]):
                yield Node(v, step.as_type)
        elif step.name in obj:
            # A non-choice element cast to its own type (e.g. "Observation.value as string" never
            # applies here, but "X.period.as(Period)" style casts on a plain element do).
            for v in _children(obj[step.name]):
                yield Node(v, step.as_type)
        return
    if step.name in obj:
        for v in _children(obj[step.name]):
            yield Node(v, None)
        return
    for key, val in obj.items():
        if key.startswith(step.name) and key[len(step.name) :] in CHOICE_TYPES:
            for v in _children(val):
                yield Node(v, key[len(step.name) :])


def _apply(node: Node, step: Step) -> Iterator[Node]:
    if isinstance(step, Field):
        yield from _field(node, step)
    elif isinstance(step, WhereEquals):
        if isinstance(node.value, Mapping) and node.value.get(step.key) == step.literal:
            yield node
    elif isinstance(step, WhereResolveIs):
        from fhir_gateway.search.compile_rows import reference_type

        if reference_type(node.value) == step.resource_type:
            yield node
    else:
        obj = node.value
        if isinstance(obj, Mapping):
            for ext in _children(obj.get("extension")):
                if isinstance(ext, Mapping) and ext.get("url") == step.url:
                    for key, val in ext.items():
                        if key.startswith("value") and key[5:] in CHOICE_TYPES:
                            yield Node(val, key[5:])


def evaluate(paths: tuple[Path, ...], resource: Mapping[str, Any]) -> list[Node]:
    """Every value the paths reach in ``resource`` (lists flattened)."""
    out: list[Node] = []
    for path in paths:
        nodes = [Node(resource, None)]
        for step in path.steps:
            nodes = [child for n in nodes for child in _apply(n, step)]
            if not nodes:
                break
        out.extend(nodes)
    return out
