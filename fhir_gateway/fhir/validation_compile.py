"""The registry of compiled validators, one per FHIR type, each built on first use.

Validating a resource through the pydantic models costs about 550 µs; the ingest budget is a
tenth of that. Each type gets two checks generated from its model class: a fast yes/no check for
the common valid case and a detailed one that reports every issue with its location. Types are
compiled when first met and cached, so start-up stays cheap and types never sent are never
compiled.
"""

from __future__ import annotations

from typing import Any

from fhir_gateway.fhir.validation_detail import DetailedCheck, Issues, compile_detailed
from fhir_gateway.fhir.validation_fast import FastCheck, compile_fast
from fhir_gateway.fhir.validation_plan import build_plan
from fhir_gateway.fhir.validation_schema import read_schema


class Registry:
    """Compiled validators for one set of FHIR model classes."""

    def __init__(self, resource_models: dict[str, type[Any]]) -> None:
        self._resource_models = resource_models
        self._by_model: dict[type[Any], TypeValidator] = {}

    def known(self, resource_type: str) -> bool:
        return resource_type in self._resource_models

    def resource(self, resource_type: str) -> TypeValidator:
        return self.for_model(self._resource_models[resource_type])

    def for_model(self, model: type[Any]) -> TypeValidator:
        validator = self._by_model.get(model)
        if validator is None:
            validator = self._by_model[model] = TypeValidator(model, self)
        return validator


class TypeValidator:
    """Both checks of one FHIR type; the first call of either compiles the two.

    ``ok`` and ``check`` start as compiling trampolines and are then replaced on the instance, so
    a compiled type costs no "is it compiled yet" test per call.
    """

    __slots__ = ("_registry", "check", "model", "ok")

    def __init__(self, model: type[Any], registry: Registry) -> None:
        self.model = model
        self._registry = registry
        self.ok: FastCheck = self._compile_then_ok
        self.check: DetailedCheck = self._compile_then_check

    def _compile(self) -> None:
        plan = build_plan(read_schema(self.model), self._registry)
        self.ok = compile_fast(plan)
        self.check = compile_detailed(plan)

    def _compile_then_ok(self, value: Any) -> bool:
        self._compile()
        return self.ok(value)

    def _compile_then_check(self, value: Any, path: Any, out: Issues) -> None:
        self._compile()
        self.check(value, path, out)
