"""A deterministic synthetic demo cohort of our own making: FHIR R4 transaction Bundles.

Patients follow three profiles (low, moderate, high risk) built from the facts the model reads,
so a fresh server can show every risk band without any real data. Same seed, same bundles.
"""

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from terminology.codesystems import (
    ACT_CODE,
    ACT_PRIORITY,
    ADMIT_SOURCE,
    CONDITION_CATEGORY,
    LOINC,
    NUBC_DISCHARGE,
    OBSERVATION_CATEGORY,
    RXNORM,
    SNOMED_CT,
    UCUM,
)

DEMO_IDENTIFIER_SYSTEM: Final = "urn:fhir-gateway:demo"
#: Discharges are placed before this fixed instant so the cohort never depends on today's date.
ANCHOR: Final = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
PROFILES: Final = ("low", "moderate", "high")

_GIVEN = ("Alex", "Sam", "Robin", "Jordan", "Casey", "Morgan", "Riley", "Quinn", "Avery", "Drew")
# SNOMED CT codes from our Charlson map (terminology/data/charlson_snomed.csv).
_CONDITIONS = {
    "low": ["38341003", "55822004"],
    "moderate": ["44054006", "185086009", "38341003"],
    "high": ["88805009", "433144002", "368581000119106", "363406005", "49436004"],
}
_MEDS = [
    ("6809", "metformin"),
    ("5856", "insulin"),
    ("4821", "glipizide"),
    ("33738", "pioglitazone"),
]
_EXTRA_MEDS = ["furosemide", "lisinopril", "atorvastatin", "metoprolol", "aspirin", "warfarin"]


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


class _Builder:
    """Collects one patient's entries; ids come from the seeded generator, so output is stable."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.entries: list[dict[str, Any]] = []

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add(self, resource: dict[str, Any]) -> str:
        rid = self.new_id()
        self.entries.append(
            {
                "fullUrl": f"urn:uuid:{rid}",
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
        return f"urn:uuid:{rid}"


def _encounter(
    subject: str, cls: str, start: datetime, end: datetime, **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": ACT_CODE, "code": cls},
        "subject": {"reference": subject},
        "period": {"start": _iso(start), "end": _iso(end)},
        **extra,
    }


def _lab(
    subject: str, enc: str, code: str, text: str, value: float, unit: str, at: datetime
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": code}], "text": text},
        "subject": {"reference": subject},
        "encounter": {"reference": enc},
        "effectiveDateTime": _iso(at),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def _patient_bundle(number: int, profile: str, rng: random.Random) -> dict[str, Any]:
    b = _Builder(rng)
    high, moderate = profile == "high", profile == "moderate"
    age = rng.randint(78, 88) if high else rng.randint(58, 68) if moderate else rng.randint(28, 42)
    discharge = ANCHOR - timedelta(days=rng.randint(1, 60), hours=rng.randint(0, 8))
    los = rng.randint(8, 12) if high else rng.randint(4, 5) if moderate else rng.randint(1, 2)
    admit = discharge - timedelta(days=los)
    birth = (discharge - timedelta(days=365 * age + rng.randint(30, 300))).date()
    patient = b.add(
        {
            "resourceType": "Patient",
            "identifier": [{"system": DEMO_IDENTIFIER_SYSTEM, "value": f"demo-{number:03d}"}],
            "name": [{"family": f"Demo-{number:03d}", "given": [rng.choice(_GIVEN)]}],
            "gender": rng.choice(["female", "male"]),
            "birthDate": birth.isoformat(),
        }
    )
    prior_admissions = rng.randint(4, 6) if high else 1 if moderate else 0
    ed_visits = rng.randint(3, 4) if high else 1 if moderate else 0
    for i in range(prior_admissions):
        start = admit - timedelta(days=30 + i * 50)
        b.add(_encounter(patient, "IMP", start, start + timedelta(days=3)))
    for i in range(ed_visits):
        start = admit - timedelta(days=20 + i * 35, hours=3)
        b.add(_encounter(patient, "EMER", start, start + timedelta(hours=4)))
    for i in range(rng.randint(1, 3)):
        start = admit - timedelta(days=60 + i * 90)
        b.add(_encounter(patient, "AMB", start, start + timedelta(minutes=30)))
    emergency = high or moderate
    hospitalization: dict[str, Any] = {
        "dischargeDisposition": {
            "coding": [{"system": NUBC_DISCHARGE, "code": "03" if high else "01"}]
        }
    }
    if emergency:
        hospitalization["admitSource"] = {"coding": [{"system": ADMIT_SOURCE, "code": "emd"}]}
    index = b.add(
        _encounter(
            patient,
            "IMP",
            admit,
            discharge,
            priority={"coding": [{"system": ACT_PRIORITY, "code": "EM" if emergency else "EL"}]},
            hospitalization=hospitalization,
        )
    )
    for code in _CONDITIONS[profile]:
        b.add(
            {
                "resourceType": "Condition",
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "code": "active",
                        }
                    ]
                },
                "category": [
                    {"coding": [{"system": CONDITION_CATEGORY, "code": "encounter-diagnosis"}]}
                ],
                "code": {"coding": [{"system": SNOMED_CT, "code": code}]},
                "subject": {"reference": patient},
                "encounter": {"reference": index},
                "onsetDateTime": _iso(admit - timedelta(days=400)),
            }
        )
    hb = (
        rng.uniform(9.0, 10.8)
        if high
        else rng.uniform(11.2, 11.8)
        if moderate
        else rng.uniform(13.0, 15.0)
    )
    na = rng.uniform(128.0, 133.0) if high else rng.uniform(136.0, 140.0)
    lab_time = discharge - timedelta(hours=6)
    b.add(_lab(patient, index, "718-7", "Haemoglobin", round(hb, 1), "g/dL", lab_time))
    b.add(_lab(patient, index, "2951-2", "Sodium", round(na, 1), "mmol/L", lab_time))
    if high:
        b.add(
            {
                "resourceType": "Procedure",
                "status": "completed",
                "code": {"text": "Central venous catheter insertion"},
                "subject": {"reference": patient},
                "encounter": {"reference": index},
                "performedDateTime": _iso(admit + timedelta(days=1)),
            }
        )
    n_meds = rng.randint(9, 10) if high else rng.randint(4, 5) if moderate else 1
    for i in range(n_meds):
        concept: dict[str, Any]
        if i < len(_MEDS):
            code, name = _MEDS[i]
            concept = {"coding": [{"system": RXNORM, "code": code}], "text": name}
        else:
            concept = {"text": _EXTRA_MEDS[(i - len(_MEDS)) % len(_EXTRA_MEDS)]}
        b.add(
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": concept,
                "subject": {"reference": patient},
                "encounter": {"reference": index},
                "authoredOn": _iso(discharge - timedelta(hours=2)),
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": b.entries}


def demo_bundles(n_patients: int = 12, seed: int = 7) -> list[dict[str, Any]]:
    """One transaction Bundle per demo patient; profiles cycle low → moderate → high."""
    if n_patients < 0:
        raise ValueError("n_patients must not be negative")
    rng = random.Random(seed)
    return [_patient_bundle(i + 1, PROFILES[i % 3], rng) for i in range(n_patients)]
