"""Every parameter type, modifier and prefix through HTTP, each with results that must NOT match.

Each case names the exact set of resources expected; the data set (``dataset.py``) always holds
near misses (other codes, systems, dates just outside a range, missing values) so a case fails on a
false positive as surely as on a false negative.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.search.dataset import Loaded, load


@pytest.fixture(scope="module")
def data(live_fhir_server) -> Iterator[Loaded]:  # type: ignore[no-untyped-def]
    with live_fhir_server.client("dkfz") as client:
        yield load(client)


def search(client: httpx.Client, data: Loaded, rtype: str, query: str) -> httpx.Response:
    params = [tuple(p.split("=", 1)) for p in data.fill(query).split("&") if p]
    params.append(("_tag", data.tag))
    params.append(("_count", "100"))
    return client.get(f"/{rtype}", params=params)


CASES: list[tuple[str, str, set[str]]] = [
    # token: code, system|code, |code, system|, OR, :not, :text, :missing
    ("Patient", "identifier=urn:sys|A1", {"pA"}),
    ("Patient", "identifier=A1", {"pA", "pC"}),
    ("Patient", "identifier=urn:other|A1", {"pC"}),
    ("Patient", "identifier=urn:sys|", {"pA", "pB"}),
    ("Patient", "identifier=|A1", set()),
    ("Patient", "identifier=urn:sys|B2,urn:other|A1", {"pB", "pC"}),
    ("Patient", "identifier:not=urn:sys|A1", {"pB", "pC"}),
    ("Patient", "identifier:text=medical", {"pA"}),
    ("Patient", "identifier:text=passport", set()),
    ("Patient", "gender=female", {"pA"}),
    ("Patient", "gender:not=female", {"pB", "pC"}),
    ("Patient", "gender:missing=true", {"pC"}),
    ("Patient", "gender:missing=false", {"pA", "pB"}),
    ("Patient", "active=true", {"pA"}),
    ("Patient", "active=false", {"pB"}),
    ("Patient", "telecom=phone|555-1000", {"pA"}),
    ("Patient", "telecom=email|555-1000", set()),
    ("Patient", "_profile=http://example.org/StructureDefinition/research-patient", {"pA"}),
    ("Patient", "_profile=http://example.org/StructureDefinition/other", set()),
    ("Patient", "_security=urn:sec|restricted", {"pB"}),
    ("Patient", "_id={pA},{pB}", {"pA", "pB"}),
    ("Patient", "_id=does-not-exist", set()),
    # string: starts-with, case and accent insensitive, :exact, :contains, AND of repeats
    ("Patient", "name=smi", {"pB", "pC"}),
    ("Patient", "name=muller", {"pA"}),
    ("Patient", "name=MÜL", {"pA"}),
    ("Patient", "name=ann marie", {"pA"}),
    ("Patient", "name=nn", set()),
    ("Patient", "name:contains=mith", {"pB", "pC"}),
    ("Patient", "name:contains=xyz", set()),
    ("Patient", "name:exact=Smith", {"pB"}),
    ("Patient", "name:exact=smith", set()),
    ("Patient", "family:exact=Müller", {"pA"}),
    ("Patient", "family=smith&family=smiths", {"pC"}),
    ("Patient", "name=smi&given=bob", {"pB"}),
    ("Patient", "given=carl", {"pC"}),
    ("Patient", "address-postalcode=691", {"pA"}),
    ("Patient", "address-postalcode=101", {"pB"}),
    # date on a date with day and month precision
    ("Patient", "birthdate=1970", {"pA"}),
    ("Patient", "birthdate=1970-05-02", {"pA"}),
    ("Patient", "birthdate=1970-05-03", set()),
    ("Patient", "birthdate=1985", {"pB"}),
    ("Patient", "birthdate=1985-11-15", set()),
    ("Patient", "birthdate=gt1980", {"pB"}),
    ("Patient", "birthdate=lt1980", {"pA"}),
    ("Patient", "birthdate=ge1985-11", {"pB"}),
    ("Patient", "birthdate=le1985-11-15", {"pA", "pB"}),
    ("Patient", "birthdate=sa1970-05-02", {"pB"}),
    ("Patient", "birthdate=eb1985-11-01", {"pA"}),
    ("Patient", "birthdate=ne1970", {"pB"}),
    ("Patient", "birthdate=ap1970-05-01", {"pA"}),
    ("Patient", "birthdate:missing=true", {"pC"}),
    # reference: Type/id, bare id, :Type, missing
    ("Patient", "organization=Organization/{org1}", {"pA"}),
    ("Patient", "organization={org1}", {"pA"}),
    ("Patient", "organization:Organization={org1}", {"pA"}),
    ("Patient", "organization=Organization/other", set()),
    ("Patient", "organization:missing=true", {"pB", "pC"}),
    ("Patient", "general-practitioner:missing=true", {"pA", "pB", "pC"}),
    # chains and reverse chains
    ("Patient", "organization.name=heidel", {"pA"}),
    ("Patient", "organization.name=berlin", set()),
    ("Patient", "_has:Observation:patient:code=2947-0", {"pB"}),
    ("Patient", "_has:Observation:patient:code=718-7", {"pA", "pC"}),
    ("Patient", "_has:Condition:subject:clinical-status=resolved", {"pB"}),
    ("Patient", "_has:Observation:patient:code=9999-9", set()),
    ("Patient", "_has:Observation:subject:_has:RiskAssessment:patient:risk=high", set()),
    # Encounter: Period dates (closed, open-ended, day-precision), quantity length
    ("Encounter", "patient=Patient/{pA}", {"eA1", "eA2"}),
    ("Encounter", "subject={pB}", {"eB1"}),
    ("Encounter", "patient.identifier=urn:sys|B2", {"eB1"}),
    ("Encounter", "subject:Patient.name=müller", {"eA1", "eA2"}),
    ("Encounter", "status=finished", {"eA1", "eB1"}),
    ("Encounter", "class=IMP", {"eA1"}),
    ("Encounter", "class=http://terminology.hl7.org/CodeSystem/v3-ActCode|EMER", {"eA2"}),
    ("Encounter", "class=http://other|EMER", set()),
    ("Encounter", "type=183452005", {"eA1"}),
    ("Encounter", "type:text=emergency", {"eA1"}),
    ("Encounter", "identifier=urn:enc|E1", {"eA1"}),
    ("Encounter", "reason-code=44054006", {"eA1"}),
    ("Encounter", "service-provider=Organization/{org1}", {"eA1"}),
    ("Encounter", "length=4", {"eA1"}),
    ("Encounter", "length=gt2", {"eA1"}),
    ("Encounter", "length=lt2", {"eB1"}),
    ("Encounter", "length=4|http://unitsofmeasure.org|d", {"eA1"}),
    ("Encounter", "length=4||min", set()),
    ("Encounter", "length=ap4.2", {"eA1"}),
    ("Encounter", "date=2020", {"eA1"}),
    ("Encounter", "date=2020-01-03", set()),
    ("Encounter", "date=ge2021", {"eA2"}),
    ("Encounter", "date=lt2020", {"eB1"}),
    ("Encounter", "date=gt2020-01-04", {"eA1", "eA2"}),
    ("Encounter", "date=gt2020-01-05T11:00:00Z", {"eA1", "eA2"}),
    ("Encounter", "date=gt2020-01-05T12:00:00Z", {"eA2"}),
    ("Encounter", "date=sa2020-01-05", {"eA2"}),
    ("Encounter", "date=eb2020-01-01", {"eB1"}),
    ("Encounter", "date=ne2020", {"eA2", "eB1"}),
    ("Encounter", "date=le2019-03-03", {"eB1"}),
    ("Encounter", "date=2019-03-03T10:00", set()),
    ("Encounter", "date=ge2020-01-01&date=lt2021", {"eA1"}),
    # Condition
    ("Condition", "code=44054006", {"cA1"}),
    ("Condition", "code=http://snomed.info/sct|38341003", {"cB1"}),
    ("Condition", "code=http://loinc.org|38341003", set()),
    ("Condition", "code:text=diabetes", {"cA1"}),
    ("Condition", "code:text=mellitus", {"cA1"}),
    ("Condition", "code:text=abetes", set()),
    ("Condition", "clinical-status=active", {"cA1"}),
    ("Condition", "clinical-status:not=active", {"cB1"}),
    ("Condition", "verification-status=confirmed", {"cA1"}),
    ("Condition", "verification-status:missing=true", {"cB1"}),
    ("Condition", "category=encounter-diagnosis", {"cA1"}),
    ("Condition", "onset-date=2015", {"cA1"}),
    ("Condition", "onset-date=2011", set()),
    ("Condition", "onset-date=ge2011", {"cA1", "cB1"}),
    ("Condition", "onset-date=lt2011", {"cB1"}),
    ("Condition", "recorded-date=2020-01-02", {"cA1"}),
    ("Condition", "recorded-date=2020-01-03", set()),
    ("Condition", "encounter=Encounter/{eA1}", {"cA1"}),
    ("Condition", "patient={pB}", {"cB1"}),
    ("Condition", "subject=Patient/{pC}", set()),
    # MedicationRequest
    ("MedicationRequest", "status=active", {"mA1"}),
    ("MedicationRequest", "intent=plan", {"mB1"}),
    ("MedicationRequest", "code=860975", {"mA1"}),
    ("MedicationRequest", "code:missing=true", {"mB1"}),
    ("MedicationRequest", "medication=Medication/med-1", {"mB1"}),
    ("MedicationRequest", "authoredon=2020", {"mA1"}),
    ("MedicationRequest", "authoredon=lt2020", {"mB1"}),
    ("MedicationRequest", "encounter={eA1}", {"mA1"}),
    ("MedicationRequest", "patient=Patient/{pA}", {"mA1"}),
    ("MedicationRequest", "subject=Patient/{pC}", set()),
    # Observation: quantity prefixes and units, dates with offsets, chains
    ("Observation", "code=718-7", {"oA1", "oA2", "oC1"}),
    ("Observation", "code=http://loinc.org|2947-0", {"oB1"}),
    ("Observation", "code=718-7,2947-0", {"oA1", "oA2", "oB1", "oC1"}),
    ("Observation", "code=718-7&status=final", {"oA1", "oA2"}),
    ("Observation", "category=laboratory", {"oA1"}),
    ("Observation", "status:not=final", {"oC1", "oG1"}),
    ("Observation", "component-code=8480-6", {"oB1"}),
    ("Observation", "date=2020-01-03", {"oA1"}),
    ("Observation", "date=ge2021", {"oA2"}),
    ("Observation", "date=2019-03-03", {"oB1"}),
    ("Observation", "date=2019-03-03T08:00:00Z", {"oB1"}),
    ("Observation", "date=2019-03-03T10:00:00Z", set()),
    ("Observation", "date:missing=true", {"oC1", "oG1"}),
    ("Observation", "value-quantity=11.2", {"oA1"}),
    ("Observation", "value-quantity=11", {"oA1"}),
    ("Observation", "value-quantity=13", set()),
    ("Observation", "value-quantity=gt12", {"oA2", "oB1"}),
    ("Observation", "value-quantity=gt12||g/dL", {"oA2"}),
    ("Observation", "value-quantity=lt12|http://unitsofmeasure.org|g/dL", {"oA1"}),
    ("Observation", "value-quantity=lt12|http://other.org|g/dL", set()),
    ("Observation", "value-quantity=le11.2", {"oA1"}),
    ("Observation", "value-quantity=ge13.5", {"oA2", "oB1"}),
    ("Observation", "value-quantity=ne11.2", {"oA2", "oB1"}),
    ("Observation", "value-quantity=ap130", {"oB1"}),
    ("Observation", "value-quantity=sa13.5", {"oB1"}),
    ("Observation", "value-quantity=eb11.2", set()),
    ("Observation", "subject:Patient.identifier=urn:sys|A1", {"oA1", "oA2"}),
    ("Observation", "patient.name=smith", {"oB1", "oC1"}),
    ("Observation", "patient.gender=male", {"oB1"}),
    ("Observation", "encounter.status=finished", {"oA1"}),
    ("Observation", "patient:missing=false", {"oA1", "oA2", "oB1", "oC1"}),
    # Parameters answered from other parameters' rows (fhir_gateway.search.derived)
    ("Observation", "patient:missing=true", {"oG1"}),
    ("Observation", "patient=grp-1", set()),
    ("Observation", "subject=Group/grp-1", {"oG1"}),
    ("Observation", "patient={pB}", {"oB1"}),
    ("Observation", "patient:Patient={pB}", {"oB1"}),
    ("Observation", "combo-code=8480-6", {"oB1"}),
    ("Observation", "combo-code=http://loinc.org|718-7", {"oA1", "oA2", "oC1"}),
    ("Observation", "combo-code:not=718-7", {"oB1", "oG1"}),
    ("Observation", "combo-code:text=sodium", {"oB1"}),
    ("Observation", "code=8480-6", set()),
    ("Observation", "combo-value-quantity=120", {"oB1"}),
    ("Observation", "combo-value-quantity=lt125", {"oA1", "oA2", "oB1"}),
    ("Observation", "combo-value-quantity:missing=true", {"oC1", "oG1"}),
    ("Encounter", "practitioner=Practitioner/dr-1", {"eA1"}),
    ("Encounter", "practitioner=rp-1", set()),
    ("Encounter", "participant=RelatedPerson/rp-1", {"eB1"}),
    ("Encounter", "practitioner:missing=true", {"eA2", "eB1"}),
    # Procedure
    ("Procedure", "code=80146002", {"prA1"}),
    ("Procedure", "status=completed", {"prA1"}),
    ("Procedure", "status:not=completed", {"prB1"}),
    ("Procedure", "date=2020-01-02", {"prA1"}),
    ("Procedure", "date=2019", {"prB1"}),
    ("Procedure", "date=2018", set()),
    ("Procedure", "encounter={eA1}", {"prA1"}),
    ("Procedure", "subject=Patient/{pB}", {"prB1"}),
    ("Procedure", "patient={pA}", {"prA1"}),
    # RiskAssessment: number with implicit precision
    ("RiskAssessment", "probability=0.32", {"rA1"}),
    ("RiskAssessment", "probability=0.3", {"rA1"}),
    ("RiskAssessment", "probability=0.4", set()),
    ("RiskAssessment", "probability=gt0.1", {"rA1"}),
    ("RiskAssessment", "probability=lt0.1", {"rB1"}),
    ("RiskAssessment", "risk=high", {"rA1"}),
    ("RiskAssessment", "risk=http://terminology.hl7.org/CodeSystem/risk-probability|low", {"rB1"}),
    ("RiskAssessment", "method=readmission-model", {"rA1"}),
    ("RiskAssessment", "identifier=urn:ra|R1", {"rA1"}),
    ("RiskAssessment", "condition=Condition/{cA1}", {"rA1"}),
    ("RiskAssessment", "date=2019-03-04", {"rB1"}),
    ("RiskAssessment", "date=ge2020", {"rA1"}),
    ("RiskAssessment", "encounter={eA1}", {"rA1"}),
    ("RiskAssessment", "patient={pB}", {"rB1"}),
]


@pytest.mark.parametrize(
    ("rtype", "query", "expected"), CASES, ids=[f"{c[0]}?{c[1]}" for c in CASES]
)
def test_search_matches_exactly(
    app_client: httpx.Client, data: Loaded, rtype: str, query: str, expected: set[str]
) -> None:
    r = search(app_client, data, rtype, query)
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "searchset"
    assert data.found(bundle) == expected
    assert bundle["total"] == len(expected)


def test_absolute_reference_on_this_server(app_client: httpx.Client, data: Loaded) -> None:
    url = f"{str(app_client.base_url).rstrip('/')}/Organization/{data.ids['org1']}"
    r = search(app_client, data, "Patient", f"organization={url}")
    assert data.found(r.json()) == {"pA"}
    r = search(app_client, data, "Patient", "organization=http://elsewhere.org/fhir/Organization/x")
    assert data.found(r.json()) == set()


@pytest.mark.parametrize(
    ("rtype", "query", "param"),
    [
        ("Patient", "birthdate=19xx", "birthdate"),
        ("Patient", "birthdate=zz1970", "birthdate"),
        ("Patient", "birthdate=2020-13-01", "birthdate"),
        ("Observation", "value-quantity=abc", "value-quantity"),
        ("Observation", "value-quantity=5|x", "value-quantity"),
        ("Patient", "active:missing=maybe", "active:missing"),
        ("Patient", "_count=-1", "_count"),
        ("Patient", "_count=ten", "_count"),
        ("Patient", "_sort=nonexistent", "_sort"),
        ("Patient", "_total=some", "_total"),
        ("Encounter", "patient=a/b/c", "patient"),
        ("Patient", "_include=Patient:nonexistent", "_include"),
        ("Patient", "_page=garbage", "_page"),
        ("Patient", "_has:Nope:patient:code=1", "_has:Nope:patient:code"),
        ("Patient", "gender=", "gender"),
    ],
)
def test_malformed_values_are_400_naming_the_parameter(
    app_client: httpx.Client, data: Loaded, rtype: str, query: str, param: str
) -> None:
    r = search(app_client, data, rtype, query)
    assert r.status_code == 400, r.text
    issue = r.json()["issue"][0]
    assert issue["expression"] == [param]


def test_unsupported_modifier_is_400(app_client: httpx.Client, data: Loaded) -> None:
    r = search(app_client, data, "Patient", "gender:below=female")
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"
