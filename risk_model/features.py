"""One patient's FHIR resources + an index inpatient Encounter → a typed feature vector.

Pure and fast: one pass per resource type over plain dicts, dates parsed only for resources that
can matter. The same function feeds training (Diabetes-130 converted to FHIR) and live scoring, so
the model sees production-shaped inputs while it learns.

Windows are measured back from the index admission's start: ED visits in the previous 6 months
(183 days), admissions and outpatient visits in the previous 12 months (365 days). An ED visit
that starts in the 24 hours before the admission is the admission's own door (it makes the stay
"acute") and is not counted as a previous visit. Labs and procedures count when dated within the
stay; "at discharge" means the last value in the stay.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from risk_model._fhir import (
    Resource,
    by_type,
    codings,
    parse_datetime,
    reference_id,
)
from risk_model.errors import InsufficientData
from terminology import charlson
from terminology.api import loinc_codes_for
from terminology.codesystems import ACT_PRIORITY, ADMIT_SOURCE, ICD9CM, ICD10CM, SNOMED_CT
from terminology.errors import UnknownCode
from terminology.valuesets import (
    AGAINST_ADVICE_DISCHARGE,
    AMBULATORY_ENCOUNTER_CLASS,
    EMERGENCY_ENCOUNTER_CLASS,
    FACILITY_DISCHARGE,
    HOME_HEALTH_DISCHARGE,
    INPATIENT_ENCOUNTER_CLASS,
    ONCOLOGY_SERVICE,
    get,
)

FEATURE_SCHEMA_VERSION: Final = "1"

#: Feature names in model order; changing them (or their meaning) changes the schema hash.
FEATURE_NAMES: Final[tuple[str, ...]] = (
    "age_years",
    "sex_male",
    "length_of_stay_days",
    "los_ge_5",
    "acute_admission",
    "nonelective_admission",
    "charlson_index",
    "charlson_quan",
    "chf",
    "renal",
    "copd",
    "malignancy",
    "ed_visits_6m",
    "ed_visits_12m",
    "admissions_12m",
    "outpatient_visits_12m",
    "hemoglobin_low",
    "sodium_low",
    "hba1c_measured",
    "hba1c_high",
    "glucose_high",
    "oncology_discharge",
    "procedure_during_stay",
    "procedures_during_stay",
    "active_medications",
    "condition_count",
    "discharged_to_facility",
    "discharged_home_health",
    "left_against_advice",
)

FEATURE_RESOURCE_TYPES: Final[tuple[str, ...]] = (
    "Patient",
    "Encounter",
    "Condition",
    "MedicationRequest",
    "Observation",
    "Procedure",
)

_HEMOGLOBIN: Final = frozenset(loinc_codes_for("hemoglobin"))
_SODIUM: Final = frozenset(loinc_codes_for("sodium"))
_HBA1C: Final = frozenset(loinc_codes_for("hba1c"))
_GLUCOSE: Final = frozenset(loinc_codes_for("glucose"))
_OBSERVATION_CODES: Final = _HEMOGLOBIN | _SODIUM | _HBA1C | _GLUCOSE
FEATURE_OBSERVATION_CODES: Final[tuple[str, ...]] = tuple(sorted(_OBSERVATION_CODES))

_INPATIENT = get(INPATIENT_ENCOUNTER_CLASS).members
_EMERGENCY = get(EMERGENCY_ENCOUNTER_CLASS).members
_AMBULATORY = get(AMBULATORY_ENCOUNTER_CLASS).members
_ONCOLOGY = get(ONCOLOGY_SERVICE).members
_FACILITY = get(FACILITY_DISCHARGE).members
_HOME_HEALTH = get(HOME_HEALTH_DISCHARGE).members
_AGAINST_ADVICE = get(AGAINST_ADVICE_DISCHARGE).members
_CONDITION_SYSTEMS = (ICD10CM, ICD9CM, SNOMED_CT)
_SKIP_STATUS = frozenset({"entered-in-error", "cancelled", "not-done", "refuted"})
_HIGH_FLAGS = frozenset({"H", "HH", "HU", ">"})
_SIX_MONTHS = timedelta(days=183)
_YEAR = timedelta(days=365)
_DOOR = timedelta(hours=24)

#: Encounter class codes of a possible index stay: a store fetches these for any date, since
#: which one is the index is only known once they are all seen.
INDEX_CLASS_CODES: Final[tuple[str, ...]] = tuple(sorted({c for _, c in _INPATIENT if c}))
#: Encounter class codes the visit counts read besides the inpatient ones (within the window).
VISIT_CLASS_CODES: Final[tuple[str, ...]] = tuple(
    sorted({c for _, c in _EMERGENCY | _AMBULATORY if c} - set(INDEX_CLASS_CODES))
)
#: How far before the index admission each windowed type is read (from period.start of visits,
#: effective time of labs, authoredOn of medication orders; procedures count from admission).
#: Up to the end of the stay, except orders still active, which count whenever written.
#: Conditions count whenever recorded. A store may fetch only these windows around each stay.
VISIT_LOOKBACK: Final = _YEAR
LAB_LOOKBACK: Final = _DOOR
ORDER_LOOKBACK: Final = _DOOR


def feature_schema() -> dict[str, Any]:
    """The feature schema stored beside every artifact (names, order and definition version)."""
    return {"version": FEATURE_SCHEMA_VERSION, "names": list(FEATURE_NAMES)}


def schema_hash(schema: Mapping[str, Any] | None = None) -> str:
    """sha256 of the canonical JSON of a feature schema (the current one by default)."""
    body = json.dumps(schema or feature_schema(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class FeatureVector:
    """The features of one index stay, with where they came from."""

    values: Mapping[str, float]
    patient_id: str
    encounter_id: str
    admitted: datetime
    discharged: datetime
    basis: tuple[str, ...]
    charlson_categories: frozenset[str]
    unmapped_codes: tuple[str, ...]

    def as_list(self) -> list[float]:
        return [self.values[name] for name in FEATURE_NAMES]


def _class_key(encounter: Resource) -> tuple[str | None, str | None]:
    cls = encounter.get("class")
    if isinstance(cls, dict | Mapping):
        return cls.get("system"), cls.get("code")
    return None, None


def _period(resource: Resource, key: str = "period") -> tuple[datetime | None, datetime | None]:
    period = resource.get(key)
    if not isinstance(period, dict | Mapping):
        return None, None
    return parse_datetime(period.get("start")), parse_datetime(period.get("end"))


def _subject_is(resource: Resource, patient_id: str) -> bool:
    ref = resource.get("subject") or resource.get("patient")
    return ref is None or reference_id(ref) == patient_id


def _find_patient(grouped: Mapping[str, list[Resource]], patient_id: str | None) -> Resource:
    patients = grouped.get("Patient") or []
    if patient_id is not None:
        for p in patients:
            if p.get("id") == patient_id:
                return p
        raise InsufficientData(f"no Patient resource with id {patient_id!r} in the record")
    if not patients:
        raise InsufficientData("no Patient resource in the record")
    if len(patients) > 1:
        raise InsufficientData("record holds several Patients; name the patient to score")
    return patients[0]


def _index_encounter(
    encounters: list[Resource], patient_id: str, encounter_id: str | None, as_of: datetime | None
) -> tuple[Resource, datetime, datetime]:
    """The index stay and its (admitted, discharged) instants; see the module docstring."""
    now = as_of or datetime.now(UTC)
    if encounter_id is not None:
        for enc in encounters:
            if enc.get("id") != encounter_id:
                continue
            if not _subject_is(enc, patient_id) or enc.get("subject") is None:
                raise InsufficientData(
                    f"Encounter/{encounter_id} does not belong to Patient/{patient_id}"
                )
            if _class_key(enc) not in _INPATIENT:
                raise InsufficientData(f"Encounter/{encounter_id} is not an inpatient encounter")
            if enc.get("status") in _SKIP_STATUS:
                raise InsufficientData(f"Encounter/{encounter_id} is {enc.get('status')}")
            start, end = _period(enc)
            if start is None:
                raise InsufficientData(f"Encounter/{encounter_id} has no period.start")
            if start > now:
                raise InsufficientData(f"Encounter/{encounter_id} starts after as_of")
            finished = enc.get("status") == "finished" and end is not None and end <= now
            return enc, start, (end if finished and end is not None else max(start, now))
        raise InsufficientData(f"Encounter/{encounter_id} not found in the record")
    best: tuple[Resource, datetime, datetime] | None = None
    for enc in encounters:
        if enc.get("status") != "finished" or _class_key(enc) not in _INPATIENT:
            continue
        if not _subject_is(enc, patient_id) or enc.get("subject") is None:
            continue
        start, end = _period(enc)
        if start is None or end is None or end > now:
            continue
        if best is None or end > best[2]:
            best = (enc, start, end)
    if best is None:
        raise InsufficientData(
            "no finished inpatient Encounter (class IMP/ACUTE/NONAC with period.end)"
            + (" on or before as_of" if as_of is not None else "")
        )
    return best


def _age(patient: Resource, at: datetime) -> float:
    birth = parse_datetime(patient.get("birthDate"))
    if birth is None:
        raise InsufficientData(f"Patient/{patient.get('id')} has no birthDate")
    years = at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))
    return float(max(years, 0))


def _is_acute(index: Resource) -> tuple[bool, bool]:
    """(emergent, urgent-or-emergent) from priority and admit source of the index stay."""
    priority = {code for system, code in codings(index.get("priority")) if system == ACT_PRIORITY}
    hosp = index.get("hospitalization")
    source = (
        {c for s, c in codings(hosp.get("admitSource")) if s == ADMIT_SOURCE}
        if isinstance(hosp, Mapping)
        else set()
    )
    emergent = bool(priority & {"EM", "EMER"}) or "emd" in source
    return emergent, emergent or bool(priority & {"UR", "A", "S", "CS"})


def _quantity(obs: Resource) -> tuple[float | None, str | None, str | None]:
    q = obs.get("valueQuantity")
    if not isinstance(q, dict | Mapping):
        return None, None, None
    value = q.get("value")
    if not isinstance(value, int | float):
        return None, None, None
    return float(value), q.get("code") or q.get("unit"), q.get("comparator")


def _flag_high(obs: Resource) -> bool:
    return any(code in _HIGH_FLAGS for _, code in codings(obs.get("interpretation")))


def _at_least(value: float | None, comparator: str | None, limit: float) -> bool:
    """Whether a (possibly censored, e.g. ``>8``) quantity is at least ``limit``."""
    if value is None or comparator in ("<", "<="):
        return False
    return value >= limit


def _obs_time(obs: Resource) -> datetime | None:
    when = obs.get("effectiveDateTime")
    if when is None:
        period = obs.get("effectivePeriod")
        when = period.get("start") if isinstance(period, Mapping) else obs.get("issued")
    return parse_datetime(when)


def _condition_time(cond: Resource) -> datetime | None:
    return parse_datetime(cond.get("onsetDateTime") or cond.get("recordedDate"))


def _charlson_category(cond: Resource, unmapped: list[str]) -> str | None:
    pairs = [(s, c) for s, c in codings(cond.get("code")) if s in _CONDITION_SYSTEMS and c]
    unknown: list[str] = []
    for system, code in pairs:
        try:
            return charlson.category_of(str(system), str(code))
        except UnknownCode:
            unknown.append(f"{system}|{code}")
    unmapped.extend(unknown)
    return None


@dataclass
class _Stay:
    """The index stay being described, and the evidence list every section appends to."""

    patient_id: str
    index: Resource
    admitted: datetime
    discharged: datetime
    cutoff: datetime
    basis: list[str]


def _visit_features(stay: _Stay, encounters: list[Resource]) -> dict[str, float]:
    """Prior ED, inpatient and outpatient visits, and whether the stay began as an emergency."""
    emergent, urgent = _is_acute(stay.index)
    ed_6m = ed_12m = adm_12m = amb_12m = 0
    admitted = stay.admitted
    year_ago = admitted - _YEAR
    half_year_ago = admitted - _SIX_MONTHS
    for enc in encounters:
        if enc is stay.index or enc.get("status") in _SKIP_STATUS:
            continue
        key = _class_key(enc)
        is_ed = key in _EMERGENCY
        if not (is_ed or key in _INPATIENT or key in _AMBULATORY):
            continue
        period = enc.get("period")
        start = parse_datetime(period.get("start")) if type(period) is dict else None
        if start is None or start > admitted or start < year_ago:
            continue
        if not _subject_is(enc, stay.patient_id):
            continue
        if is_ed:
            if start >= admitted - _DOOR:
                emergent = urgent = True
            else:
                ed_12m += 1
                ed_6m += start >= half_year_ago
        elif key in _INPATIENT:
            if start >= admitted:
                continue
            adm_12m += 1
        else:
            amb_12m += 1
        stay.basis.append(f"Encounter/{enc.get('id')}")
    return {
        "acute_admission": float(emergent),
        "nonelective_admission": float(urgent),
        "ed_visits_6m": float(ed_6m),
        "ed_visits_12m": float(ed_12m),
        "admissions_12m": float(adm_12m),
        "outpatient_visits_12m": float(amb_12m),
    }


def _discharge_features(index: Resource) -> dict[str, float]:
    """Where the patient went, and whether an oncology service discharged them."""
    hosp = index.get("hospitalization")
    disposition = hosp.get("dischargeDisposition") if isinstance(hosp, Mapping) else None
    dispositions = set(codings(disposition))
    oncology = any(pair in _ONCOLOGY for pair in codings(index.get("serviceType")))
    return {
        "oncology_discharge": float(oncology),
        "discharged_to_facility": float(bool(dispositions & _FACILITY)),
        "discharged_home_health": float(bool(dispositions & _HOME_HEALTH)),
        "left_against_advice": float(bool(dispositions & _AGAINST_ADVICE)),
    }


def _condition_features(
    stay: _Stay, conditions: list[Resource]
) -> tuple[dict[str, float], frozenset[str], list[str]]:
    """Charlson index (both weightings), key categories and the condition count."""
    unmapped: list[str] = []
    found: set[str] = set()
    codes: set[tuple[str | None, str | None]] = set()
    for cond in conditions:
        if not _subject_is(cond, stay.patient_id):
            continue
        if {c for _, c in codings(cond.get("verificationStatus"))} & _SKIP_STATUS:
            continue
        when = _condition_time(cond)
        if when is not None and when > stay.cutoff:
            continue
        abated = parse_datetime(cond.get("abatementDateTime"))
        if abated is not None and abated < stay.admitted:
            continue
        category = _charlson_category(cond, unmapped)
        if category is not None:
            found.add(category)
        codes.add(next(codings(cond.get("code")), (None, cond.get("id"))))
        stay.basis.append(f"Condition/{cond.get('id')}")
    categories = charlson.apply_hierarchy(found)
    values = {
        "charlson_index": float(charlson.charlson_index(categories, "charlson_1987")),
        "charlson_quan": float(charlson.charlson_index(categories, "quan_2011")),
        "chf": float("chf" in categories),
        "renal": float("renal" in categories),
        "copd": float("copd" in categories),
        "malignancy": float(bool(categories & {"malignancy", "metastatic"})),
        "condition_count": float(len(codes)),
    }
    return values, categories, unmapped


def _lab_features(stay: _Stay, observations: list[Resource]) -> dict[str, float]:
    """Last haemoglobin and sodium of the stay; HbA1c and glucose seen or raised."""
    a1c_seen = a1c_high = glu_high = False
    last_hb: tuple[datetime, bool] | None = None
    last_na: tuple[datetime, bool] | None = None
    earliest = stay.admitted - _DOOR
    wanted = _OBSERVATION_CODES
    for obs in observations:
        # inlined first_code_in: this loop sees every Observation of the record
        concept = obs.get("code")
        loinc = None
        if type(concept) is dict:
            for coding in concept.get("coding") or ():
                if type(coding) is dict and coding.get("code") in wanted:
                    loinc = coding["code"]
                    break
        if loinc is None:
            continue
        if obs.get("status") in _SKIP_STATUS or not _subject_is(obs, stay.patient_id):
            continue
        when = _obs_time(obs)
        if when is None or when < earliest or when > stay.cutoff:
            continue
        value, unit, comparator = _quantity(obs)
        if loinc in _HEMOGLOBIN and value is not None:
            grams_dl = value / 10.0 if unit == "g/L" else value
            if last_hb is None or when >= last_hb[0]:
                last_hb = (when, grams_dl < 12.0)
        elif loinc in _SODIUM and value is not None:
            if last_na is None or when >= last_na[0]:
                last_na = (when, value < 135.0)
        elif loinc in _HBA1C:
            a1c_seen = True
            a1c_high = a1c_high or _flag_high(obs) or _at_least(value, comparator, 7.0)
        elif loinc in _GLUCOSE:
            glu_high = glu_high or _flag_high(obs) or _at_least(value, comparator, 200.0)
        else:
            continue
        stay.basis.append(f"Observation/{obs.get('id')}")
    return {
        "hemoglobin_low": float(last_hb is not None and last_hb[1]),
        "sodium_low": float(last_na is not None and last_na[1]),
        "hba1c_measured": float(a1c_seen),
        "hba1c_high": float(a1c_high),
        "glucose_high": float(glu_high),
    }


def _procedure_features(stay: _Stay, procedures: list[Resource]) -> dict[str, float]:
    count = 0
    for proc in procedures:
        if proc.get("status") in _SKIP_STATUS or not _subject_is(proc, stay.patient_id):
            continue
        when = parse_datetime(proc.get("performedDateTime"))
        if when is None:
            when, _ = _period(proc, "performedPeriod")
        if when is None or when < stay.admitted or when > stay.cutoff:
            continue
        count += 1
        stay.basis.append(f"Procedure/{proc.get('id')}")
    return {"procedure_during_stay": float(count > 0), "procedures_during_stay": float(count)}


def _medication_features(stay: _Stay, requests: list[Resource]) -> dict[str, float]:
    """Distinct drugs active at discharge: still active, or ordered during the stay."""
    medications: set[str] = set()
    for med in requests:
        status = med.get("status")
        if status in _SKIP_STATUS or not _subject_is(med, stay.patient_id):
            continue
        authored = parse_datetime(med.get("authoredOn"))
        if authored is None or authored > stay.cutoff:
            continue
        if status != "active" and authored < stay.admitted - _DOOR:
            continue
        concept = med.get("medicationCodeableConcept")
        med_key = next((f"{s}|{c}" for s, c in codings(concept) if c), None)
        if med_key is None and isinstance(concept, Mapping):
            med_key = concept.get("text")
        medications.add(str(med_key or med.get("id")))
        stay.basis.append(f"MedicationRequest/{med.get('id')}")
    return {"active_medications": float(len(medications))}


def _locate(
    grouped: Mapping[str, list[Resource]],
    patient_id: str | None,
    encounter_id: str | None,
    as_of: datetime | None,
) -> tuple[Resource, str, Resource, datetime, datetime, datetime]:
    """(patient, its id, index stay, admitted, discharged, cutoff), as ``extract`` uses them."""
    patient = _find_patient(grouped, patient_id)
    pid = str(patient.get("id"))
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    encounters = grouped.get("Encounter") or []
    index, admitted, discharged = _index_encounter(encounters, pid, encounter_id, as_of)
    cutoff = discharged if as_of is None else min(discharged, as_of)
    return patient, pid, index, admitted, discharged, cutoff


def extract(
    resources: Iterable[Resource] | Mapping[str, list[Resource]],
    *,
    patient_id: str | None = None,
    encounter_id: str | None = None,
    as_of: datetime | None = None,
) -> FeatureVector:
    """Features of one patient's index stay; raises InsufficientData naming what is missing.

    ``resources`` may be an iterable of resources or already grouped by type (as the trainer
    does to avoid regrouping per index stay).
    """
    grouped = resources if isinstance(resources, Mapping) else by_type(resources)
    patient, pid, index, admitted, discharged, cutoff = _locate(
        grouped, patient_id, encounter_id, as_of
    )
    encounters = grouped.get("Encounter") or []
    index_id = str(index.get("id"))
    stay = _Stay(
        patient_id=pid,
        index=index,
        admitted=admitted,
        discharged=discharged,
        cutoff=cutoff,
        basis=[f"Patient/{pid}", f"Encounter/{index_id}"],
    )
    los_days = float(max((discharged.date() - admitted.date()).days, 0))
    values: dict[str, float] = {
        "age_years": _age(patient, discharged),
        "sex_male": float(patient.get("gender") == "male"),
        "length_of_stay_days": los_days,
        "los_ge_5": float(los_days >= 5),
    }
    values |= _visit_features(stay, encounters)
    condition_values, categories, unmapped = _condition_features(
        stay, grouped.get("Condition") or []
    )
    values |= condition_values
    values |= _lab_features(stay, grouped.get("Observation") or [])
    values |= _discharge_features(index)
    values |= _procedure_features(stay, grouped.get("Procedure") or [])
    values |= _medication_features(stay, grouped.get("MedicationRequest") or [])
    return FeatureVector(
        values={name: values[name] for name in FEATURE_NAMES},
        patient_id=pid,
        encounter_id=index_id,
        admitted=admitted,
        discharged=discharged,
        basis=tuple(dict.fromkeys(stay.basis)),
        charlson_categories=categories,
        unmapped_codes=tuple(dict.fromkeys(unmapped)),
    )
