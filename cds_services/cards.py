"""Turning a prediction into a CDS Hooks card.

The card says how likely a readmission is (summary), why (LACE, HOSPITAL and the strongest
model factors in the Markdown detail) and what to do (suggestions carrying complete FHIR
resources the EHR can create). Optional CDS Hooks fields are left out rather than sent empty,
because the spec forbids null and empty values.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from risk_model.predictor import Prediction
from risk_model.scores import ScoreResult

TOPIC_SYSTEM = "urn:fhir-gateway:cds:topic"
OVERRIDE_SYSTEM = "urn:fhir-gateway:cds:override-reason"
TASK_CODE_SYSTEM = "urn:fhir-gateway:cds:task"
SNOMED = "http://snomed.info/sct"
FOLLOW_UP_DAYS = 7
OUTREACH_DAYS = 2
SUMMARY_LIMIT = 140

OVERRIDE_REASONS: tuple[tuple[str, str], ...] = (
    ("follow-up-arranged", "Follow-up already arranged"),
    ("patient-declined", "Patient declined"),
    ("planned-readmission", "Readmission is planned"),
    ("palliative-care", "Patient receives hospice or palliative care"),
    ("estimate-not-applicable", "Risk estimate does not apply to this patient"),
)

_BAND_INDICATOR = {"low": "info", "moderate": "warning", "high": "critical"}


@dataclass(frozen=True)
class CardLinks:
    model_card_url: str
    smart_app_url: str


@dataclass(frozen=True)
class BuiltCard:
    card: dict[str, Any]
    uuid: uuid.UUID
    indicator: str
    suggestion_uuids: tuple[str, ...]


def indicator_for(prediction: Prediction, thresholds: tuple[float, float] | None) -> str:
    """Card urgency: the model's own band, or operator-set probability cut-offs."""
    if thresholds is None:
        return _BAND_INDICATOR.get(prediction.band, "warning")
    low, high = thresholds
    if prediction.probability < low:
        return "info"
    if prediction.probability < high:
        return "warning"
    return "critical"


def percent(probability: float) -> str:
    value = probability * 100
    return f"{value:.0f}%" if value >= 1 else "<1%"


def summary_for(prediction: Prediction) -> str:
    text = (
        f"{prediction.band.capitalize()} 30-day readmission risk: {percent(prediction.probability)}"
    )
    return text[: SUMMARY_LIMIT - 1]


def _md(text: str) -> str:
    """Escape Markdown control characters in text we did not write ourselves."""
    out = []
    for ch in text:
        if ch in "\\`*_{}[]<>()#+!|":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out).replace("\n", " ")


def _score_row(score: ScoreResult) -> str:
    return f"| {_md(score.name)} | {score.total} | {_md(score.band)} |"


def detail_for(prediction: Prediction) -> str:
    lines = [
        f"**Estimated probability of readmission within 30 days: "
        f"{percent(prediction.probability)}** ({_md(prediction.band)} risk).",
        "",
    ]
    if prediction.admitted is not None and prediction.discharged is not None:
        lines += [
            f"Index admission {prediction.admitted.date().isoformat()} to "
            f"{prediction.discharged.date().isoformat()}.",
            "",
        ]
    lines += [
        "| Score | Total | Band |",
        "| --- | --- | --- |",
        _score_row(prediction.lace),
        _score_row(prediction.hospital),
        "",
    ]
    if prediction.factors:
        lines.append("**Strongest factors**")
        lines.append("")
        for factor in prediction.factors:
            effect = "raises risk" if factor.contribution > 0 else "lowers risk"
            lines.append(f"- {_md(factor.description)} ({effect})")
        lines.append("")
    lines.append(
        f"Model {_md(prediction.model_name)} {_md(prediction.model_version)}; "
        "an estimate to support, not replace, clinical judgement."
    )
    return "\n".join(lines)


def _period(prediction: Prediction, days: int, today: date) -> dict[str, str]:
    start = today
    if prediction.discharged is not None and prediction.discharged.date() > today:
        start = prediction.discharged.date()
    return {"start": start.isoformat(), "end": (start + timedelta(days=days)).isoformat()}


def _references(prediction: Prediction) -> dict[str, Any]:
    return {
        "subject": {"reference": f"Patient/{prediction.patient_id}"},
        "encounter": {"reference": f"Encounter/{prediction.encounter_id}"},
    }


def follow_up_request(prediction: Prediction, now: datetime) -> dict[str, Any]:
    reason = summary_for(prediction)
    return {
        "resourceType": "ServiceRequest",
        "id": str(uuid.uuid4()),
        "status": "draft",
        "intent": "proposal",
        "priority": "urgent" if prediction.band == "high" else "routine",
        "code": {
            "coding": [{"system": SNOMED, "code": "390906007", "display": "Follow-up encounter"}],
            "text": f"Follow-up visit within {FOLLOW_UP_DAYS} days of discharge",
        },
        **_references(prediction),
        "occurrencePeriod": _period(prediction, FOLLOW_UP_DAYS, now.date()),
        "authoredOn": now.isoformat(timespec="seconds"),
        "reasonCode": [{"text": reason}],
    }


def outreach_task(prediction: Prediction, now: datetime) -> dict[str, Any]:
    refs = _references(prediction)
    return {
        "resourceType": "Task",
        "id": str(uuid.uuid4()),
        "status": "draft",
        "intent": "proposal",
        "priority": "urgent" if prediction.band == "high" else "routine",
        "code": {
            "coding": [
                {
                    "system": TASK_CODE_SYSTEM,
                    "code": "transitional-care-outreach",
                    "display": "Transitional-care outreach",
                }
            ],
            "text": "Transitional-care outreach",
        },
        "description": (
            "Contact the patient after discharge: review medications, symptoms and warning "
            "signs, and confirm the follow-up appointment."
        ),
        "for": refs["subject"],
        "encounter": refs["encounter"],
        "authoredOn": now.isoformat(timespec="seconds"),
        "restriction": {"period": _period(prediction, OUTREACH_DAYS, now.date())},
        "reasonCode": {"text": summary_for(prediction)},
    }


def _suggestion(
    label: str, description: str, resource: Mapping[str, Any], recommended: bool
) -> dict[str, Any]:
    return {
        "label": label,
        "uuid": str(uuid.uuid4()),
        "isRecommended": recommended,
        "actions": [{"type": "create", "description": description, "resource": dict(resource)}],
    }


def build_card(
    prediction: Prediction,
    links: CardLinks,
    *,
    thresholds: tuple[float, float] | None = None,
    now: datetime | None = None,
) -> BuiltCard:
    moment = now or datetime.now(UTC)
    card_uuid = uuid.uuid4()
    indicator = indicator_for(prediction, thresholds)
    model = f"{prediction.model_name} {prediction.model_version}"
    card: dict[str, Any] = {
        "uuid": str(card_uuid),
        "summary": summary_for(prediction),
        "indicator": indicator,
        "detail": detail_for(prediction),
        "source": {
            "label": f"Readmission risk model ({model})",
            "url": links.model_card_url,
            "topic": {
                "system": TOPIC_SYSTEM,
                "code": "readmission-risk",
                "display": "30-day readmission risk",
            },
        },
    }
    suggestions: list[dict[str, Any]] = []
    if indicator != "info":
        recommended = indicator == "critical"
        suggestions = [
            _suggestion(
                f"Schedule a follow-up visit within {FOLLOW_UP_DAYS} days",
                f"Order a follow-up visit within {FOLLOW_UP_DAYS} days of discharge",
                follow_up_request(prediction, moment),
                recommended,
            ),
            _suggestion(
                "Request transitional-care outreach",
                "Create a task for the transitional-care team to contact the patient",
                outreach_task(prediction, moment),
                recommended,
            ),
        ]
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "any"
        card["overrideReasons"] = [
            {"system": OVERRIDE_SYSTEM, "code": code, "display": display}
            for code, display in OVERRIDE_REASONS
        ]
    app_context = {
        "patientId": prediction.patient_id,
        "encounterId": prediction.encounter_id,
        "cardUuid": str(card_uuid),
    }
    card["links"] = [
        {
            "label": "Open the readmission risk viewer",
            "url": links.smart_app_url,
            "type": "smart",
            "appContext": json.dumps(app_context, separators=(",", ":")),
        },
        {"label": f"Model card: {model}", "url": links.model_card_url, "type": "absolute"},
    ]
    return BuiltCard(card, card_uuid, indicator, tuple(s["uuid"] for s in suggestions))
