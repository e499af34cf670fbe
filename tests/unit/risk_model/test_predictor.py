"""The Predictor contract on the synthetic demo cohort and hand-built records."""

import json
from datetime import timedelta
from typing import Any

import pytest
from rm_records import ADMIT, DISCHARGE, Record

from risk_model._fhir import resources_from_bundle
from risk_model.cohort import DEMO_IDENTIFIER_SYSTEM, demo_bundles
from risk_model.errors import InsufficientData
from risk_model.features import FEATURE_NAMES
from risk_model.predictor import Predictor


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.load()


def test_demo_cohort_covers_all_three_bands(predictor: Predictor) -> None:
    bands = set()
    for bundle in demo_bundles():
        prediction = predictor.predict(resources_from_bundle(bundle))
        assert 0.0 < prediction.probability < 1.0
        assert prediction.band == predictor.band(prediction.probability)
        assert prediction.model_name == predictor.name
        assert prediction.model_version == predictor.version
        assert 1 <= len(prediction.factors) <= 5
        strengths = [abs(f.contribution) for f in prediction.factors]
        assert strengths == sorted(strengths, reverse=True)
        assert all(f.description for f in prediction.factors)
        assert f"Patient/{prediction.patient_id}" in prediction.basis
        assert f"Encounter/{prediction.encounter_id}" in prediction.basis
        assert set(prediction.features) == set(FEATURE_NAMES)
        bands.add(prediction.band)
    assert bands == {"low", "moderate", "high"}


def test_more_prior_admissions_raise_risk(predictor: Predictor) -> None:
    def score(n_admissions: int) -> float:
        record = Record()
        record.index_stay()
        for i in range(n_admissions):
            start = ADMIT - timedelta(days=20 + 40 * i)
            record.encounter("IMP", start, start + timedelta(days=2))
        return predictor.predict(record.resources).probability

    assert score(0) < score(2) < score(5)


def test_prediction_fields_for_a_hand_built_record(predictor: Predictor, record: Record) -> None:
    record.index_stay()
    prediction = predictor.predict(record.resources, patient_id="p1", encounter_id="index")
    assert prediction.admitted == ADMIT
    assert prediction.discharged == DISCHARGE
    assert prediction.lace.name == "LACE"
    assert prediction.hospital.name == "HOSPITAL"
    assert prediction.lace.components["L"] == 4


def test_thresholds_are_configurable() -> None:
    strict = Predictor.load(thresholds=(0.01, 0.02))
    assert strict.thresholds == (0.01, 0.02)
    assert strict.band(0.005) == "low"
    assert strict.band(0.015) == "moderate"
    assert strict.band(0.02) == "high"
    default = Predictor.load()
    assert default.thresholds == (0.10, 0.20)
    assert default.band(0.0999) == "low"
    assert default.band(0.10) == "moderate"
    assert default.band(0.20) == "high"


@pytest.mark.parametrize("bad", [(0.2, 0.1), (0.0, 0.5), (0.1, 1.0)])
def test_invalid_thresholds_are_rejected(bad: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="thresholds"):
        Predictor.load(thresholds=bad)


def test_insufficient_data_propagates(predictor: Predictor, record: Record) -> None:
    with pytest.raises(InsufficientData):
        predictor.predict(record.resources)


def test_demo_cohort_is_deterministic_transaction_bundles() -> None:
    first, second = demo_bundles(6, seed=3), demo_bundles(6, seed=3)
    assert json.dumps(first) == json.dumps(second)
    assert json.dumps(first) != json.dumps(demo_bundles(6, seed=4))
    for bundle in first:
        assert bundle["type"] == "transaction"
        for entry in bundle["entry"]:
            assert entry["fullUrl"].startswith("urn:uuid:")
            assert entry["request"]["method"] == "POST"
        patient = bundle["entry"][0]["resource"]
        assert patient["identifier"][0]["system"] == DEMO_IDENTIFIER_SYSTEM


def test_demo_bundles_validate_as_r4() -> None:
    from fhir.resources.R4B.bundle import Bundle

    bundles: list[dict[str, Any]] = demo_bundles(3)
    for bundle in bundles:
        Bundle.model_validate(bundle)
