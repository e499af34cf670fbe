"""Prefetch templates of the readmission-risk service and reading what the EHR sent for them.

The templates ask for exactly what the model's features read (``risk_model.features``):
the patient, recent encounters (all classes, and separately the inpatient and emergency ones),
conditions, medication orders, procedures and recent laboratory values per lab concept. CDS
Hooks 2.0 has no relative-date token, so "recent" is a bounded count of the newest resources
rather than a date window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from risk_model.features import FEATURE_OBSERVATION_CODES
from terminology.api import lab_concepts
from terminology.valuesets import EMERGENCY_ENCOUNTER_CLASS, INPATIENT_ENCOUNTER_CLASS, get

ENCOUNTER_COUNT = 100
CLASS_ENCOUNTER_COUNT = 50
OBSERVATION_COUNT = 20
LOINC = "http://loinc.org"


@dataclass(frozen=True)
class Template:
    key: str
    query: str  # a relative FHIR read or search with {{context.*}} tokens
    paged: bool  # True: every page is needed; False: the first page is the whole answer

    def render(self, patient_id: str) -> str:
        return self.query.replace("{{context.patientId}}", patient_id)

    @property
    def is_read(self) -> bool:
        return "?" not in self.query


def _observation_templates() -> list[Template]:
    """One search per lab concept (all its LOINC codes), newest first, bounded.

    The model reads the labs taken during the index stay, so a single newest value would miss
    them whenever a later value exists; a short newest-first page keeps the stay in view.
    """
    concepts = lab_concepts()
    groups: dict[str, list[str]] = {}
    for code in FEATURE_OBSERVATION_CODES:
        name = concepts[code].concept if code in concepts else f"observation-{code}"
        groups.setdefault(name, []).append(code)
    templates = []
    for name, codes in sorted(groups.items()):
        any_code = ",".join(f"{LOINC}|{code}" for code in sorted(codes))
        query = (
            f"Observation?patient={{{{context.patientId}}}}&code={any_code}"
            f"&_sort=-date&_count={OBSERVATION_COUNT}"
        )
        templates.append(Template(name, query, paged=False))
    return templates


def _class_template(key: str, value_set: str) -> Template:
    """Newest encounters of some classes, so a long outpatient history cannot hide admissions."""
    classes = ",".join(f"{system}|{code}" for system, code in sorted(get(value_set).members))
    query = (
        f"Encounter?patient={{{{context.patientId}}}}&class={classes}"
        f"&_sort=-date&_count={CLASS_ENCOUNTER_COUNT}"
    )
    return Template(key, query, paged=False)


TEMPLATES: tuple[Template, ...] = (
    Template("patient", "Patient/{{context.patientId}}", paged=False),
    Template(
        "encounters",
        f"Encounter?patient={{{{context.patientId}}}}&_sort=-date&_count={ENCOUNTER_COUNT}",
        paged=False,
    ),
    _class_template("inpatient-encounters", INPATIENT_ENCOUNTER_CLASS),
    _class_template("emergency-encounters", EMERGENCY_ENCOUNTER_CLASS),
    Template("conditions", "Condition?patient={{context.patientId}}", paged=True),
    Template("medications", "MedicationRequest?patient={{context.patientId}}", paged=True),
    Template("procedures", "Procedure?patient={{context.patientId}}", paged=True),
    *_observation_templates(),
)


def discovery_prefetch() -> dict[str, str]:
    return {t.key: t.query for t in TEMPLATES}


@dataclass(frozen=True)
class Slot:
    """What one prefetch key gave us: resources, plus a next-page URL still to follow."""

    resources: tuple[Mapping[str, Any], ...]
    next_url: str | None = None


def read_slot(value: Mapping[str, Any] | None) -> Slot | None:
    """Interpret a prefetch value; None means "missing" (absent, or an OperationOutcome).

    JSON ``null`` means the EHR looked and found nothing, which is an answer (an empty slot).
    An OperationOutcome in the slot means the EHR's own query failed, so the data must still be
    fetched. A searchset with a ``next`` link breaks the spec's "no paging in prefetch" rule; its
    entries are kept and the rest is fetched.
    """
    if value is None:
        return Slot(())
    kind = value.get("resourceType")
    if kind == "OperationOutcome":
        return None
    if kind != "Bundle":
        return Slot((value,))
    resources = tuple(
        entry["resource"]
        for entry in value.get("entry") or ()
        if isinstance(entry, dict)
        and isinstance(entry.get("resource"), dict)
        and entry["resource"].get("resourceType") not in (None, "OperationOutcome")
    )
    return Slot(resources, next_link(value))


def next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None
