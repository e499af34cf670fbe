"""The value sets the project relies on, each with a canonical URL and an explicit member list.

Features, labels and the converter ask "is this code in that set?" through these objects, so one
decision (e.g. which encounter classes count as inpatient) lives in exactly one place and can be
served over FHIR as ``ValueSet/$validate-code``.
"""

from dataclasses import dataclass
from functools import cache
from typing import Final

from terminology._data import read_rows
from terminology.codesystems import (
    ACT_CODE,
    CANONICAL_BASE,
    DISCHARGE_DISPOSITION,
    MEDICAL_SPECIALTY,
    NUBC_DISCHARGE,
    SNOMED_CT,
)
from terminology.errors import UnknownValueSet

INPATIENT_ENCOUNTER_CLASS: Final = f"{CANONICAL_BASE}/ValueSet/inpatient-encounter-class"
EMERGENCY_ENCOUNTER_CLASS: Final = f"{CANONICAL_BASE}/ValueSet/emergency-encounter-class"
AMBULATORY_ENCOUNTER_CLASS: Final = f"{CANONICAL_BASE}/ValueSet/ambulatory-encounter-class"
ONCOLOGY_SERVICE: Final = f"{CANONICAL_BASE}/ValueSet/oncology-service"
DEATH_OR_HOSPICE_DISCHARGE: Final = f"{CANONICAL_BASE}/ValueSet/death-or-hospice-discharge"
FACILITY_DISCHARGE: Final = f"{CANONICAL_BASE}/ValueSet/facility-discharge"
HOME_HEALTH_DISCHARGE: Final = f"{CANONICAL_BASE}/ValueSet/home-health-discharge"
AGAINST_ADVICE_DISCHARGE: Final = f"{CANONICAL_BASE}/ValueSet/against-advice-discharge"


@dataclass(frozen=True)
class ValueSet:
    """An enumerated value set: canonical URL, a title of our own and its (system, code) members."""

    url: str
    name: str
    title: str
    members: frozenset[tuple[str, str]]

    def __contains__(self, item: object) -> bool:
        return item in self.members

    def contains(self, system: str | None, code: str | None) -> bool:
        return (system, code) in self.members


def _nubc(*codes: str) -> set[tuple[str, str]]:
    return {(NUBC_DISCHARGE, c) for c in codes}


def _hl7_disposition(*codes: str) -> set[tuple[str, str]]:
    return {(DISCHARGE_DISPOSITION, c) for c in codes}


@cache
def value_sets() -> dict[str, ValueSet]:
    """Every value set we publish, by canonical URL."""
    oncology = {
        (MEDICAL_SPECIALTY, r["code"])
        for r in read_rows("medical_specialty.csv")
        if r["oncology"] == "1"
    }
    # SNOMED CT practice settings for clinical and medical oncology (HL7 c80-practice-codes).
    oncology |= {(SNOMED_CT, "394592004"), (SNOMED_CT, "394593009")}
    sets = [
        ValueSet(
            INPATIENT_ENCOUNTER_CLASS,
            "InpatientEncounterClass",
            "Inpatient encounter classes",
            frozenset({(ACT_CODE, "IMP"), (ACT_CODE, "ACUTE"), (ACT_CODE, "NONAC")}),
        ),
        ValueSet(
            EMERGENCY_ENCOUNTER_CLASS,
            "EmergencyEncounterClass",
            "Emergency encounter classes",
            frozenset({(ACT_CODE, "EMER")}),
        ),
        ValueSet(
            AMBULATORY_ENCOUNTER_CLASS,
            "AmbulatoryEncounterClass",
            "Ambulatory encounter classes",
            frozenset({(ACT_CODE, "AMB")}),
        ),
        ValueSet(
            ONCOLOGY_SERVICE,
            "OncologyService",
            "Oncology services (HOSPITAL score)",
            frozenset(oncology),
        ),
        ValueSet(
            DEATH_OR_HOSPICE_DISCHARGE,
            "DeathOrHospiceDischarge",
            "Discharges after which no readmission is possible (death, hospice)",
            # NUBC UB-04 FL17: 20 expired, 40-42 expired (hospice claims), 50/51 hospice.
            frozenset(_nubc("20", "40", "41", "42", "50", "51") | _hl7_disposition("exp")),
        ),
        ValueSet(
            FACILITY_DISCHARGE,
            "FacilityDischarge",
            "Discharges to another care facility",
            frozenset(
                _nubc("02", "03", "04", "05", "43", "61", "62", "63", "64", "65", "66", "70")
                | _hl7_disposition("hosp", "snf", "rehab", "long", "other-hcf", "psy")
            ),
        ),
        ValueSet(
            HOME_HEALTH_DISCHARGE,
            "HomeHealthDischarge",
            "Discharges home under a home health service",
            frozenset(_nubc("06")),
        ),
        ValueSet(
            AGAINST_ADVICE_DISCHARGE,
            "AgainstAdviceDischarge",
            "Patient left against medical advice",
            frozenset(_nubc("07") | _hl7_disposition("aadvice")),
        ),
    ]
    return {vs.url: vs for vs in sets}


def get(url: str) -> ValueSet:
    """The value set with this canonical URL (a ``|version`` suffix is ignored)."""
    found = value_sets().get(url.split("|", 1)[0])
    if found is None:
        raise UnknownValueSet(url)
    return found


def in_value_set(url: str, system: str | None, code: str | None) -> bool:
    """Membership test used on hot paths (features): no exception for a non-member."""
    return get(url).contains(system, code)
