"""Small hand-built FHIR records for the risk-model tests, and where the shared data lives."""

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
REPO = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("FHIR_GATEWAY_SHARED_DATA", REPO / ".." / "shared" / "data"))

# The index stay of the standard record: admitted 1 March 2024 10:00, discharged 6 March 09:00.
ADMIT = datetime.fromisoformat("2024-03-01T10:00:00+00:00")
DISCHARGE = datetime.fromisoformat("2024-03-06T09:00:00+00:00")


def iso(when: datetime) -> str:
    return when.isoformat()


class Record:
    """Builds one patient's resources as plain dicts with readable ids."""

    def __init__(self, patient_id: str = "p1", birth: str = "1950-06-15", gender: str = "male"):
        self.patient_id = patient_id
        self.resources: list[dict[str, Any]] = [
            {"resourceType": "Patient", "id": patient_id, "birthDate": birth, "gender": gender}
        ]
        self._n = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def encounter(
        self,
        cls: str,
        start: datetime,
        end: datetime | None,
        *,
        status: str = "finished",
        eid: str | None = None,
        subject: str | None = None,
        **extra: Any,
    ) -> str:
        eid = eid or self._id("e")
        period = {"start": iso(start)} | ({"end": iso(end)} if end else {})
        self.resources.append(
            {
                "resourceType": "Encounter",
                "id": eid,
                "status": status,
                "class": {"system": ACT, "code": cls},
                "subject": {"reference": f"Patient/{subject or self.patient_id}"},
                "period": period,
                **extra,
            }
        )
        return eid

    def index_stay(self, **extra: Any) -> str:
        return self.encounter("IMP", ADMIT, DISCHARGE, eid="index", **extra)

    def condition(self, system: str, code: str, onset: datetime | None = None) -> str:
        cid = self._id("c")
        self.resources.append(
            {
                "resourceType": "Condition",
                "id": cid,
                "code": {"coding": [{"system": system, "code": code}]},
                "subject": {"reference": f"Patient/{self.patient_id}"},
                "onsetDateTime": iso(onset or ADMIT - timedelta(days=365)),
            }
        )
        return cid

    def lab(self, loinc: str, value: float, unit: str, at: datetime) -> str:
        oid = self._id("o")
        self.resources.append(
            {
                "resourceType": "Observation",
                "id": oid,
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
                "subject": {"reference": f"Patient/{self.patient_id}"},
                "effectiveDateTime": iso(at),
                "valueQuantity": {"value": value, "unit": unit, "code": unit},
            }
        )
        return oid

    def procedure(self, at: datetime) -> str:
        pid = self._id("pr")
        self.resources.append(
            {
                "resourceType": "Procedure",
                "id": pid,
                "status": "completed",
                "code": {"text": "procedure"},
                "subject": {"reference": f"Patient/{self.patient_id}"},
                "performedDateTime": iso(at),
            }
        )
        return pid

    def medication(self, text: str, at: datetime, status: str = "active") -> str:
        mid = self._id("m")
        self.resources.append(
            {
                "resourceType": "MedicationRequest",
                "id": mid,
                "status": status,
                "intent": "order",
                "medicationCodeableConcept": {"text": text},
                "subject": {"reference": f"Patient/{self.patient_id}"},
                "authoredOn": iso(at),
            }
        )
        return mid
