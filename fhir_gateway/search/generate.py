"""Derive ``search_parameters.json`` from the R4 specification's own SearchParameter resources.

The server must not carry hand-typed search definitions: names, types, targets and FHIRPath
expressions come from the published R4 (4.0.1) SearchParameter JSONs, filtered to the resource
types we serve and to the FHIRPath subset our extractor compiles. The spec files are not shipped
with the code, so this script writes a small committed derived file that the server loads.

Sources, in order (later files never override earlier ones for the same url):

* the spec's ``definitions`` folder beside the repository
  (``../shared/data/fhir-r4-spec/definitions``);
* optionally the full npm package ``hl7.fhir.r4.examples@4.0.1`` (``--package``: the ``.tgz`` from
  ``npm pack`` or its unpacked folder). Procedure's own parameters (status, subject, ...) and the
  Patient CompartmentDefinition exist only there.

Run: ``python -m fhir_gateway.search.generate [--package hl7.fhir.r4.examples-4.0.1.tgz]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fhir_gateway.search.fhirpath import UnsupportedExpressionError, paths_for_type, split_top

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(__file__).with_name("search_parameters.json")
CORE_URL = "http://hl7.org/fhir/SearchParameter/"

# The clinical types this server indexes, and the types their references usually point at
# (so chains and _include targets are searchable too).
SERVED_TYPES = (
    "Patient",
    "Encounter",
    "Condition",
    "MedicationRequest",
    "Observation",
    "Procedure",
    "RiskAssessment",
    "AllergyIntolerance",
    "CarePlan",
    "CareTeam",
    "Claim",
    "Device",
    "DiagnosticReport",
    "DocumentReference",
    "ExplanationOfBenefit",
    "Group",
    "ImagingStudy",
    "Immunization",
    "Location",
    "Medication",
    "MedicationAdministration",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Provenance",
    "SupplyDelivery",
)
# Resource-level parameters served on every type; _text/_content/_query/_filter need engines we
# do not run.
RESOURCE_PARAMS = ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source")
SUPPORTED_TYPES = frozenset({"token", "string", "date", "reference", "quantity", "number", "uri"})
# Ids of files in the spec folders that are examples or extension-defined, not core parameters.
_NON_CORE_PREFIXES = ("example", "filter", "patient-extensions-", "observation-genetic-")
# Parameters whose matching needs an algorithm we do not implement (sound-alike names).
_UNSUPPORTED_CODES = frozenset({"phonetic"})


def default_definitions_dir() -> Path:
    shared = os.environ.get("FHIR_GATEWAY_SHARED_DATA")
    base = Path(shared) if shared else REPO_ROOT / ".." / "shared" / "data"
    return base / "fhir-r4-spec" / "definitions"


def _iter_folder(folder: Path, prefix: str) -> Iterator[dict[str, Any]]:
    for path in sorted(folder.glob(f"{prefix}*.json")):
        yield json.loads(path.read_text(encoding="utf-8"))


def _iter_tgz(archive: Path, prefix: str) -> Iterator[dict[str, Any]]:
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and name.startswith(prefix) and name.endswith(".json"):
                handle = tar.extractfile(member)
                if handle is not None:
                    yield json.loads(handle.read())


def _iter_sources(sources: list[Path], prefix: str) -> Iterator[dict[str, Any]]:
    for src in sources:
        if src.is_dir():
            inner = src / "package"
            yield from _iter_folder(inner if inner.is_dir() else src, prefix)
        else:
            yield from _iter_tgz(src, prefix)


def _is_core(sp: dict[str, Any]) -> bool:
    sp_id = str(sp.get("id", ""))
    return (
        sp.get("url") == CORE_URL + sp_id
        and not sp_id.startswith(_NON_CORE_PREFIXES)
        and sp.get("type") in SUPPORTED_TYPES
        and bool(sp.get("expression"))
        and sp.get("code") not in _UNSUPPORTED_CODES
    )


def build(sources: list[Path]) -> dict[str, Any]:
    """The derived document: parameters per base ("Resource" for the common ones), compartments."""
    params: dict[str, dict[str, dict[str, Any]]] = {}
    seen: set[str] = set()
    for sp in _iter_sources(sources, "SearchParameter-"):
        if sp.get("resourceType") != "SearchParameter" or not _is_core(sp) or sp["url"] in seen:
            continue
        seen.add(sp["url"])
        code = sp["code"]
        for base in sp.get("base", []):
            if base == "Resource":
                if code not in RESOURCE_PARAMS:
                    continue
            elif base not in SERVED_TYPES:
                continue
            try:
                paths = paths_for_type(sp["expression"], base)
            except UnsupportedExpressionError:
                continue
            if not paths:
                continue
            alternatives = [p.strip() for p in _split_union(sp["expression"])]
            own = [a for a in alternatives if _root(a) in {base, "Resource"}]
            params.setdefault(base, {})[code] = {
                "type": sp["type"],
                "expression": " | ".join(own),
                "url": sp["url"],
                "target": sorted(sp.get("target", [])),
            }
    compartments: dict[str, dict[str, list[str]]] = {}
    for cd in _iter_sources(sources, "CompartmentDefinition-"):
        if cd.get("resourceType") != "CompartmentDefinition" or cd.get("code") != "Patient":
            continue
        compartments["Patient"] = {
            r["code"]: list(r["param"])
            for r in cd.get("resource", [])
            if r.get("param") and r["code"] in SERVED_TYPES
        }
    return {
        "fhirVersion": "4.0.1",
        "generatedBy": "fhir_gateway.search.generate",
        "parameters": {k: dict(sorted(v.items())) for k, v in sorted(params.items())},
        "compartments": compartments,
    }


def _split_union(expression: str) -> list[str]:
    return split_top(expression, "|")


def _root(alternative: str) -> str:
    return alternative.lstrip("(").split(".", 1)[0].split(" ", 1)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--definitions", type=Path, default=default_definitions_dir())
    parser.add_argument("--package", type=Path, default=None, help="hl7.fhir.r4.examples tgz/dir")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if not args.definitions.is_dir():
        print(f"definitions folder not found: {args.definitions}", file=sys.stderr)
        return 2
    sources = [args.definitions] + ([args.package] if args.package else [])
    doc = build(sources)
    args.output.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    count = sum(len(v) for v in doc["parameters"].values())
    print(f"wrote {count} parameters for {len(doc['parameters'])} bases to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
