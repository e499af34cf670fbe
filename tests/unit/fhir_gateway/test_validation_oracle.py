"""The fast validator agrees with the fhir.resources R4B models on real FHIR data.

Every official R4 example and every resource of a few Synthea Bundles must pass both; copies of
them broken in one place at a time (wrong primitive type, unknown element, array where a single
value belongs and the reverse, impossible date, bad id, missing required element, choice type
not allowed) must fail both, and the fast validator must name the broken element.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_gateway.fhir.models import model_class
from fhir_gateway.fhir.validation import validate_resource

REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = Path(os.environ.get("FHIR_GATEWAY_SHARED_DATA", REPO.parent / "shared" / "data"))
SYNTHEA_BUNDLES = 3  # a few Bundles keep the suite fast; bench/validate.py reads more

pytestmark = pytest.mark.shared_data

Resource = dict[str, Any]


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {'/'.join(parts)} (no ../shared/data)")
    return path


def spec_examples() -> list[tuple[str, Resource]]:
    folder = shared("fhir-r4-spec", "examples")
    return [(p.name, json.loads(p.read_bytes())) for p in sorted(folder.glob("*.json"))]


def synthea_resources() -> list[tuple[str, Resource]]:
    folder = shared("synthea-r4")
    found: list[tuple[str, Resource]] = []
    for bundle_path in sorted(folder.glob("*.json.gz"))[:SYNTHEA_BUNDLES]:
        bundle = json.loads(gzip.decompress(bundle_path.read_bytes()))
        for i, entry in enumerate(bundle["entry"]):
            found.append((f"{bundle_path.name}#{i}", entry["resource"]))
    return found


def oracle_error(resource: Resource) -> str | None:
    try:
        model_class(resource["resourceType"]).model_validate(resource)
    except Exception as exc:  # any validation failure of the models
        return str(exc)
    return None


def test_every_spec_example_is_valid_for_both() -> None:
    examples = spec_examples()
    assert len(examples) > 100
    for name, resource in examples:
        assert oracle_error(resource) is None, name
        assert validate_resource(resource) == [], name


def test_every_resource_of_synthea_bundles_is_valid_for_both() -> None:
    resources = synthea_resources()
    assert len(resources) > 100
    for name, resource in resources:
        assert validate_resource(resource) == [], name
        assert oracle_error(resource) is None, name


# ---- mutations ---------------------------------------------------------------------------

# A path is the list of keys and indexes from the resource root, rendered like the validator's.
Path_ = tuple[str | int, ...]
Mutation = tuple[str, Path_]  # (kind, expression path expected among the issues)

DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?")
PARTIAL_DATE = re.compile(r"\d{4}(-\d{2})?")

# Required elements of the R4 resource types in the data (cardinality 1..x in the R4 spec).
REQUIRED: dict[str, tuple[str, ...]] = {
    "Observation": ("status", "code"),
    "Encounter": ("status", "class"),
    "Condition": ("subject",),
    "Procedure": ("status", "subject"),
    "MedicationRequest": ("status", "intent", "subject"),
    "Immunization": ("status", "vaccineCode", "patient"),
    "Claim": ("status", "type", "use", "patient", "created", "provider", "priority"),
    "ExplanationOfBenefit": ("status", "type", "use", "patient", "created", "insurer"),
    "DiagnosticReport": ("status", "code"),
    "CarePlan": ("status", "intent", "subject"),
    "Goal": ("lifecycleStatus", "description", "subject"),
    "Bundle": ("type",),
    "RiskAssessment": ("status", "subject"),
    "MedicationAdministration": ("status", "subject"),
    "AllergyIntolerance": ("patient",),
}
# Choice elements whose allowed types never include Signature (only Extension's value[x] does).
CHOICE_PREFIXES = (
    "value",
    "effective",
    "onset",
    "abatement",
    "occurrence",
    "medication",
    "deceased",
    "multipleBirth",
    "performed",
    "serviced",
    "location",
)
CHOICE_TYPES = re.compile(
    r"(Boolean|DateTime|Date|Period|Quantity|CodeableConcept|Reference|String|Integer|Range"
    r"|Ratio|Age|Time|Instant|Address|SampledData)$"
)


def walk(node: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every (path, value) below node, parents first."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, (*path, i))


def get(node: Any, path: Path_) -> Any:
    for step in path:
        node = node[step]
    return node


def inside_extension(path: Path_) -> bool:
    return any(step in ("extension", "modifierExtension") for step in path if isinstance(step, str))


def candidates(resource: Resource) -> dict[str, list[Path_]]:
    """Places in ``resource`` where each kind of mutation applies."""
    found: dict[str, list[Path_]] = {
        "wrong primitive type": [],
        "unknown element": [],
        "array where single expected": [],
        "single where array expected": [],
        "bad date": [],
        "bad id": [],
        "missing required element": [],
        "choice type not allowed": [],
    }
    for path, value in walk(resource):
        key = path[-1] if path else None
        if isinstance(value, dict):
            found["unknown element"].append(path)
            if "resourceType" in value and isinstance(value.get("id"), str):
                found["bad id"].append((*path, "id"))
            for name in REQUIRED.get(str(value.get("resourceType")), ()):
                if name in value:
                    found["missing required element"].append((*path, name))
            if "url" in value and isinstance(key, int) and path[-2] == "extension":
                found["missing required element"].append((*path, "url"))
        if not isinstance(key, str) or key == "resourceType" or key.startswith("_"):
            continue
        if isinstance(value, (str, bool, dict)):
            found["array where single expected"].append(path)
        if isinstance(value, (str, bool, int, float)):
            found["wrong primitive type"].append(path)
        if isinstance(value, list) and len(value) == 1:
            found["single where array expected"].append(path)
        if isinstance(value, str) and DATETIME.fullmatch(value) and not inside_extension(path):
            found["bad date"].append(path)
        if (
            key.startswith(CHOICE_PREFIXES)
            and CHOICE_TYPES.search(key)
            and not inside_extension(path)
            and key not in ("valueSet", "valueString")
        ):
            found["choice type not allowed"].append(path)
    return found


def mutate(resource: Resource, kind: str, path: Path_) -> tuple[Resource, Path_]:
    """A broken copy of resource and the path at which the validator must report it."""
    broken = copy.deepcopy(resource)
    parent = get(broken, path[:-1]) if path else None
    key = path[-1] if path else None
    if kind == "unknown element":
        get(broken, path)["notAnElement"] = "x"
        return broken, (*path, "notAnElement")
    assert parent is not None and key is not None
    value = parent[key]
    if kind == "wrong primitive type":
        if isinstance(value, (bool, int, float)):
            parent[key] = "not-a-number"
        else:
            # The models read a number in a dateTime as a Unix time (see ADR 0002).
            dated = DATETIME.fullmatch(value) or PARTIAL_DATE.fullmatch(value)
            parent[key] = True if dated else 12345
    elif kind == "array where single expected":
        parent[key] = [value]
    elif kind == "single where array expected":
        parent[key] = value[0]
    elif kind == "bad date":
        parent[key] = value[:5] + "02-30" + value[10:]
    elif kind == "bad id":
        parent[key] = "not an id!"
    elif kind == "missing required element":
        del parent[key]
    elif kind == "choice type not allowed":
        assert isinstance(key, str)
        new_key = CHOICE_TYPES.sub("Signature", key)
        parent[new_key] = parent.pop(key)
        return broken, (*path[:-1], new_key)
    return broken, path


def expression(root: str, path: Path_) -> str:
    return root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def mutated_copies(
    resources: list[tuple[str, Resource]], per_kind: int, seed: int
) -> Iterator[tuple[str, Resource, str]]:
    rng = random.Random(seed)
    for name, resource in resources:
        for kind, paths in candidates(resource).items():
            for path in rng.sample(paths, min(per_kind, len(paths))):
                broken, where = mutate(resource, kind, path)
                yield (
                    f"{name} {kind} at {where}",
                    broken,
                    expression(resource["resourceType"], where),
                )


def check_rejected_by_both(cases: Iterator[tuple[str, Resource, str]]) -> int:
    count = 0
    for label, broken, where in cases:
        issues = validate_resource(broken)
        assert issues, f"validator accepted {label}"
        assert oracle_error(broken) is not None, f"oracle accepted {label}"
        expressions = {issue.expression for issue in issues}
        if label.split(" at ")[0].endswith("missing required element"):
            assert where in expressions, (label, expressions)
        else:
            assert any(e == where or e.startswith(where + ".") for e in expressions), (
                label,
                expressions,
            )
        count += 1
    return count


def test_mutated_spec_examples_are_rejected_by_both() -> None:
    assert check_rejected_by_both(mutated_copies(spec_examples(), per_kind=1, seed=4)) > 500


def test_mutated_synthea_resources_are_rejected_by_both() -> None:
    resources = synthea_resources()[::3]
    assert check_rejected_by_both(mutated_copies(resources, per_kind=1, seed=11)) > 1000
