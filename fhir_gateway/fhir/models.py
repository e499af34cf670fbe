"""The single import point for the FHIR R4 model classes.

fhir.resources defaults to R5; R4B matches R4 for every resource this server handles, so the
rest of the code base imports models from here and never names the package version itself.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any

from fhir.resources import R4B as _R4B

FHIR_VERSION = "4.0.1"

# Types whose R4B model differs from R4 (or that do not exist in R4) are not served.
_NOT_IN_R4 = frozenset(
    {
        "AdministrableProductDefinition",
        "Citation",
        "ClinicalUseDefinition",
        "Evidence",
        "EvidenceReport",
        "EvidenceVariable",
        "IngredientDefinition",
        "ManufacturedItemDefinition",
        "MedicinalProductDefinition",
        "NutritionProductDefinition",
        "NutritionProduct",
        "PackagedProductDefinition",
        "RegulatedAuthorization",
        "SubscriptionStatus",
        "SubscriptionTopic",
        "Ingredient",
    }
)


@functools.cache
def resource_types() -> frozenset[str]:
    """Every resource type present in both R4 and the R4B models (what /metadata lists)."""
    names: set[str] = set()
    for info in pkgutil.iter_modules(_R4B.__path__):
        mod = info.name
        if mod.startswith("fhirtypes") or mod.startswith("_") or mod in {"tests"}:
            continue
        names.add(mod)
    found: set[str] = set()
    for mod in names:
        try:
            cls = model_class_by_module(mod)
        except (ImportError, AttributeError):
            continue
        if cls is None:
            continue
        if _is_resource(cls):
            found.add(cls.__name__)
    return frozenset(found - _NOT_IN_R4)


def _is_resource(cls: Any) -> bool:
    try:
        from fhir.resources.R4B.domainresource import DomainResource
        from fhir.resources.R4B.resource import Resource
    except ImportError:  # pragma: no cover - guarded by the dependency pin
        return False
    return (
        isinstance(cls, type)
        and issubclass(cls, Resource)
        and cls
        not in (
            Resource,
            DomainResource,
        )
    )


def model_class_by_module(module: str) -> Any:
    m = importlib.import_module(f"fhir.resources.R4B.{module}")
    for name in dir(m):
        if name.lower() == module:
            return getattr(m, name)
    return None


@functools.cache
def model_class(resource_type: str) -> Any:
    """The pydantic model for ``resource_type``; raises KeyError for unknown types."""
    if resource_type not in resource_types():
        raise KeyError(resource_type)
    return model_class_by_module(resource_type.lower())
