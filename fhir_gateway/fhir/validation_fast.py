"""The fast check: a yes/no answer for a whole resource, with no locations and no allocations.

Ingest sends almost only valid resources, so this is the path that must reach the throughput
budget. It stops at the first problem; the caller then runs the detailed check to say what and
where. It must never say yes where the detailed check would find an issue; it may say no where
the detailed check then finds nothing (that only costs time), which keeps rare cases such as
primitive arrays with null placeholders out of this loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhir_gateway.fhir.validation_plan import TypePlan, has_extension
from fhir_gateway.fhir.validation_primitives import MAX_STRING_LENGTH

FastCheck = Callable[[Any], bool]


def ok_any_resource(registry: Any, value: Any) -> bool:
    if type(value) is not dict:
        return False
    resource_type = value.get("resourceType")
    if type(resource_type) is not str or not registry.known(resource_type):
        return False
    return bool(registry.resource(resource_type).ok(value))


def _ok_list(kind: int, target: Any, value: Any) -> bool:
    """Arrays of primitives, of resources, and "_x" arrays (kinds 4, 6 and 8)."""
    if type(value) is not list or not value:
        return False
    if kind == 4:
        known = target.known
        for item in value:
            if item is None:
                return False  # a placeholder: let the detailed check judge its pairing
            if (type(item) is not str or item not in known) and not target.accepts(item):
                return False
        return True
    if kind == 6:
        return all(ok_any_resource(target, item) for item in value)
    return False  # "_x" arrays come with placeholders; rare enough for the detailed check


def compile_fast(plan: TypePlan) -> FastCheck:
    get = plan.plans.get
    required = plan.required
    choice_keys = plan.choice_keys
    choice_prefix = plan.choice_prefix
    single_group = plan.single_choice_group
    required_choices = plan.required_choices
    max_length = MAX_STRING_LENGTH

    def ok(obj: Any) -> bool:
        if type(obj) is not dict or not obj:
            return False
        for key, value in obj.items():
            element = get(key)
            if element is None:
                return False
            kind, target = element
            # Literal kinds (validation_plan.STRING ...) keep this loop on constant loads.
            if kind == 0:
                if type(value) is not str or not value or len(value) > max_length:
                    return False
                if not value.isprintable() and target(value) is not None:
                    return False
            elif kind == 1:
                if (type(value) is not str or value not in target.known) and not target.accepts(
                    value
                ):
                    return False
            elif kind == 2:
                if not target.ok(value):
                    return False
            elif kind == 3:
                if type(value) is not list or not value:
                    return False
                item_ok = target.ok
                for item in value:
                    if not item_ok(item):
                        return False
            elif kind == 7:
                if value != target:
                    return False
            elif kind == 5:
                if not ok_any_resource(target, value):
                    return False
            elif not _ok_list(kind, target, value):
                return False
        if required:
            for name, ext_name in required:
                if name not in obj and not (
                    ext_name is not None and has_extension(obj.get(ext_name))
                ):
                    return False
        if choice_keys:
            present = choice_keys.intersection(obj)
            if len(present) > 1 and (
                single_group or len({choice_prefix[name] for name in present}) < len(present)
            ):
                return False
            for _label, names in required_choices:
                if present.isdisjoint(names):
                    return False
        return True

    return ok
