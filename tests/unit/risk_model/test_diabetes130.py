"""Diabetes-130 CSV → FHIR: mapping on a hand-made sample, and a few real rows when present."""

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from risk_model._fhir import by_type, resources_from_bundle
from risk_model.datasets import diabetes130
from risk_model.features import extract

SAMPLE = Path(__file__).parent / "data" / "diabetes130_sample.csv"


def _validate_r4(bundle: dict[str, Any]) -> None:
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(bundle)


def _converted() -> dict[str, tuple[dict[str, Any], list[diabetes130.IndexLabel]]]:
    return {rows[0]["patient_nbr"]: diabetes130.patient_bundle(rows)
            for rows in diabetes130.read_patients(SAMPLE)}  # fmt: skip


def test_one_transaction_bundle_per_patient_that_validates_as_r4() -> None:
    converted = _converted()
    assert set(converted) == {"501", "502", "503"}
    for bundle, _ in converted.values():
        assert bundle["type"] == "transaction"
        _validate_r4(bundle)


def test_mapping_of_a_row_is_read_back_by_the_features() -> None:
    bundle, labels = _converted()["501"]
    first = next(lab for lab in labels if lab.encounter_id == "1001")
    assert first.readmitted_30d and not first.excluded
    fv = extract(by_type(resources_from_bundle(bundle)), encounter_id=first.fhir_encounter_id)
    values = fv.values
    assert values["length_of_stay_days"] == 6.0  # time_in_hospital
    assert values["admissions_12m"] == 3.0  # number_inpatient
    assert values["ed_visits_12m"] == 2.0  # number_emergency
    assert values["ed_visits_6m"] == 1.0
    assert values["outpatient_visits_12m"] == 1.0
    assert values["acute_admission"] == 1.0  # emergency, from the ER
    assert values["oncology_discharge"] == 1.0
    assert values["discharged_to_facility"] == 1.0  # SNF
    assert values["procedures_during_stay"] == 2.0
    assert values["active_medications"] == 2.0  # metformin steady, insulin up
    assert values["hba1c_high"] == 1.0 and values["glucose_high"] == 1.0
    # 428 CHF, 250.4 complicated diabetes, 196.1 metastatic: 1 + 2 + 6
    assert fv.charlson_categories == {"chf", "diabetes_complicated", "metastatic"}
    assert values["charlson_index"] == 9.0
    assert values["sex_male"] == 0.0
    assert 70 <= values["age_years"] < 80


def test_identifiers_race_and_censored_labs() -> None:
    bundle, _ = _converted()["501"]
    resources = resources_from_bundle(bundle)
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    assert patient["identifier"] == [{"system": diabetes130.PATIENT_SYSTEM, "value": "501"}]
    assert patient["extension"][0]["extension"][0]["valueCoding"]["code"] == "2106-3"
    index_ids = {
        r["identifier"][0]["value"]
        for r in resources
        if r["resourceType"] == "Encounter" and r.get("identifier")
    }
    assert index_ids == {"1001", "1002"}
    a1c = [r for r in resources if r["resourceType"] == "Observation"
           and r["code"]["coding"][0]["code"] == "4548-4"]  # fmt: skip
    assert {(o["valueQuantity"]["comparator"], o["valueQuantity"]["value"]) for o in a1c} == {
        (">", 8.0),
        ("<", 7.0),
    }
    assert "readmitted" not in json.dumps(bundle)


def test_death_is_excluded_and_short_icd9_codes_are_padded() -> None:
    bundle, labels = _converted()["502"]
    assert labels[0].excluded  # discharge disposition 11: expired
    codes = {
        r["code"]["coding"][0]["code"]
        for r in resources_from_bundle(bundle)
        if r["resourceType"] == "Condition"
    }
    assert codes == {"008", "276"}


def test_later_stays_see_earlier_ones_only_as_history() -> None:
    bundle, labels = _converted()["501"]
    grouped = by_type(resources_from_bundle(bundle))
    second = next(lab for lab in labels if lab.encounter_id == "1002")
    fv = extract(grouped, encounter_id=second.fhir_encounter_id)
    assert fv.values["admissions_12m"] == 0.0  # the earlier stay is > 12 months before
    assert fv.values["acute_admission"] == 0.0  # elective
    assert fv.values["active_medications"] == 0.0


def test_cli_writes_ndjson_and_labels(tmp_path: Path) -> None:
    assert diabetes130.main([str(SAMPLE), str(tmp_path), "--format", "ndjson"]) == 0
    with gzip.open(tmp_path / "bundles.ndjson.gz", "rt") as handle:
        bundles = [json.loads(line) for line in handle]
    assert len(bundles) == 3
    with (tmp_path / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    assert sum(int(r["readmitted_30d"]) for r in rows) == 1


@pytest.mark.shared_data
def test_real_rows_convert_and_validate(shared_data: Path) -> None:
    csv_path = shared_data / "diabetes130" / "diabetic_data_dev.csv.gz"
    id_labels = diabetes130.read_id_labels(shared_data / "diabetes130" / "IDs_mapping.csv")
    assert id_labels["discharge_disposition_id"]["11"] == "Expired"
    patients = diabetes130.read_patients(csv_path)[:25]
    for rows in patients:
        bundle, labels = diabetes130.patient_bundle(rows, id_labels)
        _validate_r4(bundle)
        grouped = by_type(resources_from_bundle(bundle))
        for row, label in zip(
            sorted(rows, key=lambda r: int(r["encounter_id"])), labels, strict=True
        ):
            fv = extract(grouped, encounter_id=label.fhir_encounter_id)
            assert fv.values["length_of_stay_days"] == float(row["time_in_hospital"])
            assert fv.values["admissions_12m"] == float(row["number_inpatient"])
            assert fv.values["ed_visits_12m"] == float(row["number_emergency"])
            assert label.readmitted_30d == (row["readmitted"] == "<30")
