"""The write path's reference walk finds what the located walk finds, and locates it."""

from __future__ import annotations

from typing import Any

from fhir_gateway.fhir.references import iter_references, locate, reference_holders


def _resource() -> dict[str, Any]:
    return {
        "resourceType": "Claim",
        "patient": {"reference": "urn:uuid:p"},
        "provider": {"reference": "Organization/1", "display": "x"},
        "diagnosis": [
            {"sequence": 1, "diagnosisReference": {"reference": "urn:uuid:c1"}},
            {"sequence": 2, "diagnosisReference": {"reference": "urn:uuid:c2"}},
        ],
        "item": [{"encounter": [{"reference": "urn:uuid:e"}], "productOrService": {"text": "t"}}],
        "contained": [{"resourceType": "Patient", "link": [{"other": {"reference": "#x"}}]}],
        "insurance": [{"coverage": {"display": "no reference here"}}],
        "text": {"div": "<div>reference</div>"},
        "extension": [{"url": "u", "valueReference": {"reference": 7}}],
    }


def test_finds_every_reference_string_that_the_located_walk_finds() -> None:
    resource = _resource()
    expected = {id(h) for h, _ in iter_references(resource, "Claim")}
    found = reference_holders(resource)
    assert {id(h) for h in found} == expected
    assert len(found) == len(expected) == 6
    assert all(isinstance(h["reference"], str) for h in found)


def test_locate_names_the_element_as_the_located_walk_does() -> None:
    resource = _resource()
    for holder, location in iter_references(resource, "Claim"):
        assert locate(resource, holder) == location
    assert locate(resource, resource["item"][0]["encounter"][0]) == "Claim.item[0].encounter[0]"


def test_a_holder_that_is_not_in_the_resource_is_located_at_the_root() -> None:
    assert locate(_resource(), {"reference": "Patient/1"}) == "Claim"
