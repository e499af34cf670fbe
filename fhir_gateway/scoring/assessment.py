"""A model prediction as a FHIR RiskAssessment.

The probability is a fraction between 0 and 1 (``probabilityDecimal``), as in the RiskAssessment
examples of the FHIR specification; ``qualitativeRisk`` uses the risk-probability code system.
LACE and HOSPITAL computed from the same record travel along as extensions and a note, so a
reader can compare the model with the scores clinicians know.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
MODEL_SYSTEM = "urn:fhir-gateway:model"
SCORE_EXTENSION = "urn:fhir-gateway:StructureDefinition/readmission-score"
READMISSION_OUTCOME = {
    "coding": [
        {"system": "http://snomed.info/sct", "code": "417005", "display": "Hospital re-admission"}
    ],
    "text": "Unplanned readmission within 30 days of discharge",
}
_BAND_DISPLAY = {
    "low": "Low likelihood",
    "moderate": "Moderate likelihood",
    "high": "High likelihood",
}


def assessment_id(encounter_id: str, model_version: str) -> str:
    """One stored RiskAssessment per encounter and model version: a stable id makes it so."""
    digest = hashlib.sha256(f"{encounter_id}|{model_version}".encode()).hexdigest()
    return f"readmission-{digest[:40]}"


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts else None


def risk_assessment(
    prediction: Any,
    *,
    occurrence: datetime,
    encounter_ref: str | None = None,
    patient_ref: str | None = None,
) -> dict[str, Any]:
    p = prediction
    lace, hospital = p.lace, p.hospital
    patient_ref = patient_ref or f"Patient/{p.patient_id}"
    encounter_ref = encounter_ref or f"Encounter/{p.encounter_id}"
    rationale = "; ".join(f.description for f in p.factors) or "No single dominant factor"
    pred: dict[str, Any] = {
        "outcome": READMISSION_OUTCOME,
        "probabilityDecimal": round(float(p.probability), 4),
        "qualitativeRisk": {
            "coding": [
                {
                    "system": RISK_PROBABILITY,
                    "code": p.band,
                    "display": _BAND_DISPLAY.get(p.band, p.band),
                }
            ]
        },
        "rationale": f"Strongest factors: {rationale}",
    }
    if p.discharged is not None:
        pred["whenPeriod"] = {
            "start": _iso(p.discharged),
            "end": _iso(p.discharged + timedelta(days=30)),
        }
    ra: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "extension": [_score_extension(lace), _score_extension(hospital)],
        "status": "final",
        "method": {
            "coding": [
                {
                    "system": MODEL_SYSTEM,
                    "code": p.model_name,
                    "display": f"{p.model_name} {p.model_version}",
                }
            ],
            "text": f"{p.model_name} version {p.model_version}",
        },
        "code": {"text": "30-day readmission risk"},
        "subject": {"reference": patient_ref},
        "encounter": {"reference": encounter_ref},
        "occurrenceDateTime": _iso(occurrence),
        "basis": [{"reference": ref} for ref in p.basis],
        "prediction": [pred],
        "note": [
            {
                "text": (
                    f"Probability is a fraction between 0 and 1 of readmission within 30 days of "
                    f"discharge. LACE {lace.total} ({lace.band}); HOSPITAL {hospital.total} "
                    f"({hospital.band}), from the same record."
                )
            }
        ],
    }
    if not ra["basis"]:
        del ra["basis"]
    return ra


def _score_extension(score: Any) -> dict[str, Any]:
    return {
        "url": SCORE_EXTENSION,
        "extension": [
            {"url": "name", "valueString": score.name},
            {"url": "total", "valueInteger": int(score.total)},
            {"url": "band", "valueCode": score.band},
        ],
    }
