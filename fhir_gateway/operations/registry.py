"""Declarative registry of FHIR operations.

An operation is declared once — code, levels, resource types, whether it affects state, and its
parameters — and that declaration drives everything else: the routes that accept it (POST always,
GET only when it does not affect state and takes primitive inputs), its served
OperationDefinition, and its entry in the CapabilityStatement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

PRIMITIVES = frozenset(
    {
        "string",
        "code",
        "uri",
        "canonical",
        "id",
        "boolean",
        "integer",
        "decimal",
        "date",
        "dateTime",
        "instant",
        "positiveInt",
        "unsignedInt",
    }
)


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    min: int = 0
    max: str = "1"
    use: str = "in"
    documentation: str = ""


@dataclass(frozen=True)
class OperationContext:
    """What a handler gets: the caller, the target, parsed inputs and the app's state."""

    principal: Any
    state: Any
    request: Any
    resource_type: str | None
    resource_id: str | None
    params: dict[str, list[Any]]

    def one(self, name: str) -> Any:
        values = self.params.get(name) or []
        return values[0] if values else None


Handler = Callable[[OperationContext], Awaitable[Any]]


@dataclass(frozen=True)
class Operation:
    code: str  # without the leading $
    id: str  # OperationDefinition id
    title: str
    description: str
    handler: Handler
    resource_types: tuple[str, ...] = ()  # empty + system=True: system level only
    system: bool = False
    type_level: bool = False
    instance: bool = False
    affects_state: bool = False
    parameters: tuple[Param, ...] = field(default_factory=tuple)
    canonical_url: str | None = None  # for operations the FHIR spec defines

    @property
    def canonical(self) -> str:
        return self.canonical_url or f"urn:fhir-gateway:OperationDefinition/{self.id}"

    @property
    def allows_get(self) -> bool:
        """GET is offered when the operation changes nothing and has primitive inputs to pass.

        Resource-valued inputs can only travel in a POSTed Parameters body; GET simply cannot
        carry them (``_dispatch`` refuses them by name).
        """
        inputs = [p for p in self.parameters if p.use == "in"]
        return not self.affects_state and (not inputs or any(p.type in PRIMITIVES for p in inputs))

    def applies(self, resource_type: str | None, level: str) -> bool:
        if level == "system":
            return self.system
        if (
            self.resource_types
            and resource_type not in self.resource_types
            and "*" not in (self.resource_types)
        ):
            return False
        return self.type_level if level == "type" else self.instance

    def definition(self) -> dict[str, Any]:
        """The OperationDefinition resource for this operation."""
        resources = list(self.resource_types) if self.resource_types else []
        if "*" in resources:
            resources = ["Resource"]
        body: dict[str, Any] = {
            "resourceType": "OperationDefinition",
            "id": self.id,
            "url": self.canonical,
            "name": self.title.replace(" ", "").replace("-", ""),
            "title": self.title,
            "status": "active",
            "kind": "operation",
            "description": self.description,
            "affectsState": self.affects_state,
            "code": self.code,
            "system": self.system,
            "type": self.type_level,
            "instance": self.instance,
        }
        if resources:
            body["resource"] = resources
        body["parameter"] = [
            {
                k: v
                for k, v in {
                    "name": p.name,
                    "use": p.use,
                    "min": p.min,
                    "max": p.max,
                    "documentation": p.documentation or None,
                    "type": p.type,
                }.items()
                if v is not None
            }
            for p in self.parameters
        ]
        return body


REGISTRY: dict[str, Operation] = {}


def operation(**kwargs: Any) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine as the handler of an operation."""

    def register(fn: Handler) -> Handler:
        op = Operation(handler=fn, **kwargs)
        REGISTRY[op.id] = op
        return fn

    return register


def find(code: str, resource_type: str | None, level: str) -> Operation | None:
    for op in REGISTRY.values():
        if op.code == code and op.applies(resource_type, level):
            return op
    return None


def operations_for(resource_type: str | None) -> list[Operation]:
    """Operations to list under a type in /metadata, or system-level ones for None."""
    load_all()
    if resource_type is None:
        return [op for op in REGISTRY.values() if op.system]
    return [
        op
        for op in REGISTRY.values()
        if (op.type_level or op.instance)
        and (resource_type in op.resource_types or "*" in op.resource_types)
    ]


_LOADED: list[bool] = []


def load_all() -> None:
    """Import every operation module once, so their decorators run."""
    if _LOADED:
        return
    _LOADED.append(True)
    import importlib
    import pkgutil

    import fhir_gateway.operations as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "registry":
            importlib.import_module(f"fhir_gateway.operations.{info.name}")
