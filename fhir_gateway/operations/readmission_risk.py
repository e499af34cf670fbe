"""``$readmission-risk``: the embedded model as a FHIR operation returning a RiskAssessment.

Instance level scores a stored patient (fetching only what the features read); type level scores
a record the caller pushes as a Bundle, for EHRs that do not store data here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fhir_gateway.fhir import errors
from fhir_gateway.fhir.references import rewrite_references
from fhir_gateway.operations.registry import OperationContext, Param, operation
from fhir_gateway.scoring.assessment import risk_assessment
from fhir_gateway.scoring.service import assess, patient_record_for_scoring, predict

_DOC_PROBABILITY = "RiskAssessment.prediction.probabilityDecimal is a fraction between 0 and 1."


def parse_as_of(raw: Any) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise errors.invalid("asOf must be a dateTime string", ["asOf"])
    text = raw.replace("Z", "+00:00")
    try:
        value = datetime.fromisoformat(text if "T" in text else text + "T23:59:59+00:00")
    except ValueError:
        raise errors.invalid(f"asOf '{raw}' is not a valid dateTime", ["asOf"]) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_encounter(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw:
        raise errors.invalid("encounter must be an Encounter id or 'Encounter/id'", ["encounter"])
    rid = raw.removeprefix("Encounter/")
    if "/" in rid:
        raise errors.invalid(f"encounter '{raw}' is not an Encounter reference", ["encounter"])
    return rid


@operation(
    code="readmission-risk",
    id="readmission-risk",
    title="30-day readmission risk",
    description=(
        "Scores the patient's index inpatient stay (the latest finished inpatient Encounter, or "
        "the one named) with the embedded model and returns a RiskAssessment. " + _DOC_PROBABILITY
    ),
    resource_types=("Patient",),
    type_level=True,
    instance=True,
    affects_state=False,
    parameters=(
        Param(
            "encounter",
            "string",
            0,
            "1",
            documentation="Index Encounter (id or Encounter/id); default: the latest discharge",
        ),
        Param(
            "asOf", "dateTime", 0, "1", documentation="Score as of this time: later data is ignored"
        ),
        Param(
            "bundle",
            "Bundle",
            0,
            "1",
            documentation="Type level only: the patient's record, scored without storing it",
        ),
        Param("return", "RiskAssessment", 1, "1", use="out"),
    ),
)
async def readmission_risk(ctx: OperationContext) -> dict[str, Any]:
    as_of = parse_as_of(ctx.one("asOf"))
    encounter_id = parse_encounter(ctx.one("encounter"))
    predictor = ctx.state.predictor
    if ctx.resource_id is None:
        bundle = ctx.one("bundle")
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise errors.invalid(
                "The type-level form needs a 'bundle' parameter with a Bundle", ["bundle"]
            )
        resources, patient_id = pushed_record(bundle)
        prediction = predict(predictor, resources, patient_id, encounter_id, as_of)
        return risk_assessment(prediction, occurrence=as_of or datetime.now(UTC))
    if ctx.one("bundle") is not None:
        raise errors.invalid("'bundle' is only accepted at the type level", ["bundle"])
    async with ctx.state.db.connection() as conn:
        record = await patient_record_for_scoring(
            conn, ctx.principal.tenant, predictor, ctx.resource_id, encounter_id
        )
    return assess(predictor, record, ctx.resource_id, encounter_id, as_of)


def pushed_record(bundle: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """Give a pushed Bundle's resources ids and local references, and find its one Patient."""
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise errors.invalid("bundle.entry must be an array", ["bundle.entry"])
    resources: list[dict[str, Any]] = []
    refs: dict[str, str] = {}
    for i, entry in enumerate(entries):
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            raise errors.invalid(f"bundle.entry[{i}] has no resource", [f"bundle.entry[{i}]"])
        res = dict(res)
        if not res.get("id"):
            full = entry.get("fullUrl", "")
            full = full if isinstance(full, str) else ""
            res["id"] = (
                full.rsplit(":", 1)[-1] if full.startswith("urn:uuid:") else str(uuid.uuid4())
            )
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str):
            refs[full_url] = f"{res['resourceType']}/{res['id']}"
        resources.append(res)
    for res in resources:
        rewrite_references(res, lambda ref, _loc: refs.get(ref))
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    if len(patients) != 1:
        raise errors.processing(
            f"The bundle must hold exactly one Patient; it holds {len(patients)}", ["bundle"]
        )
    return resources, str(patients[0]["id"])
