"""A small clinical data set of our own making, written through the server in one transaction.

Every resource carries a tag unique to the loading test module, and every search adds that tag,
so the expected result sets are exact: a resource missing from a result is a false negative, an
extra one a false positive.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _cc(
    system: str, code: str, display: str | None = None, text: str | None = None
) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    out: dict[str, Any] = {"coding": [coding]}
    if text:
        out["text"] = text
    return out


def _qty(value: float, code: str) -> dict[str, Any]:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def resources() -> dict[str, dict[str, Any]]:
    """Label → resource; references use labels as ``urn:uuid`` placeholders (``{label}``)."""
    return {
        "org1": {"resourceType": "Organization", "name": "Heidelberg Klinik"},
        "pA": {
            "resourceType": "Patient",
            "meta": {"profile": ["http://example.org/StructureDefinition/research-patient"]},
            "active": True,
            "identifier": [
                {"system": "urn:sys", "value": "A1", "type": {"text": "Medical record number"}}
            ],
            "name": [{"family": "Müller", "given": ["Ann", "Marie"]}],
            "telecom": [
                {"system": "phone", "value": "555-1000"},
                {"system": "email", "value": "ann@example.org"},
            ],
            "gender": "female",
            "birthDate": "1970-05-02",
            "address": [{"city": "Heidelberg", "postalCode": "69120"}],
            "managingOrganization": {"reference": "{org1}"},
        },
        "pB": {
            "resourceType": "Patient",
            "meta": {"security": [{"system": "urn:sec", "code": "restricted"}]},
            "active": False,
            "identifier": [{"system": "urn:sys", "value": "B2"}],
            "name": [{"family": "Smith", "given": ["Bob"]}],
            "gender": "male",
            "birthDate": "1985-11",
            "address": [{"city": "Berlin", "postalCode": "10115"}],
        },
        "pC": {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:other", "value": "A1"}],
            "name": [{"family": "Smithson", "given": ["Carla"]}],
        },
        "eA1": {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": ACT, "code": "IMP"},
            "type": [_cc(SNOMED, "183452005", "Emergency hospital admission")],
            "identifier": [{"system": "urn:enc", "value": "E1"}],
            "subject": {"reference": "{pA}"},
            "period": {"start": "2020-01-01T08:00:00Z", "end": "2020-01-05T12:00:00Z"},
            "length": {"value": 4, "unit": "d", "system": UCUM, "code": "d"},
            "reasonCode": [_cc(SNOMED, "44054006")],
            "serviceProvider": {"reference": "{org1}"},
            "participant": [{"individual": {"reference": "Practitioner/dr-1"}}],
        },
        "eA2": {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"system": ACT, "code": "EMER"},
            "subject": {"reference": "{pA}"},
            "period": {"start": "2021-06-01T10:00:00Z"},
        },
        "eB1": {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": ACT, "code": "AMB"},
            "subject": {"reference": "{pB}"},
            "period": {"start": "2019-03-03", "end": "2019-03-03"},
            "length": {"value": 1, "unit": "d", "system": UCUM, "code": "d"},
            "participant": [{"individual": {"reference": "RelatedPerson/rp-1"}}],
        },
        "cA1": {
            "resourceType": "Condition",
            "clinicalStatus": _cc(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
            ),
            "verificationStatus": _cc(
                "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"
            ),
            "category": [
                _cc(
                    "http://terminology.hl7.org/CodeSystem/condition-category",
                    "encounter-diagnosis",
                )
            ],
            "code": _cc(SNOMED, "44054006", "Diabetes mellitus type 2", "Type 2 diabetes"),
            "subject": {"reference": "{pA}"},
            "encounter": {"reference": "{eA1}"},
            "onsetDateTime": "2015-02",
            "recordedDate": "2020-01-02",
        },
        "cB1": {
            "resourceType": "Condition",
            "clinicalStatus": _cc(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "resolved"
            ),
            "code": _cc(SNOMED, "38341003", "Hypertensive disorder"),
            "subject": {"reference": "{pB}"},
            "onsetPeriod": {"start": "2010-01-01", "end": "2012-12-31"},
        },
        "oA1": {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                _cc("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory")
            ],
            "code": _cc(LOINC, "718-7", "Hemoglobin [Mass/volume] in Blood"),
            "subject": {"reference": "{pA}"},
            "encounter": {"reference": "{eA1}"},
            "effectiveDateTime": "2020-01-03T10:00:00Z",
            "valueQuantity": _qty(11.2, "g/dL"),
        },
        "oA2": {
            "resourceType": "Observation",
            "status": "final",
            "code": _cc(LOINC, "718-7"),
            "subject": {"reference": "{pA}"},
            "effectiveDateTime": "2021-06-02T09:30:00Z",
            "valueQuantity": _qty(13.5, "g/dL"),
        },
        "oB1": {
            "resourceType": "Observation",
            "status": "final",
            "code": _cc(LOINC, "2947-0", "Sodium [Moles/volume] in Blood"),
            "subject": {"reference": "{pB}"},
            "effectiveDateTime": "2019-03-03T10:00:00+02:00",
            "valueQuantity": _qty(131, "mmol/L"),
            "component": [{"code": _cc(LOINC, "8480-6"), "valueQuantity": _qty(120, "mm[Hg]")}],
        },
        "oC1": {
            "resourceType": "Observation",
            "status": "preliminary",
            "code": _cc(LOINC, "718-7"),
            "subject": {"reference": "{pC}"},
        },
        # About a group, not a patient: 'patient' (subject where it is a Patient) must miss it.
        "oG1": {
            "resourceType": "Observation",
            "status": "cancelled",
            "code": _cc(LOINC, "8867-4", "Heart rate"),
            "subject": {"reference": "Group/grp-1"},
        },
        "mA1": {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": _cc(
                "http://www.nlm.nih.gov/research/umls/rxnorm", "860975", "Metformin 500 MG"
            ),
            "subject": {"reference": "{pA}"},
            "encounter": {"reference": "{eA1}"},
            "authoredOn": "2020-01-04",
        },
        "mB1": {
            "resourceType": "MedicationRequest",
            "status": "stopped",
            "intent": "plan",
            "medicationReference": {"reference": "Medication/med-1"},
            "subject": {"reference": "{pB}"},
            "authoredOn": "2019-03-03T11:00:00Z",
        },
        "prA1": {
            "resourceType": "Procedure",
            "status": "completed",
            "code": _cc(SNOMED, "80146002", "Appendectomy"),
            "subject": {"reference": "{pA}"},
            "encounter": {"reference": "{eA1}"},
            "performedPeriod": {"start": "2020-01-02T09:00:00Z", "end": "2020-01-02T11:00:00Z"},
        },
        "prB1": {
            "resourceType": "Procedure",
            "status": "not-done",
            "code": _cc(SNOMED, "73761001"),
            "subject": {"reference": "{pB}"},
            "performedDateTime": "2019-03-03",
        },
        "rA1": {
            "resourceType": "RiskAssessment",
            "status": "final",
            "identifier": [{"system": "urn:ra", "value": "R1"}],
            "subject": {"reference": "{pA}"},
            "encounter": {"reference": "{eA1}"},
            "occurrenceDateTime": "2020-01-05T12:00:00Z",
            "method": _cc("urn:fhir-gateway:model", "readmission-model"),
            "condition": {"reference": "{cA1}"},
            "prediction": [
                {
                    "probabilityDecimal": 0.32,
                    "qualitativeRisk": _cc(
                        "http://terminology.hl7.org/CodeSystem/risk-probability", "high"
                    ),
                }
            ],
        },
        "rB1": {
            "resourceType": "RiskAssessment",
            "status": "final",
            "subject": {"reference": "{pB}"},
            "occurrenceDateTime": "2019-03-04",
            "prediction": [
                {
                    "probabilityDecimal": 0.05,
                    "qualitativeRisk": _cc(
                        "http://terminology.hl7.org/CodeSystem/risk-probability", "low"
                    ),
                }
            ],
        },
    }


@dataclass
class Loaded:
    tag: str  # "system|code" of the tag every resource carries
    ids: dict[str, str]  # label → server id
    labels: dict[str, str]  # server id → label

    def fill(self, text: str) -> str:
        """Replace ``{label}`` with the server id of that resource."""
        for label, rid in self.ids.items():
            text = text.replace("{" + label + "}", rid)
        return text

    def found(self, bundle: Mapping[str, Any], mode: str = "match") -> set[str]:
        return {
            self.labels.get(e["resource"]["id"], e["resource"]["id"])
            for e in bundle.get("entry", [])
            if e["search"]["mode"] == mode
        }


def _rewrite(value: Any, urns: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _rewrite(v, urns) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, urns) for v in value]
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return urns[value[1:-1]]
    return value


def load(client: httpx.Client, items: Mapping[str, dict[str, Any]] | None = None) -> Loaded:
    """Create the data set in one transaction; tag every resource with a fresh code."""
    items = items or resources()
    tag_code = uuid.uuid4().hex
    urns = {label: f"urn:uuid:{uuid.uuid4()}" for label in items}
    entries = []
    for label, res in items.items():
        body = _rewrite(res, urns)
        meta = dict(body.get("meta", {}))
        meta["tag"] = [{"system": "urn:search-test", "code": tag_code}]
        body["meta"] = meta
        entries.append(
            {
                "fullUrl": urns[label],
                "resource": body,
                "request": {"method": "POST", "url": body["resourceType"]},
            }
        )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    r = client.post("", json=bundle)
    assert r.status_code == 200, r.text
    ids = {}
    for label, entry in zip(items, r.json()["entry"], strict=True):
        location = entry["response"]["location"]
        ids[label] = location.split("/")[1]
    return Loaded(f"urn:search-test|{tag_code}", ids, {v: k for k, v in ids.items()})


def labels_of(loaded: Loaded, prefix: Iterable[str]) -> set[str]:
    return {label for label in loaded.ids if label.startswith(tuple(prefix))}
