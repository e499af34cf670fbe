"""Card building from a prediction, without HTTP: wording, urgency, escaping, FHIR validity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from cds_services.cards import CardLinks, build_card, indicator_for, percent, summary_for
from risk_model.predictor import Factor, Prediction
from risk_model.scores import ScoreResult
from tests.cds.helpers import empty_paths

LINKS = CardLinks("https://cds.example.org/model-card", "https://cds.example.org/apps/viewer")
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def prediction(probability: float, band: str, **changes: Any) -> Prediction:
    values: dict[str, Any] = {
        "probability": probability,
        "band": band,
        "model_name": "readmission-lr",
        "model_version": "1.0.0",
        "patient_id": "p-1",
        "encounter_id": "e-9",
        "admitted": NOW - timedelta(days=6),
        "discharged": NOW - timedelta(days=1),
        "lace": ScoreResult("LACE", 11, "high", {"L": 4}),
        "hospital": ScoreResult("HOSPITAL", 5, "moderate", {"H": 1}),
        "factors": (
            Factor("admissions_12m", "3 inpatient admissions in the previous 12 months", 0.8),
            Factor("sodium_low", "Sodium < 135 mmol/L | at *discharge*", 0.3),
            Factor("age_years", "Age 44 years", -0.2),
        ),
        "basis": ("Encounter/e-9",),
        "features": {"admissions_12m": 3.0},
    }
    values.update(changes)
    return Prediction(**values)


def test_summary_wording_and_length() -> None:
    assert summary_for(prediction(0.3412, "high")) == "High 30-day readmission risk: 34%"
    assert summary_for(prediction(0.004, "low")) == "Low 30-day readmission risk: <1%"
    assert percent(0.999) == "100%"
    long = prediction(0.5, "x" * 300)
    assert len(summary_for(long)) < 140


@pytest.mark.parametrize(
    ("probability", "band", "thresholds", "expected"),
    [
        (0.05, "low", None, "info"),
        (0.15, "moderate", None, "warning"),
        (0.40, "high", None, "critical"),
        (0.15, "moderate", (0.2, 0.3), "info"),
        (0.20, "moderate", (0.2, 0.3), "warning"),
        (0.30, "high", (0.2, 0.3), "critical"),
    ],
)
def test_indicator(
    probability: float, band: str, thresholds: tuple[float, float] | None, expected: str
) -> None:
    assert indicator_for(prediction(probability, band), thresholds) == expected


def test_detail_escapes_markdown_from_factor_text() -> None:
    built = build_card(prediction(0.34, "high"), LINKS, now=NOW)
    detail = built.card["detail"]
    assert "Sodium < 135 mmol/L \\| at \\*discharge\\*" not in detail  # '<' is escaped too
    assert "Sodium \\< 135 mmol/L \\| at \\*discharge\\*" in detail
    assert "(lowers risk)" in detail and "(raises risk)" in detail
    assert "| LACE | 11 | high |" in detail


def test_high_card_is_complete_and_valid() -> None:
    built = build_card(prediction(0.34, "high"), LINKS, now=NOW)
    card = built.card
    assert empty_paths(card) == []
    assert card["indicator"] == "critical" == built.indicator
    assert [s["uuid"] for s in card["suggestions"]] == list(built.suggestion_uuids)
    assert all(s["isRecommended"] for s in card["suggestions"])
    for suggestion in card["suggestions"]:
        resource = suggestion["actions"][0]["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    service_request = card["suggestions"][0]["actions"][0]["resource"]
    assert service_request["occurrencePeriod"] == {"start": "2026-11-23", "end": "2026-11-30"}
    assert service_request["priority"] == "urgent"
    assert json.loads(card["links"][0]["appContext"])["cardUuid"] == str(built.uuid)


def test_follow_up_starts_at_a_future_discharge() -> None:
    planned = prediction(0.15, "moderate", discharged=NOW + timedelta(days=3))
    card = build_card(planned, LINKS, now=NOW).card
    period = card["suggestions"][0]["actions"][0]["resource"]["occurrencePeriod"]
    assert period == {"start": "2026-11-26", "end": "2026-12-03"}
    assert not any(s["isRecommended"] for s in card["suggestions"])


def test_low_card_has_no_suggestions_and_no_dates_when_unknown() -> None:
    card = build_card(prediction(0.03, "low", admitted=None, factors=()), LINKS, now=NOW).card
    assert empty_paths(card) == []
    assert "suggestions" not in card and "overrideReasons" not in card
    assert "selectionBehavior" not in card
    assert "Index admission" not in card["detail"] and "Strongest factors" not in card["detail"]
