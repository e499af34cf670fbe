"""Scoring a stored patient: fetch only what the features read, predict, persist.

The same path serves the ``$readmission-risk`` operation, the discharge worker and population
re-scoring, so a RiskAssessment means the same thing however it was produced.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from fhir_gateway.fhir import errors
from fhir_gateway.observability import metrics
from fhir_gateway.scoring.assessment import assessment_id, risk_assessment
from fhir_gateway.store.records import (
    FeatureScope,
    decode_feature_json,
    feature_record,
    feature_record_json,
)
from fhir_gateway.store.repository import Repository

Record = dict[str, list[Mapping[str, Any]]]


@functools.cache
def _scope() -> FeatureScope:
    from risk_model import features

    return FeatureScope(
        index_class_codes=features.INDEX_CLASS_CODES,
        visit_class_codes=features.VISIT_CLASS_CODES,
        observation_codes=features.FEATURE_OBSERVATION_CODES,
        visit_lookback=features.VISIT_LOOKBACK,
        lab_lookback=features.LAB_LOOKBACK,
        order_lookback=features.ORDER_LOOKBACK,
        margin=timedelta(days=2),
    )


async def load_record(
    conn: asyncpg.Connection, tenant: str, patient_id: str, encounter_id: str | None = None
) -> Record:
    """What the model's features can read, grouped by type: not the patient's whole history."""
    return await feature_record(conn, tenant, patient_id, _scope(), encounter_id=encounter_id)


def _require(predictor: Any) -> None:
    if predictor is None:
        raise errors.not_supported("The readmission model is not loaded", status=503)


def predict(
    predictor: Any,
    resources: Any,
    patient_id: str,
    encounter_id: str | None,
    as_of: datetime | None,
) -> Any:
    """Run the model, turning its domain errors into OperationOutcomes."""
    from risk_model.errors import InsufficientData

    _require(predictor)
    started = time.perf_counter()
    try:
        prediction = predictor.predict(
            resources, patient_id=patient_id, encounter_id=encounter_id, as_of=as_of
        )
    except InsufficientData as exc:
        raise errors.processing(f"Not enough data to score: {exc}", status=422) from None
    metrics.record_prediction(
        prediction.band, prediction.model_version, time.perf_counter() - started
    )
    return prediction


async def patient_record_for_scoring(
    conn: asyncpg.Connection,
    tenant: str,
    predictor: Any,
    patient_id: str,
    encounter_id: str | None = None,
) -> Mapping[str, str]:
    """What the model needs of a stored patient, still as JSON (one array per type), or the
    OperationOutcome saying what is missing.

    Kept apart from the scoring so a caller gives its pooled connection back before the CPU
    work, and decodes only then (``assess``): under concurrency a connection held through the
    model is one more the pool lacks, and decoded resources alive across an await are what the
    garbage collector keeps walking.
    """
    _require(predictor)  # before fetching what only the model's features would read
    repo = Repository(conn, tenant)
    if encounter_id is not None:
        await repo.read("Patient", patient_id)
        enc = await repo.current("Encounter", encounter_id)
        if enc is None or enc.deleted:
            raise errors.not_found(f"Encounter/{encounter_id} is not known")
    record = await feature_record_json(
        conn, tenant, patient_id, _scope(), encounter_id=encounter_id
    )
    if "Patient" not in record:
        # The record holds the live Patient; without it, say why (404 or 410 Gone).
        await repo.read("Patient", patient_id)
    return record


def assess(
    predictor: Any,
    record: Mapping[str, str],
    patient_id: str,
    encounter_id: str | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """The RiskAssessment of a record fetched by ``patient_record_for_scoring``."""
    resources = decode_feature_json(record)
    prediction = predict(predictor, resources, patient_id, encounter_id, as_of)
    return risk_assessment(prediction, occurrence=as_of or datetime.now(UTC))


def discharge_time(
    resources: Mapping[str, Sequence[Mapping[str, Any]]], encounter_id: str
) -> datetime | None:
    for r in resources.get("Encounter") or ():
        if r.get("id") == encounter_id:
            end = (r.get("period") or {}).get("end")
            if isinstance(end, str):
                try:
                    value = datetime.fromisoformat(end.replace("Z", "+00:00"))
                except ValueError:
                    return None
                return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


async def store_assessment(
    conn: asyncpg.Connection, tenant: str, predictor: Any, patient_id: str, encounter_id: str
) -> str:
    """Score one discharge and write its RiskAssessment (a new version when re-scored)."""
    async with conn.transaction():
        # Scored as of its own discharge: an old stay must not see what happened after it, and
        # the stored assessments then sort by discharge (RiskAssessment?patient=x&_sort=-date).
        resources = await load_record(conn, tenant, patient_id, encounter_id)
        discharged = discharge_time(resources, encounter_id)
        prediction = predict(predictor, resources, patient_id, encounter_id, discharged)
        ra = risk_assessment(prediction, occurrence=discharged or datetime.now(UTC))
        rid = assessment_id(encounter_id, prediction.model_version)
        ra = {
            "resourceType": "RiskAssessment",
            "id": rid,
            **{k: v for k, v in ra.items() if k != "resourceType"},
        }
        await Repository(conn, tenant).update("RiskAssessment", rid, ra)
    return rid
