"""Write-time extraction and value normalisation, as pure functions on plain dicts."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from fhir_gateway.search.fhirpath import UnsupportedExpressionError, compile_expression
from fhir_gateway.search.index import extract, split_reference
from fhir_gateway.search.values import HIGH_OPEN, LOW_OPEN, date_range, implicit_range, normalise


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2020", utc(2020, 1, 1), utc(2021, 1, 1)),
        ("2020-02", utc(2020, 2, 1), utc(2020, 3, 1)),
        ("2020-12", utc(2020, 12, 1), utc(2021, 1, 1)),
        ("2020-02-28", utc(2020, 2, 28), utc(2020, 2, 29)),
        ("2020-02-28T10:15", utc(2020, 2, 28, 10, 15), utc(2020, 2, 28, 10, 16)),
        ("2020-02-28T10:15:30Z", utc(2020, 2, 28, 10, 15, 30), utc(2020, 2, 28, 10, 15, 31)),
        ("2020-02-28T10:15:30+02:00", utc(2020, 2, 28, 8, 15, 30), utc(2020, 2, 28, 8, 15, 31)),
        (
            "2020-02-28T10:15:30.25Z",
            utc(2020, 2, 28, 10, 15, 30, 250000),
            utc(2020, 2, 28, 10, 15, 30, 260000),
        ),
        ("9999-12-31", utc(9999, 12, 31), HIGH_OPEN),
    ],
)
def test_date_range_follows_written_precision(text: str, low: datetime, high: datetime) -> None:
    assert date_range(text) == (low, high)


@pytest.mark.parametrize(
    "text", ["", "20", "2020-13", "2020-02-30", "2020-01-01T25:00", "tomorrow"]
)
def test_date_range_rejects_non_dates(text: str) -> None:
    with pytest.raises(ValueError):
        date_range(text)


def test_normalise_folds_case_accents_and_spaces() -> None:
    assert normalise("  Müller-Lüdenscheidt  ") == "muller-ludenscheidt"
    assert normalise("ÅSE  Øster") == normalise("ase  øster")
    assert normalise("Straße") == "strasse"


def test_implicit_range_uses_significant_digits() -> None:
    assert implicit_range(Decimal("100")) == (Decimal("99.5"), Decimal("100.5"))
    assert implicit_range(Decimal("0.32")) == (Decimal("0.315"), Decimal("0.325"))
    assert implicit_range(Decimal("1e2")) == (Decimal("50"), Decimal("150"))


def test_split_reference_forms() -> None:
    assert split_reference("Patient/1") == ("Patient", "1", None)
    assert split_reference("Patient/1/_history/3") == ("Patient", "1", None)
    absolute = "http://example.org/fhir/Patient/1"
    assert split_reference(absolute) == ("Patient", None, absolute)
    assert split_reference("urn:uuid:abc") == (None, None, "urn:uuid:abc")


def test_expressions_outside_the_subset_do_not_compile() -> None:
    with pytest.raises(UnsupportedExpressionError):
        compile_expression("Patient.deceased.exists() and Patient.deceased != false")
    assert (
        len(compile_expression("(Observation.value as Quantity) | Observation.component.value"))
        == 2
    )


def test_token_shapes_codeable_concept_identifier_contactpoint_code_boolean() -> None:
    rows = extract(
        "Patient",
        {
            "resourceType": "Patient",
            "active": True,
            "gender": "female",
            "identifier": [{"system": "urn:s", "value": "1", "type": {"text": "MRN"}}],
            "telecom": [{"system": "email", "value": "a@b.c"}],
            "communication": [
                {"language": {"coding": [{"system": "urn:l", "code": "de"}], "text": "German"}}
            ],
            "meta": {"tag": [{"system": "urn:t", "code": "x"}], "profile": ["http://p"]},
        },
    )
    tokens = set(rows.token)
    assert ("active", None, "true", None) in tokens
    assert ("gender", None, "female", None) in tokens
    assert ("identifier", "urn:s", "1", "mrn") in tokens
    assert ("telecom", "email", "a@b.c", None) in tokens
    assert ("email", "email", "a@b.c", None) in tokens
    assert not any(t[0] == "phone" for t in tokens), "where(system='phone') must filter"
    assert ("language", "urn:l", "de", None) in tokens
    assert ("language", None, None, "german") in tokens
    assert ("_tag", "urn:t", "x", None) in tokens
    assert ("_profile", None, "http://p", None) in tokens


def test_strings_of_names_and_addresses() -> None:
    rows = extract(
        "Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": "Núñez", "given": ["José", "Luis"], "prefix": ["Dr."]}],
            "address": [{"line": ["1 Main St"], "postalCode": "69120"}],
        },
    )
    strings = set(rows.string)
    assert ("family", "nunez", "Núñez") in strings
    assert ("given", "luis", "Luis") in strings
    assert ("name", "jose luis nunez", "José Luis Núñez") in strings
    assert ("name", "dr.", "Dr.") in strings
    assert ("address", "1 main st", "1 Main St") in strings
    assert ("address-postalcode", "69120", "69120") in strings
    assert not any(s[0] == "address-city" for s in strings)


def test_dates_from_choice_types_periods_and_open_ends() -> None:
    rows = extract(
        "Condition",
        {
            "resourceType": "Condition",
            "onsetPeriod": {"start": "2010"},
            "recordedDate": "2011-05-06",
            "abatementString": "childhood",
        },
    )
    dates = {d[0]: (d[1], d[2]) for d in rows.date}
    assert dates["onset-date"] == (utc(2010, 1, 1), HIGH_OPEN)
    assert dates["recorded-date"] == (utc(2011, 5, 6), utc(2011, 5, 7))
    assert "abatement-date" not in dates
    enc = extract("Encounter", {"resourceType": "Encounter", "period": {"end": "2020-01-01"}})
    assert enc.date == [("date", LOW_OPEN, utc(2020, 1, 2))]


def test_patient_parameter_only_takes_patient_references() -> None:
    # The full extraction (scope checks, the audit's patient); the store writes no 'patient' rows
    # for Observation, searches read the 'subject' rows that point at a Patient
    # (test_derived_parameters).
    obs = {
        "resourceType": "Observation",
        "subject": {"reference": "Group/g1"},
        "performer": [{"reference": "Practitioner/d1"}, {"reference": "#contained"}],
    }
    refs = set(extract("Observation", obs).reference)
    assert ("subject", "Group", "g1", None) in refs
    assert not any(r[0] == "patient" for r in refs)
    assert refs >= {("performer", "Practitioner", "d1", None)}
    assert not any(r[3] == "#contained" for r in refs)
    obs["subject"] = {"reference": "Patient/p1"}
    assert ("patient", "Patient", "p1", None) in extract("Observation", obs).reference


def test_quantities_and_numbers() -> None:
    obs = extract(
        "Observation",
        {
            "resourceType": "Observation",
            "valueQuantity": {
                "value": 7.25,
                "unit": "mmol/l",
                "system": "http://unitsofmeasure.org",
                "code": "mmol/L",
            },
        },
    )
    assert (
        "value-quantity",
        Decimal("7.25"),
        "http://unitsofmeasure.org",
        "mmol/L",
    ) in obs.quantity
    assert ("value-quantity", Decimal("7.25"), None, "mmol/l") in obs.quantity
    ra = extract(
        "RiskAssessment",
        {
            "resourceType": "RiskAssessment",
            "prediction": [{"probabilityDecimal": 0.2}, {"probabilityRange": {}}],
        },
    )
    assert ra.quantity == [("probability", Decimal("0.2"), None, None)]


def test_resource_columns_are_not_indexed() -> None:
    rows = extract(
        "Patient",
        {"resourceType": "Patient", "id": "x", "meta": {"lastUpdated": "2020-01-01T00:00:00Z"}},
    )
    assert not any(t[0] == "_id" for t in rows.token)
    assert not any(d[0] == "_lastUpdated" for d in rows.date)


def test_unknown_type_extracts_nothing() -> None:
    rows = extract("Basic", {"resourceType": "Basic", "code": {"text": "x"}})
    assert rows.token == rows.string == rows.date == rows.reference == rows.quantity == []
