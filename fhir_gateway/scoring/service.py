"""Scoring a stored patient: fetch only what the features read, predict, persist.

The same path serves the ``$readmission-risk`` operation, the discharge worker and population
re-scoring, so a RiskAssessment means the same thing however it was produced.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from fhir_gateway.fhir import errors
from fhir_gateway.observability_hooks import observe_prediction
from fhir_gateway.scoring.assessment import assessment_id, risk_assessment
from fhir_gateway.store.records import patient_record
from fhir_gateway.store.repository import Repository


def _feature_scope() -> tuple[Sequence[str] | None, Sequence[str] | None]:
    try:
        from risk_model.features import FEATURE_OBSERVATION_CODES, FEATURE_RESOURCE_TYPES
    except ImportError:
        return None, None
    return FEATURE_RESOURCE_TYPES, FEATURE_OBSERVATION_CODES


async def load_record(conn: asyncpg.Connection, tenant: str, patient_id: str) -> list[Any]:
    types, codes = _feature_scope()
    versions = await patient_record(conn, tenant, patient_id, types=types, observation_codes=codes)
    return [v.resource() for v in versions]


def predict(
    predictor: Any,
    resources: list[Any],
    patient_id: str,
    encounter_id: str | None,
    as_of: datetime | None,
) -> Any:
    """Run the model, turning its domain errors into OperationOutcomes."""
    from risk_model.errors import InsufficientData

    if predictor is None:
        raise errors.not_supported("The readmission model is not loaded", status=503)
    started = time.perf_counter()
    try:
        prediction = predictor.predict(
            resources, patient_id=patient_id, encounter_id=encounter_id, as_of=as_of
        )
    except InsufficientData as exc:
        raise errors.processing(f"Not enough data to score: {exc}", status=422) from None
    observe_prediction(prediction.band, prediction.model_version, time.perf_counter() - started)
    return prediction


async def score_patient(
    conn: asyncpg.Connection,
    tenant: str,
    predictor: Any,
    patient_id: str,
    encounter_id: str | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    repo = Repository(conn, tenant)
    if encounter_id is not None:
        await repo.read("Patient", patient_id)
        enc = await repo.current("Encounter", encounter_id)
        if enc is None or enc.deleted:
            raise errors.not_found(f"Encounter/{encounter_id} is not known")
    resources = await load_record(conn, tenant, patient_id)
    if not resources or resources[0].get("resourceType") != "Patient":
        # The record starts with the live Patient; without it, say why (404 or 410 Gone).
        await repo.read("Patient", patient_id)
    prediction = predict(predictor, resources, patient_id, encounter_id, as_of)
    return risk_assessment(prediction, occurrence=as_of or datetime.now(UTC))


def discharge_time(resources: list[Any], encounter_id: str) -> datetime | None:
    for r in resources:
        if r.get("resourceType") == "Encounter" and r.get("id") == encounter_id:
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
        resources = await load_record(conn, tenant, patient_id)
        # Scored as of its own discharge: an old stay must not see what happened after it, and
        # the stored assessments then sort by discharge (RiskAssessment?patient=x&_sort=-date).
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
