"""The committed definitions match the R4 specification and cover what the server promises."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fhir_gateway.search import generate
from fhir_gateway.search.definitions import (
    DATA_FILE,
    patient_compartment,
    search_parameters,
    searchable_types,
)
from fhir_gateway.search.fhirpath import paths_for_type

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("FHIR_GATEWAY_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFINITIONS = SHARED / "fhir-r4-spec" / "definitions"

# The parameters the search issue lists, with their R4 types.
PROMISED = {
    "Patient": {
        "identifier": "token",
        "name": "string",
        "family": "string",
        "given": "string",
        "birthdate": "date",
        "gender": "token",
        "address-postalcode": "string",
        "telecom": "token",
        "active": "token",
        "general-practitioner": "reference",
        "organization": "reference",
    },
    "Encounter": {
        "patient": "reference",
        "subject": "reference",
        "date": "date",
        "status": "token",
        "class": "token",
        "type": "token",
        "identifier": "token",
        "reason-code": "token",
        "service-provider": "reference",
        "length": "quantity",
    },
    "Condition": {
        "patient": "reference",
        "subject": "reference",
        "encounter": "reference",
        "code": "token",
        "clinical-status": "token",
        "verification-status": "token",
        "category": "token",
        "onset-date": "date",
        "recorded-date": "date",
    },
    "MedicationRequest": {
        "patient": "reference",
        "subject": "reference",
        "encounter": "reference",
        "status": "token",
        "intent": "token",
        "code": "token",
        "authoredon": "date",
        "medication": "reference",
    },
    "Observation": {
        "patient": "reference",
        "subject": "reference",
        "encounter": "reference",
        "code": "token",
        "category": "token",
        "date": "date",
        "status": "token",
        "value-quantity": "quantity",
        "component-code": "token",
    },
    "Procedure": {
        "patient": "reference",
        "subject": "reference",
        "encounter": "reference",
        "code": "token",
        "date": "date",
        "status": "token",
    },
    "RiskAssessment": {
        "patient": "reference",
        "subject": "reference",
        "encounter": "reference",
        "date": "date",
        "method": "token",
        "probability": "number",
        "risk": "token",
        "condition": "reference",
        "identifier": "token",
    },
}
COMMON = {
    "_id": "token",
    "_lastUpdated": "date",
    "_tag": "token",
    "_profile": "uri",
    "_security": "token",
}


@pytest.mark.parametrize("rtype", sorted(PROMISED))
def test_promised_parameters_exist_with_r4_types(rtype: str) -> None:
    defs = search_parameters(rtype)
    for code, kind in {**PROMISED[rtype], **COMMON}.items():
        assert code in defs, f"{rtype}.{code} missing"
        assert defs[code].type == kind
        assert defs[code].url.startswith("http://hl7.org/fhir/SearchParameter/")
        if code not in {"_id", "_lastUpdated"}:
            assert paths_for_type(defs[code].expression, rtype), (
                f"{rtype}.{code} compiles to nothing"
            )


def test_reference_targets_and_compartment() -> None:
    assert "Patient" in search_parameters("Observation")["subject"].targets
    assert search_parameters("Encounter")["patient"].targets == ("Group", "Patient")
    assert patient_compartment("Observation") == ("subject", "performer")
    assert patient_compartment("Encounter") == ("patient",)
    assert {"Patient", "Procedure", "RiskAssessment"} <= searchable_types()
    assert search_parameters("NotAType") == {}


@pytest.mark.shared_data
def test_committed_file_matches_the_spec_definitions() -> None:
    """Every parameter the spec's definitions folder yields is in the committed file, unchanged."""
    if not DEFINITIONS.is_dir():
        pytest.skip("../shared/data/fhir-r4-spec/definitions is absent in this checkout")
    fresh = generate.build([DEFINITIONS])
    committed = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    assert fresh["parameters"], "the generator found no parameters"
    for base, params in fresh["parameters"].items():
        for code, entry in params.items():
            assert committed["parameters"][base][code] == entry, f"{base}.{code} differs"


@pytest.mark.shared_data
def test_expressions_come_from_the_spec_files() -> None:
    if not DEFINITIONS.is_dir():
        pytest.skip("../shared/data/fhir-r4-spec/definitions is absent in this checkout")
    spec = json.loads((DEFINITIONS / "SearchParameter-Condition-onset-date.json").read_text())
    ours = search_parameters("Condition")["onset-date"]
    assert ours.expression == spec["expression"]
    assert ours.url == spec["url"]
