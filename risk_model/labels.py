"""30-day readmission labels derived from a patient's Encounters (for data from a FHIR store).

Index stays are finished inpatient Encounters with a discharge instant. A stay is excluded as an
index when the patient died or went to hospice (no readmission is possible), when it ended in a
transfer to another acute hospital (the episode continues elsewhere), or when the 30 days after
discharge are not fully observed (``as_of``). A readmission is any other inpatient admission that
starts after the discharge instant and within the window, same day included. The stay that
receives a transfer is an index stay of its own, judged by its own discharge.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from risk_model._fhir import Resource, codings, parse_datetime
from terminology.codesystems import DISCHARGE_DISPOSITION, NUBC_DISCHARGE
from terminology.valuesets import DEATH_OR_HOSPICE_DISCHARGE, INPATIENT_ENCOUNTER_CLASS, get

_INPATIENT = get(INPATIENT_ENCOUNTER_CLASS).members
_DEATH_OR_HOSPICE = get(DEATH_OR_HOSPICE_DISCHARGE).members
#: Discharge codes meaning "transferred to another short-term acute hospital".
_ACUTE_TRANSFER = frozenset(
    {(NUBC_DISCHARGE, "02"), (NUBC_DISCHARGE, "66"), (DISCHARGE_DISPOSITION, "hosp")}
)


@dataclass(frozen=True)
class StayLabel:
    """Outcome of one index stay; ``reason`` says why an excluded stay was left out."""

    encounter_id: str
    patient_id: str | None
    discharged: datetime
    readmitted_30d: bool
    excluded: bool
    reason: str | None = None
    readmission_id: str | None = None


def _stays(resources: Iterable[Resource]) -> list[tuple[Resource, datetime, datetime]]:
    out = []
    for r in resources:
        if r.get("resourceType") != "Encounter" or r.get("status") != "finished":
            continue
        cls = r.get("class") or {}
        if (cls.get("system"), cls.get("code")) not in _INPATIENT:
            continue
        period = r.get("period") or {}
        start, end = parse_datetime(period.get("start")), parse_datetime(period.get("end"))
        if start is not None and end is not None:
            out.append((r, start, end))
    return sorted(out, key=lambda item: item[1])


def _disposition(enc: Resource) -> set[tuple[str | None, str | None]]:
    hosp = enc.get("hospitalization") or {}
    return set(codings(hosp.get("dischargeDisposition")))


def readmission_labels(
    resources: Iterable[Resource], *, window_days: int = 30, as_of: datetime | None = None
) -> list[StayLabel]:
    """One label per inpatient stay of the given resources (one patient's record)."""
    resources = list(resources)
    deceased = None
    for r in resources:
        if r.get("resourceType") == "Patient":
            deceased = parse_datetime(r.get("deceasedDateTime"))
    stays = _stays(resources)
    window = timedelta(days=window_days)
    labels: list[StayLabel] = []
    for enc, start, end in stays:
        eid = str(enc.get("id"))
        subject = (enc.get("subject") or {}).get("reference")
        disposition = _disposition(enc)
        reason = None
        if disposition & _DEATH_OR_HOSPICE:
            reason = "death or hospice discharge"
        elif deceased is not None and deceased <= end + window and deceased >= start:
            reason = "patient died during the stay or follow-up window"
        elif disposition & _ACUTE_TRANSFER:
            reason = "transferred to another acute hospital"
        elif as_of is not None and end + window > as_of:
            reason = "30-day follow-up not complete"
        readmission = None
        for other, other_start, _ in stays:
            if other is enc or other_start < end or other_start > end + window:
                continue
            readmission = str(other.get("id"))
            break
        labels.append(
            StayLabel(
                encounter_id=eid,
                patient_id=subject,
                discharged=end,
                readmitted_30d=readmission is not None and reason is None,
                excluded=reason is not None,
                reason=reason,
                readmission_id=readmission if reason is None else None,
            )
        )
    return labels
