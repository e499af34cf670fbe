"""Feature extraction on small hand-built FHIR records."""

from datetime import datetime, timedelta

import pytest
from rm_records import ADMIT, DISCHARGE, Record

from risk_model.errors import InsufficientData
from risk_model.features import (
    FEATURE_NAMES,
    FEATURE_OBSERVATION_CODES,
    FEATURE_RESOURCE_TYPES,
    extract,
    schema_hash,
)

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"


def test_length_of_stay_age_and_sex(record: Record) -> None:
    record.index_stay()
    fv = extract(record.resources)
    assert fv.encounter_id == "index"
    assert fv.values["length_of_stay_days"] == 5.0
    assert fv.values["los_ge_5"] == 1.0
    assert fv.values["age_years"] == 73.0
    assert fv.values["sex_male"] == 1.0
    assert fv.admitted == ADMIT
    assert fv.discharged == DISCHARGE
    assert list(fv.values) == list(FEATURE_NAMES)


def test_ed_visits_in_six_months_exclude_the_admitting_visit(record: Record) -> None:
    record.index_stay()
    for days in (30, 150, 200, 400):
        start = ADMIT - timedelta(days=days)
        record.encounter("EMER", start, start + timedelta(hours=3))
    door = ADMIT - timedelta(hours=5)
    record.encounter("EMER", door, ADMIT)
    fv = extract(record.resources)
    assert fv.values["ed_visits_6m"] == 2.0
    assert fv.values["ed_visits_12m"] == 3.0
    assert fv.values["acute_admission"] == 1.0


def test_admissions_and_outpatient_visits_in_twelve_months(record: Record) -> None:
    record.index_stay()
    for days in (100, 300, 380):
        start = ADMIT - timedelta(days=days)
        record.encounter("IMP", start, start + timedelta(days=2))
    record.encounter("AMB", ADMIT - timedelta(days=10), ADMIT - timedelta(days=10))
    record.encounter("IMP", ADMIT - timedelta(days=50), None, status="cancelled")
    fv = extract(record.resources, encounter_id="index")
    assert fv.values["admissions_12m"] == 2.0
    assert fv.values["outpatient_visits_12m"] == 1.0
    assert fv.values["acute_admission"] == 0.0


def test_latest_inpatient_stay_is_the_index(record: Record) -> None:
    record.index_stay()
    record.encounter("IMP", ADMIT - timedelta(days=40), ADMIT - timedelta(days=38), eid="old")
    record.encounter("IMP", DISCHARGE + timedelta(days=3), None, status="in-progress")
    assert extract(record.resources).encounter_id == "index"


@pytest.mark.parametrize(
    ("value", "unit", "low"),
    [(11.9, "g/dL", True), (12.0, "g/dL", False), (115.0, "g/L", True), (125.0, "g/L", False)],
)
def test_hemoglobin_threshold(record: Record, value: float, unit: str, low: bool) -> None:
    record.index_stay()
    record.lab("718-7", value, unit, DISCHARGE - timedelta(hours=3))
    assert extract(record.resources).values["hemoglobin_low"] == float(low)


def test_last_hemoglobin_of_the_stay_counts(record: Record) -> None:
    record.index_stay()
    record.lab("718-7", 10.0, "g/dL", ADMIT + timedelta(hours=2))
    record.lab("718-7", 13.1, "g/dL", DISCHARGE - timedelta(hours=2))
    record.lab("718-7", 8.0, "g/dL", ADMIT - timedelta(days=30))  # before the stay
    assert extract(record.resources).values["hemoglobin_low"] == 0.0


@pytest.mark.parametrize(
    ("code", "value", "low"),
    [("2951-2", 134.0, True), ("2947-0", 134.9, True), ("2951-2", 135.0, False)],
)
def test_sodium_threshold_for_both_loinc_codes(
    record: Record, code: str, value: float, low: bool
) -> None:
    record.index_stay()
    record.lab(code, value, "mmol/L", DISCHARGE - timedelta(hours=1))
    assert extract(record.resources).values["sodium_low"] == float(low)


def test_charlson_from_snomed_and_icd10_with_unknown_codes_reported(record: Record) -> None:
    record.index_stay()
    record.condition(SNOMED, "88805009")  # CHF
    record.condition(ICD10, "E11.22")  # complicated diabetes
    record.condition(ICD10, "E11.9")  # superseded by the complicated form
    record.condition(SNOMED, "999000999")  # not in our map
    fv = extract(record.resources)
    assert fv.charlson_categories == {"chf", "diabetes_complicated"}
    assert fv.values["charlson_index"] == 3.0
    assert fv.values["charlson_quan"] == 3.0
    assert fv.values["chf"] == 1.0
    assert fv.unmapped_codes == (f"{SNOMED}|999000999",)
    assert fv.values["condition_count"] == 4.0


def test_procedures_medications_and_basis(record: Record) -> None:
    record.index_stay()
    proc = record.procedure(ADMIT + timedelta(days=1))
    record.procedure(ADMIT - timedelta(days=20))  # before the stay
    med = record.medication("furosemide", DISCHARGE - timedelta(hours=1))
    record.medication("old drug", ADMIT - timedelta(days=300), status="stopped")
    fv = extract(record.resources)
    assert fv.values["procedures_during_stay"] == 1.0
    assert fv.values["procedure_during_stay"] == 1.0
    assert fv.values["active_medications"] == 1.0
    assert {
        "Patient/p1",
        "Encounter/index",
        f"Procedure/{proc}",
        f"MedicationRequest/{med}",
    } <= set(fv.basis)


def test_as_of_cuts_the_record(record: Record) -> None:
    early = record.encounter("IMP", ADMIT - timedelta(days=60), ADMIT - timedelta(days=55))
    record.index_stay()
    record.lab("718-7", 9.0, "g/dL", ADMIT - timedelta(days=56))
    record.condition(ICD10, "I50.9", onset=ADMIT - timedelta(days=30))
    fv = extract(record.resources, as_of=ADMIT - timedelta(days=50))
    assert fv.encounter_id == early
    assert fv.values["hemoglobin_low"] == 1.0
    assert fv.values["chf"] == 0.0  # recorded after as_of


def test_named_in_progress_stay_is_scored_as_if_discharged_now(record: Record) -> None:
    record.encounter("IMP", ADMIT, None, status="in-progress", eid="current")
    now = ADMIT + timedelta(days=2, hours=1)
    fv = extract(record.resources, encounter_id="current", as_of=now)
    assert fv.discharged == now
    assert fv.values["length_of_stay_days"] == 2.0


def test_encounter_of_another_patient_is_refused(record: Record) -> None:
    record.index_stay()
    record.encounter("IMP", ADMIT, DISCHARGE, eid="theirs", subject="someone-else")
    with pytest.raises(InsufficientData, match="does not belong"):
        extract(record.resources, encounter_id="theirs")


@pytest.mark.parametrize(
    ("build", "kwargs", "message"),
    [
        (lambda r: r.resources.pop(0), {}, "no Patient"),
        (lambda r: None, {}, "no finished inpatient Encounter"),
        (lambda r: r.index_stay(), {"encounter_id": "missing"}, "not found"),
        (lambda r: r.index_stay(), {"patient_id": "other"}, "no Patient resource with id"),
        (
            lambda r: r.encounter("AMB", ADMIT, DISCHARGE, eid="amb"),
            {"encounter_id": "amb"},
            "not an inpatient",
        ),
        (lambda r: r.index_stay(), {"as_of": ADMIT - timedelta(days=1)}, "on or before as_of"),
        (
            lambda r: r.encounter("IMP", ADMIT, DISCHARGE, eid="x", status="cancelled"),
            {"encounter_id": "x"},
            "is cancelled",
        ),
        (
            lambda r: r.encounter("IMP", ADMIT, DISCHARGE, eid="x"),
            {"encounter_id": "x", "as_of": ADMIT - timedelta(hours=1)},
            "starts after as_of",
        ),
    ],
)
def test_insufficient_data_says_what_is_missing(
    record: Record, build, kwargs, message: str
) -> None:  # type: ignore[no-untyped-def]
    build(record)
    with pytest.raises(InsufficientData, match=message):
        extract(record.resources, **kwargs)


def test_naive_as_of_is_read_as_utc(record: Record) -> None:
    record.index_stay()
    fv = extract(record.resources, as_of=datetime(2024, 4, 1))
    assert fv.encounter_id == "index"


def test_published_constants() -> None:
    assert "Observation" in FEATURE_RESOURCE_TYPES
    assert {"718-7", "2951-2", "2947-0"} <= set(FEATURE_OBSERVATION_CODES)
    assert len(schema_hash()) == 64
