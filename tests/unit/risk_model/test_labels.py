"""30-day readmission labels from Encounters: transfers, deaths, hospice, same-day readmission."""

from datetime import datetime, timedelta

from rm_records import ADMIT, DISCHARGE, Record

from risk_model.labels import readmission_labels

NUBC = "http://www.nubc.org/patient-discharge"


def _disposition(code: str) -> dict[str, object]:
    return {"dischargeDisposition": {"coding": [{"system": NUBC, "code": code}]}}


def _by_id(record: Record, **kwargs: datetime) -> dict[str, object]:
    return {lab.encounter_id: lab for lab in readmission_labels(record.resources, **kwargs)}


def test_readmission_within_30_days_counts(record: Record) -> None:
    record.index_stay()
    back = DISCHARGE + timedelta(days=29)
    record.encounter("IMP", back, back + timedelta(days=2), eid="back")
    labels = _by_id(record)
    assert labels["index"].readmitted_30d  # type: ignore[attr-defined]
    assert labels["index"].readmission_id == "back"  # type: ignore[attr-defined]
    assert not labels["back"].readmitted_30d  # type: ignore[attr-defined]


def test_same_day_readmission_counts(record: Record) -> None:
    record.index_stay()
    back = DISCHARGE + timedelta(hours=6)
    record.encounter("IMP", back, back + timedelta(days=1), eid="back")
    assert _by_id(record)["index"].readmitted_30d  # type: ignore[attr-defined]


def test_after_thirty_days_or_outpatient_is_not_a_readmission(record: Record) -> None:
    record.index_stay()
    late = DISCHARGE + timedelta(days=31)
    record.encounter("IMP", late, late + timedelta(days=1))
    record.encounter("EMER", DISCHARGE + timedelta(days=3), DISCHARGE + timedelta(days=3, hours=2))
    assert not _by_id(record)["index"].readmitted_30d  # type: ignore[attr-defined]


def test_death_and_hospice_discharges_are_excluded(record: Record) -> None:
    record.encounter("IMP", ADMIT, DISCHARGE, eid="died", hospitalization=_disposition("20"))
    later = DISCHARGE + timedelta(days=100)
    record.encounter(
        "IMP", later, later + timedelta(days=2), eid="hospice", hospitalization=_disposition("50")
    )
    labels = _by_id(record)
    assert labels["died"].excluded and "death" in labels["died"].reason  # type: ignore[attr-defined]
    assert labels["hospice"].excluded  # type: ignore[attr-defined]
    assert not labels["died"].readmitted_30d  # type: ignore[attr-defined]


def test_patient_death_after_discharge_excludes_the_stay() -> None:
    record = Record()
    record.resources[0]["deceasedDateTime"] = (DISCHARGE + timedelta(days=10)).isoformat()
    record.index_stay()
    assert _by_id(record)["index"].excluded  # type: ignore[attr-defined]


def test_transfer_to_another_hospital(record: Record) -> None:
    record.encounter("IMP", ADMIT, DISCHARGE, eid="first", hospitalization=_disposition("02"))
    record.encounter(
        "IMP", DISCHARGE + timedelta(hours=2), DISCHARGE + timedelta(days=4), eid="second"
    )
    labels = _by_id(record)
    assert labels["first"].excluded and "transfer" in labels["first"].reason  # type: ignore[attr-defined]
    assert not labels["first"].readmitted_30d  # type: ignore[attr-defined]
    assert not labels["second"].excluded  # type: ignore[attr-defined]


def test_incomplete_follow_up_is_excluded(record: Record) -> None:
    record.index_stay()
    labels = _by_id(record, as_of=DISCHARGE + timedelta(days=10))
    assert labels["index"].excluded  # type: ignore[attr-defined]
    assert not _by_id(record, as_of=DISCHARGE + timedelta(days=40))["index"].excluded  # type: ignore[attr-defined]
