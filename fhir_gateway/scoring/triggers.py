"""Which writes are discharges: a finished inpatient Encounter with a subject Patient."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

INPATIENT_CLASSES = frozenset({"IMP", "ACUTE", "NONAC"})


def discharge_of(resource: Mapping[str, Any]) -> tuple[str, str] | None:
    """(patient_id, encounter_id) when ``resource`` records an inpatient discharge."""
    if resource.get("resourceType") != "Encounter" or resource.get("status") != "finished":
        return None
    cls = resource.get("class")
    if not isinstance(cls, dict) or cls.get("code") not in INPATIENT_CLASSES:
        return None
    period = resource.get("period")
    if not isinstance(period, dict) or not period.get("end"):
        return None
    subject = resource.get("subject")
    ref = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(ref, str) or not ref.startswith("Patient/"):
        return None
    return ref.split("/", 2)[1], str(resource.get("id"))
