"""Training end to end on a small subsample (seconds), through the CLI, and its guard rails."""

import json
from pathlib import Path

import numpy as np
import pytest

from risk_model import dataset
from risk_model.cli import main
from risk_model.cohort import demo_bundles
from risk_model.dataset import Table
from risk_model.features import FEATURE_NAMES
from risk_model.predictor import Predictor
from risk_model.train import split_by_patient, train

SAMPLE = Path(__file__).parent / "data" / "diabetes130_sample.csv"


def test_split_keeps_each_patient_in_one_part() -> None:
    patients = np.array([f"p{i % 50}" for i in range(500)])
    parts = split_by_patient(patients, seed=1)
    seen = [set(patients[mask].tolist()) for mask in parts]
    assert seen[0].isdisjoint(seen[1]) and seen[0].isdisjoint(seen[2])
    assert seen[1].isdisjoint(seen[2])
    assert sum(int(m.sum()) for m in parts) == 500


def test_one_class_data_is_refused() -> None:
    n = 20
    table = Table(
        x=np.zeros((n, len(FEATURE_NAMES))),
        y=np.zeros(n, dtype=np.int64),
        patients=np.array([str(i) for i in range(n)]),
        lace=np.zeros(n),
        hospital=np.zeros(n),
        skipped=0,
    )
    with pytest.raises(ValueError, match="both"):
        train(table)


def test_tables_from_bundles_with_a_label_file(tmp_path: Path) -> None:
    from risk_model.datasets.diabetes130 import main as convert

    convert([str(SAMPLE), str(tmp_path), "--format", "files"])
    table = dataset.from_bundles(tmp_path, label_file=tmp_path / "labels.csv")
    assert table.x.shape == (3, len(FEATURE_NAMES))  # 4 stays, one death excluded
    assert int(table.y.sum()) == 1


def test_tables_from_bundles_derive_labels_without_a_file(tmp_path: Path) -> None:
    path = tmp_path / "demo.ndjson"
    path.write_text("\n".join(json.dumps(b) for b in demo_bundles(6)))
    table = dataset.from_bundles(path)
    stays = sum(
        1
        for bundle in demo_bundles(6)
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Encounter"
        and entry["resource"]["class"]["code"] == "IMP"
    )
    assert table.x.shape[0] == stays
    # the high-risk profile's prior stays are 27 days apart: some are readmissions
    assert 0 < int(table.y.sum()) < stays


@pytest.mark.shared_data
def test_train_end_to_end_on_a_subsample(shared_data: Path, tmp_path: Path) -> None:
    csv_path = shared_data / "diabetes130" / "diabetic_data_dev.csv.gz"
    card = tmp_path / "docs" / "model-card.md"
    code = main(
        ["train", "--diabetes130", str(csv_path), "--limit", "2000", "--bootstrap", "30",
         "--out", str(tmp_path / "artifacts"), "--card", str(card), "--version", "0.0.1-test",
         "--install", "--quiet"]
    )  # fmt: skip
    assert code == 0
    artifact = tmp_path / "artifacts" / "readmission-lr-0.0.1-test.joblib"
    meta = json.loads(artifact.with_suffix(".json").read_text())
    assert meta["split"]["test"]["patients"] > 0
    for scorer in ("model", "LACE", "HOSPITAL"):
        m = meta["metrics"][scorer]
        assert 0.0 <= m["auroc_ci_low"] <= m["auroc"] <= m["auroc_ci_high"] <= 1.0
        assert 0.0 < m["brier"] < 0.25
    assert meta["metrics"]["model"]["auroc"] > 0.55
    assert json.loads((tmp_path / "artifacts" / "default.json").read_text())["artifact"] == (
        artifact.name
    )
    predictor = Predictor.load(artifact)
    assert predictor.version == "0.0.1-test"
    text = card.read_text()
    assert artifact.with_suffix(".md").read_text() == text
    assert "| model |" in text and "| LACE |" in text and "| HOSPITAL |" in text
    for png in ("roc.png", "calibration.png", "importance.png"):
        assert (card.parent / "model-card" / png).stat().st_size > 1000


@pytest.mark.shared_data
def test_training_is_reproducible(shared_data: Path) -> None:
    csv_path = shared_data / "diabetes130" / "diabetic_data_dev.csv.gz"
    table = dataset.from_diabetes130(csv_path, limit=600)
    first = train(table, n_boot=10)
    second = train(dataset.from_diabetes130(csv_path, limit=600), n_boot=10)
    assert first.fingerprint == second.fingerprint
    assert first.model == second.model
    assert first.test["model"] == second.test["model"]


@pytest.mark.shared_data
@pytest.mark.slow
def test_documented_command_reproduces_the_shipped_metrics(shared_data: Path) -> None:
    """Full retraining (about a minute): opt in with FHIR_GATEWAY_FULL_TRAIN=1."""
    import os

    from risk_model import artifact as artifacts

    if os.environ.get("FHIR_GATEWAY_FULL_TRAIN") != "1":
        pytest.skip("full training is opt-in: set FHIR_GATEWAY_FULL_TRAIN=1")
    shipped = artifacts.load()
    table = dataset.from_diabetes130(shared_data / "diabetes130" / "diabetic_data_dev.csv.gz")
    result = train(table)
    assert result.fingerprint == shipped.metadata["data_fingerprint"]
    assert result.model.to_payload() == dict(shipped.payload)
    for scorer, metrics in result.test.items():
        assert metrics.as_dict() == pytest.approx(shipped.metadata["metrics"][scorer])


def test_tables_from_bulk_ndjson_resources(tmp_path: Path) -> None:
    """Single-resource NDJSON (a store's $export) is regrouped per patient."""
    from risk_model._fhir import resources_from_bundle

    by_type: dict[str, list[str]] = {}
    for bundle in demo_bundles(6):
        resources = resources_from_bundle(bundle)
        patient_id = resources[0]["id"]
        for resource in resources:
            resource = dict(resource)
            for key in ("subject", "patient"):
                if key in resource:
                    resource[key] = {"reference": f"Patient/{patient_id}"}
            by_type.setdefault(resource["resourceType"], []).append(json.dumps(resource))
    folder = tmp_path / "export"
    folder.mkdir()
    for rtype, lines in by_type.items():
        (folder / f"{rtype}.000.ndjson").write_text("\n".join(lines) + "\n")
    from_export = dataset.from_bundles(folder)
    bundles = tmp_path / "bundles.ndjson"
    bundles.write_text("\n".join(json.dumps(b) for b in demo_bundles(6)))
    from_bundles = dataset.from_bundles(bundles)
    assert sorted(map(tuple, from_export.x.tolist())) == sorted(map(tuple, from_bundles.x.tolist()))
    assert int(from_export.y.sum()) == int(from_bundles.y.sum())


@pytest.mark.shared_data
def test_tables_from_the_bulk_data_sample(shared_data: Path) -> None:
    table = dataset.from_bundles(shared_data / "bulk-10-patients")
    assert table.x.shape[0] > 0
    assert table.skipped == 0
    assert len(set(table.patients.tolist())) <= 10


def test_cli_converts_and_refuses_a_train_without_data(tmp_path: Path) -> None:
    assert main(["convert-diabetes130", str(SAMPLE), str(tmp_path), "--format", "files"]) == 0
    assert len(list(tmp_path.glob("patient-*.json"))) == 3
    assert main(["train", "--quiet"]) == 2
