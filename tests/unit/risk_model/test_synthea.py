"""Synthea patients (pipeline data, never for judging the model) through features and Predictor."""

import gzip
import json
from pathlib import Path

import pytest

from risk_model._fhir import by_type, resources_from_bundle
from risk_model.errors import InsufficientData
from risk_model.features import extract
from risk_model.predictor import Predictor


@pytest.mark.shared_data
def test_synthea_records_yield_features_and_predictions(shared_data: Path) -> None:
    predictor = Predictor.load()
    scored = refused = 0
    for path in sorted((shared_data / "synthea-r4").glob("*.json.gz")):
        resources = resources_from_bundle(json.loads(gzip.decompress(path.read_bytes())))
        grouped = by_type(resources)
        has_stay = any(e["class"]["code"] == "IMP" for e in grouped.get("Encounter", []))
        try:
            fv = extract(grouped)
        except InsufficientData:
            assert not has_stay
            refused += 1
            continue
        assert has_stay
        assert fv.unmapped_codes == ()
        assert fv.values["length_of_stay_days"] >= 0
        prediction = predictor.predict(resources)
        assert prediction.encounter_id == fv.encounter_id
        assert all(ref.split("/")[0] in {"Patient", "Encounter", "Condition", "Observation",
                                         "Procedure", "MedicationRequest"}
                   for ref in prediction.basis)  # fmt: skip
        scored += 1
    assert scored >= 20 and refused >= 1
