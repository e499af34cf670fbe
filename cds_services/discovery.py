"""The discovery document: which services exist, for which hook, with what prefetch."""

from __future__ import annotations

from typing import Any

from cds_services.config import SERVICE_ID
from cds_services.prefetch import discovery_prefetch


def discovery_document() -> dict[str, Any]:
    return {
        "services": [
            {
                "hook": "patient-view",
                "id": SERVICE_ID,
                "title": "30-day readmission risk",
                "description": (
                    "Estimates the probability of an unplanned readmission within 30 days of the "
                    "patient's latest inpatient stay, with LACE and HOSPITAL scores, the strongest "
                    "contributing factors and suggested transitional-care actions."
                ),
                "prefetch": discovery_prefetch(),
                "usageRequirements": (
                    "Needs the prefetched data, or fhirServer with fhirAuthorization granting read "
                    "access to Patient, Encounter, Condition, MedicationRequest, Procedure and "
                    "Observation of the patient. Calls must carry a signed client JWT."
                ),
            }
        ]
    }
