"""The fast validator on small hand-written resources, checked against the fhir.resources oracle.

These run without the shared data. Every rejection is asserted through the public function with
the location and IssueType the store will put into its OperationOutcome.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_gateway.fhir.models import model_class
from fhir_gateway.fhir.validation import ValidationIssue, known_resource_types, validate_resource

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "example-1",
    "meta": {"versionId": "1", "lastUpdated": "2024-01-02T03:04:05.678+01:00"},
    "extension": [
        {
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
            "valueCode": "F",
        }
    ],
    "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}],
    "active": True,
    "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
    "gender": "male",
    "birthDate": "1974-12-25",
    "_birthDate": {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1974-12-25T14:35:45-05:00",
            }
        ]
    },
    "deceasedBoolean": False,
    "multipleBirthInteger": 2,
    "address": [{"line": ["534 Erewhon St"], "city": "PleasantVille", "postalCode": "3999"}],
    "contact": [{"relationship": [{"coding": [{"code": "N"}]}], "name": {"family": "du Marché"}}],
    "managingOrganization": {"reference": "Organization/1"},
}

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "bp",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}], "text": "BP"},
    "subject": {"reference": "Patient/example-1"},
    "effectiveDateTime": "2012-09-17",
    "issued": "2013-04-03T15:30:10.01+01:00",
    "component": [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "valueQuantity": {"value": 107, "unit": "mmHg", "code": "mm[Hg]"},
        },
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
            "valueQuantity": {"value": 60.5, "unit": "mmHg"},
        },
    ],
}

BUNDLE: dict[str, Any] = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
            "resource": PATIENT,
            "request": {"method": "POST", "url": "Patient"},
        },
        {
            "fullUrl": "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059",
            "resource": OBSERVATION,
            "request": {"method": "POST", "url": "Observation"},
        },
    ],
}


def oracle_accepts(resource: dict[str, Any]) -> bool:
    try:
        model_class(resource["resourceType"]).model_validate(resource)
    except Exception:  # any validation failure of the models
        return False
    return True


def issues_at(resource: dict[str, Any]) -> dict[str, ValidationIssue]:
    return {issue.expression: issue for issue in validate_resource(resource)}


@pytest.mark.parametrize(
    "resource", [PATIENT, OBSERVATION, BUNDLE], ids=lambda r: r["resourceType"]
)
def test_valid_resources_pass_both(resource: dict[str, Any]) -> None:
    assert oracle_accepts(resource)
    assert validate_resource(resource) == []
    assert validate_resource(resource, resource["resourceType"]) == []


def test_contained_resource_is_validated_as_its_own_type() -> None:
    patient = copy.deepcopy(PATIENT)
    patient["contained"] = [{"resourceType": "Organization", "id": "org", "name": "Ward 5"}]
    assert validate_resource(patient) == []
    patient["contained"][0]["alias"] = "not an array"
    found = issues_at(patient)
    assert found["Patient.contained[0].alias"].code == "structure"
    assert not oracle_accepts(patient)


# (description, mutation applied to a copy of PATIENT, expected expression, expected code)
MUTATIONS: list[tuple[str, Any, str, str]] = [
    (
        "wrong primitive type",
        lambda p: p["name"][0].__setitem__("family", 42),
        "Patient.name[0].family",
        "structure",
    ),
    (
        "unknown element",
        lambda p: p["name"][0].__setitem__("nickname", "Pete"),
        "Patient.name[0].nickname",
        "structure",
    ),
    (
        "array where a single value is expected",
        lambda p: p.__setitem__("gender", ["male"]),
        "Patient.gender",
        "structure",
    ),
    (
        "single object where an array is expected",
        lambda p: p.__setitem__("name", p["name"][0]),
        "Patient.name",
        "structure",
    ),
    (
        "single string where an array is expected",
        lambda p: p["name"][0].__setitem__("given", "Peter"),
        "Patient.name[0].given",
        "structure",
    ),
    (
        "object where a primitive is expected",
        lambda p: p.__setitem__("birthDate", {"value": "1974-12-25"}),
        "Patient.birthDate",
        "structure",
    ),
    (
        "impossible date",
        lambda p: p.__setitem__("birthDate", "1974-02-30"),
        "Patient.birthDate",
        "value",
    ),
    (
        "date with a time",
        lambda p: p.__setitem__("birthDate", "1974-12-25T10:00:00Z"),
        "Patient.birthDate",
        "value",
    ),
    (
        "dateTime with a time but no zone",
        lambda p: p["_birthDate"]["extension"][0].__setitem__(
            "valueDateTime", "1974-12-25T14:35:45"
        ),
        "Patient._birthDate.extension[0].valueDateTime",
        "value",
    ),
    ("bad id", lambda p: p.__setitem__("id", "bad id!"), "Patient.id", "value"),
    (
        "string of form feeds",
        lambda p: p["name"][0].__setitem__("family", "\x0c\x0c"),
        "Patient.name[0].family",
        "value",
    ),
    (
        "bad instant",
        lambda p: p["meta"].__setitem__("lastUpdated", "2024-01-02"),
        "Patient.meta.lastUpdated",
        "value",
    ),
    ("bad code", lambda p: p.__setitem__("gender", " male"), "Patient.gender", "value"),
    (
        "integer out of range",
        lambda p: p.__setitem__("multipleBirthInteger", 2**31),
        "Patient.multipleBirthInteger",
        "value",
    ),
    (
        "missing required element",
        lambda p: p["extension"][0].pop("url"),
        "Patient.extension[0].url",
        "required",
    ),
    (
        "missing required complex element",
        lambda p: p.__setitem__("link", [{"type": "seealso"}]),
        "Patient.link[0].other",
        "required",
    ),
    (
        "two types of one choice element",
        lambda p: p.__setitem__("deceasedDateTime", "2020-01-01"),
        "Patient.deceased[x]",
        "structure",
    ),
    (
        "choice with a type it does not allow",
        lambda p: p.__setitem__("multipleBirthString", "twin"),
        "Patient.multipleBirthString",
        "structure",
    ),
    (
        "unknown contained resource type",
        lambda p: p.__setitem__("contained", [{"resourceType": "Wizard", "id": "w"}]),
        "Patient.contained[0].resourceType",
        "value",
    ),
    (
        "wrong resourceType inside an element",
        lambda p: p["managingOrganization"].__setitem__("resourceType", "Organization"),
        "Patient.managingOrganization.resourceType",
        "structure",
    ),
    (
        "primitive extension without content",
        lambda p: p.__setitem__("_gender", {"foo": 1}),
        "Patient._gender.foo",
        "structure",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expression", "code"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS]
)
def test_mutations_are_rejected_by_both(mutate: Any, expression: str, code: str) -> None:
    patient = copy.deepcopy(PATIENT)
    mutate(patient)
    found = issues_at(patient)
    assert expression in found, found
    assert found[expression].code == code
    assert not oracle_accepts(patient)


def test_observation_missing_required_elements() -> None:
    observation = copy.deepcopy(OBSERVATION)
    del observation["status"]
    del observation["component"][1]["code"]
    found = issues_at(observation)
    assert set(found) == {"Observation.status", "Observation.component[1].code"}
    assert {issue.code for issue in found.values()} == {"required"}
    assert not oracle_accepts(observation)


def test_required_primitive_may_be_replaced_by_an_extension() -> None:
    """R4 lets an extension stand in for a required primitive's value (the models agree)."""
    observation = copy.deepcopy(OBSERVATION)
    del observation["status"]
    observation["_status"] = {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                "valueCode": "unknown",
            }
        ]
    }
    assert validate_resource(observation) == []
    assert oracle_accepts(observation)


def test_issues_inside_a_bundle_name_the_entry() -> None:
    bundle = copy.deepcopy(BUNDLE)
    bundle["entry"][1]["resource"]["status"] = 7
    bundle["entry"][0]["request"]["method"] = ["POST"]
    found = issues_at(bundle)
    assert set(found) == {"Bundle.entry[1].resource.status", "Bundle.entry[0].request.method"}
    assert not oracle_accepts(bundle)


def test_primitive_arrays_align_with_their_extensions() -> None:
    patient = copy.deepcopy(PATIENT)
    ext = {"extension": [{"url": "http://example.org/why", "valueString": "unknown"}]}
    patient["name"][0]["given"] = ["Peter", None]
    patient["name"][0]["_given"] = [None, ext]
    assert validate_resource(patient) == []
    assert oracle_accepts(patient)
    patient["name"][0]["_given"] = [None, None]
    assert "Patient.name[0].given[1]" in issues_at(patient)


@pytest.mark.parametrize(
    ("data", "expected_type", "message_part", "code"),
    [
        ({"id": "x"}, None, "missing resourceType", "required"),
        ({"resourceType": "Wizard"}, None, "unknown resourceType", "invalid"),
        ({"resourceType": "Citation"}, None, "unknown resourceType", "invalid"),
        ({"resourceType": 5}, None, "unknown resourceType", "invalid"),
        ({"resourceType": "Patient"}, "Observation", "does not match", "invalid"),
    ],
)
def test_resource_type_problems_give_one_issue(
    data: dict[str, Any], expected_type: str | None, message_part: str, code: str
) -> None:
    issues = validate_resource(data, expected_type)
    assert len(issues) == 1
    assert message_part in issues[0].message
    assert issues[0].code == code


def test_known_resource_types_are_the_served_types() -> None:
    types = known_resource_types()
    assert {"Patient", "Observation", "Bundle", "RiskAssessment", "OperationOutcome"} <= types
    assert "Citation" not in types  # R4B-only
    assert "Element" not in types and "Resource" not in types


# Cases where R4 (4.0.1) and the fhir.resources R4B models disagree; ADR 0002 lists each.
# The models are lenient here; the validator follows R4.
ORACLE_MORE_LENIENT: list[tuple[str, Any, str]] = [
    (
        "primitive array and its extensions of unequal length",
        lambda p: p["name"][0].__setitem__(
            "_given", [{"extension": [{"url": "http://example.org/x", "valueString": "y"}]}]
        ),
        "Patient.name[0]._given",
    ),
    (
        "string over 1 MB",
        lambda p: p["name"][0].__setitem__("family", "x" * (1024 * 1024 + 1)),
        "Patient.name[0].family",
    ),
    ("boolean given as a string", lambda p: p.__setitem__("active", "true"), "Patient.active"),
    (
        "integer given as a string",
        lambda p: p.__setitem__("multipleBirthInteger", "2"),
        "Patient.multipleBirthInteger",
    ),
    (
        "integer given as 2.0",
        lambda p: p.__setitem__("multipleBirthInteger", 2.0),
        "Patient.multipleBirthInteger",
    ),
    (
        "dateTime given as a number (read as a Unix time)",
        lambda p: p["_birthDate"]["extension"][0].__setitem__("valueDateTime", 156000000),
        "Patient._birthDate.extension[0].valueDateTime",
    ),
    ("null value", lambda p: p.__setitem__("gender", None), "Patient.gender"),
    ("empty array", lambda p: p.__setitem__("identifier", []), "Patient.identifier"),
    ("empty object", lambda p: p.__setitem__("maritalStatus", {}), "Patient.maritalStatus"),
    (
        "empty uri",
        lambda p: p["identifier"][0].__setitem__("system", ""),
        "Patient.identifier[0].system",
    ),
    (
        "uri with a space",
        lambda p: p["identifier"][0].__setitem__("system", "urn:a b"),
        "Patient.identifier[0].system",
    ),
    ("id longer than 64", lambda p: p.__setitem__("id", "a" * 65), "Patient.id"),
    ("fhir_comments", lambda p: p.__setitem__("fhir_comments", ["note"]), "Patient.fhir_comments"),
    (
        "contained without resourceType",
        lambda p: p.__setitem__("contained", [{"id": "c1"}]),
        "Patient.contained[0].resourceType",
    ),
    (
        "resourceType naming the element's own type",
        lambda p: p["managingOrganization"].__setitem__("resourceType", "Reference"),
        "Patient.managingOrganization.resourceType",
    ),
    (
        "null in a primitive array without extension",
        lambda p: p["name"][0].__setitem__("given", ["Peter", None]),
        "Patient.name[0].given[1]",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expression"),
    [c[1:] for c in ORACLE_MORE_LENIENT],
    ids=[c[0] for c in ORACLE_MORE_LENIENT],
)
def test_documented_cases_where_the_models_are_more_lenient(mutate: Any, expression: str) -> None:
    patient = copy.deepcopy(PATIENT)
    mutate(patient)
    assert oracle_accepts(patient), "the models became stricter: update ADR 0002 and this list"
    assert expression in issues_at(patient)


def test_resource_without_resource_type_is_accepted_only_by_the_models() -> None:
    """The models take a resource without resourceType; a stored resource must name its type."""
    patient = copy.deepcopy(PATIENT)
    del patient["resourceType"]
    assert model_class("Patient").model_validate(patient) is not None
    assert validate_resource(patient, "Patient")[0].code == "required"


def ext_value(key: str, value: Any) -> dict[str, Any]:
    patient = copy.deepcopy(PATIENT)
    patient["extension"] = [{"url": "http://example.org/x", key: value}]
    return patient


# Cases where the models are stricter than R4; the validator follows R4 (ADR 0002).
ORACLE_STRICTER: list[tuple[str, dict[str, Any]]] = [
    (
        "uuid that is not version 4",
        ext_value("valueUuid", "urn:uuid:c757873d-ec9a-1326-a141-556f43239520"),
    ),
]

# Cases where the two read a value differently; the validator follows R4 (ADR 0002).
ORACLE_DIFFERENT: list[tuple[str, dict[str, Any], str]] = [
    (
        "uuid without its urn:uuid: prefix",
        ext_value("valueUuid", "c757873d-ec9a-4326-a141-556f43239520"),
        "Patient.extension[0].valueUuid",
    ),
]


@pytest.mark.parametrize(
    "resource", [c[1] for c in ORACLE_STRICTER], ids=[c[0] for c in ORACLE_STRICTER]
)
def test_documented_cases_where_the_models_are_stricter(resource: dict[str, Any]) -> None:
    assert not oracle_accepts(resource), "the models became lenient: update ADR 0002"
    assert validate_resource(resource) == []


@pytest.mark.parametrize(
    ("resource", "expression"),
    [c[1:] for c in ORACLE_DIFFERENT],
    ids=[c[0] for c in ORACLE_DIFFERENT],
)
def test_documented_cases_where_only_r4_rejects(resource: dict[str, Any], expression: str) -> None:
    assert oracle_accepts(resource), "the models changed: update ADR 0002"
    assert expression in issues_at(resource)


def test_every_issue_is_reported_not_only_the_first() -> None:
    patient = copy.deepcopy(PATIENT)
    patient["gender"] = 1
    patient["birthDate"] = "1974-13-01"
    patient["name"][0]["given"][1] = ""
    patient["colour"] = "green"
    assert set(issues_at(patient)) == {
        "Patient.gender",
        "Patient.birthDate",
        "Patient.name[0].given[1]",
        "Patient.colour",
    }


def test_a_mapping_that_is_not_a_dict_is_accepted() -> None:
    from types import MappingProxyType

    assert validate_resource(MappingProxyType(OBSERVATION)) == []


def test_remembered_values_stay_bounded_and_never_admit_bad_ones() -> None:
    from fhir_gateway.fhir.validation_primitives import memoized

    memo = memoized("code")
    for i in range(memo.LIMIT + 10):
        assert memo.accepts(f"code-{i}")
    assert 0 < len(memo.known) <= memo.LIMIT
    assert not memo.accepts("two  spaces")
    assert "two  spaces" not in memo.known


def test_absurdly_deep_nesting_is_an_issue_not_a_crash() -> None:
    patient = copy.deepcopy(PATIENT)
    extension: dict[str, Any] = {"url": "http://example.org/leaf", "valueString": "x"}
    for _ in range(5000):
        extension = {"url": "http://example.org/nest", "extension": [extension]}
    patient["extension"] = [extension]
    issues = validate_resource(patient)
    assert [(i.expression, i.code) for i in issues] == [("Patient", "structure")]


def test_minimal_resource_of_every_type_agrees_with_the_models() -> None:
    """Compiles every served type and checks its required elements against the models."""
    rejected = 0
    for name in sorted(known_resource_types()):
        minimal = {"resourceType": name, "id": "x"}
        issues = validate_resource(minimal)
        assert (issues == []) == oracle_accepts(minimal), (name, issues)
        assert all(issue.code == "required" for issue in issues), (name, issues)
        rejected += bool(issues)
    assert rejected > 50  # most types have required elements


def test_required_choice_element() -> None:
    request: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/example-1"},
        "medicationCodeableConcept": {"text": "aspirin"},
    }
    assert validate_resource(request) == []
    del request["medicationCodeableConcept"]
    found = issues_at(request)
    assert found["MedicationRequest.medication[x]"].code == "required"
    assert not oracle_accepts(request)
