"""The small lookup surface behind FHIR ``CodeSystem/$lookup`` and ``ValueSet/$validate-code``.

Returns plain values (display, Charlson category, properties); the HTTP layer turns them into a
``Parameters`` resource. Unknown codes raise :class:`UnknownCode` rather than returning a guess.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from terminology import charlson, valuesets
from terminology._data import read_rows
from terminology.codesystems import (
    ACT_CODE,
    CHARLSON,
    ICD9CM,
    ICD10CM,
    LOINC,
    MEDICAL_SPECIALTY,
    RXNORM,
    SNOMED_CT,
)
from terminology.errors import UnknownCode

_ACT_CODE_LABELS = {
    "IMP": "Inpatient encounter",
    "ACUTE": "Inpatient acute",
    "NONAC": "Inpatient non-acute",
    "EMER": "Emergency",
    "AMB": "Ambulatory",
    "OBSENC": "Observation encounter",
    "HH": "Home health",
    "VR": "Virtual",
    "SS": "Short stay",
    "PRENC": "Pre-admission",
}


@dataclass(frozen=True)
class Concept:
    """What we know of one code: its display (our own label), Charlson category and properties."""

    system: str
    code: str
    display: str | None
    category: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LabConcept:
    code: str
    concept: str
    label: str
    unit: str


@dataclass(frozen=True)
class Validation:
    """Outcome of ``$validate-code``: ``result`` plus a message when the code is not a member."""

    result: bool
    display: str | None
    message: str | None = None


@dataclass(frozen=True)
class CodeSystemInfo:
    """A code system we answer for: canonical URL, name, and whether we hold all of it."""

    url: str
    name: str
    title: str
    content: str  # FHIR CodeSystem.content: "complete" or "fragment"


CODE_SYSTEMS: tuple[CodeSystemInfo, ...] = (
    CodeSystemInfo(CHARLSON, "CharlsonComorbidity", "Charlson comorbidity categories", "complete"),
    CodeSystemInfo(MEDICAL_SPECIALTY, "MedicalSpecialty", "Medical specialties", "complete"),
    CodeSystemInfo(ICD10CM, "ICD10CM", "ICD-10-CM (Charlson subset)", "fragment"),
    CodeSystemInfo(ICD9CM, "ICD9CM", "ICD-9-CM (Charlson subset)", "fragment"),
    CodeSystemInfo(SNOMED_CT, "SNOMEDCT", "SNOMED CT (mapped condition codes)", "fragment"),
    CodeSystemInfo(LOINC, "LOINC", "LOINC (laboratory concepts used)", "fragment"),
    CodeSystemInfo(RXNORM, "RxNorm", "RxNorm (diabetes drug ingredients)", "fragment"),
    CodeSystemInfo(ACT_CODE, "ActCode", "HL7 v3 ActCode (encounter classes)", "fragment"),
)


def code_system(url: str) -> CodeSystemInfo:
    """The code system we answer for at ``url`` (``CodeSystem/$lookup`` needs its name)."""
    for info in CODE_SYSTEMS:
        if info.url == url:
            return info
    raise UnknownCode(url, "", "code system not supported")


@cache
def lab_concepts() -> dict[str, LabConcept]:
    """LOINC code → lab concept (several codes may share one concept, e.g. two sodium codes)."""
    return {
        r["code"]: LabConcept(r["code"], r["concept"], r["label"], r["unit"])
        for r in read_rows("loinc_labs.csv")
    }


def loinc_codes_for(concept: str) -> tuple[str, ...]:
    """Every LOINC code that measures ``concept`` (e.g. ``"sodium"``)."""
    return tuple(c.code for c in lab_concepts().values() if c.concept == concept)


@cache
def _rxnorm() -> dict[str, str]:
    return {r["code"]: r["name"] for r in read_rows("rxnorm_diabetes.csv")}


@cache
def rxnorm_by_name() -> dict[str, str]:
    """Ingredient name → RXCUI, for converters that know drugs by name only."""
    return {name: code for code, name in _rxnorm().items()}


@cache
def _specialties() -> dict[str, str]:
    return {r["code"]: r["label"] for r in read_rows("medical_specialty.csv")}


def _icd(system: str, code: str) -> Concept:
    category = charlson.category_of(system, code)
    props = {"charlson-category": category} if category else {}
    return Concept(system, code, None, category, props)


def lookup(system: str, code: str) -> Concept:
    """Look one code up; raises UnknownCode for a code or system we hold nothing about."""
    if system in (ICD10CM, ICD9CM):
        return _icd(system, code)
    if system == SNOMED_CT:
        entry = charlson.snomed_map().get(code)
        if entry is None:
            raise UnknownCode(system, code, "SNOMED CT code not in our map")
        category, label = entry
        return Concept(system, code, label, category, {"charlson-category": category or "none"})
    if system == CHARLSON:
        cat = charlson.categories().get(code)
        if cat is None:
            raise UnknownCode(system, code)
        props = {
            "weight-charlson-1987": str(cat.charlson_1987),
            "weight-quan-2011": str(cat.quan_2011),
        }
        if cat.supersedes:
            props["supersedes"] = cat.supersedes
        return Concept(system, code, cat.label, code, props)
    if system == LOINC:
        lab = lab_concepts().get(code)
        if lab is None:
            raise UnknownCode(system, code, "LOINC code not used by this project")
        return Concept(system, code, lab.label, None, {"concept": lab.concept, "unit": lab.unit})
    if system == RXNORM:
        name = _rxnorm().get(code)
        if name is None:
            raise UnknownCode(system, code, "RxNorm code not in our subset")
        return Concept(system, code, name)
    if system == MEDICAL_SPECIALTY:
        specialty = _specialties().get(code)
        if specialty is None:
            raise UnknownCode(system, code)
        return Concept(system, code, specialty)
    if system == ACT_CODE:
        act = _ACT_CODE_LABELS.get(code)
        if act is None:
            raise UnknownCode(system, code, "ActCode not in our subset")
        return Concept(system, code, act)
    raise UnknownCode(system, code, "code system not supported")


def validate_code(
    valueset_url: str, system: str, code: str, display: str | None = None
) -> Validation:
    """Whether (system, code) is in the value set; raises UnknownValueSet for a foreign URL.

    A ``display`` that differs from ours does not fail the check (displays are not codes) but
    is reported in the message, as FHIR's ``$validate-code`` does.
    """
    vs = valuesets.get(valueset_url)
    try:
        ours = lookup(system, code).display
    except UnknownCode:
        ours = None
    if not vs.contains(system, code):
        return Validation(False, ours, f"{system}|{code} is not in value set {vs.url}")
    if display is not None and ours is not None and display != ours:
        return Validation(True, ours, f"display {display!r} differs from {ours!r}")
    return Validation(True, ours)
