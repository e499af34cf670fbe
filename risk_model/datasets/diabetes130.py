"""Diabetes-130 US hospitals CSV → one FHIR R4 transaction Bundle per patient.

Follows the data README's mapping. Choices worth knowing:

* The data has no dates. Each patient's encounters (ordered by encounter_id) get synthetic
  discharge dates 400 days apart, ending on a per-patient day in 2008; so one row's prior visits
  (placed inside the 12 months before its admission) never fall in another row's windows.
* number_inpatient / number_emergency / number_outpatient become that many finished IMP / EMER /
  AMB Encounters spread evenly over the 360 days before the admission (one ED visit lands 180 days
  before, i.e. inside LACE's 6-month window).
* num_procedures becomes that many Procedure resources with only a text code (the source gives no
  detail); num_lab_procedures, num_medications and number_diagnoses, counts with no item-level
  detail at all, are kept as integer extensions on the index Encounter (features do not read them).
* A1C and glucose bands are carried as censored quantities (``>8 %`` is comparator ``>`` value 8),
  and "Norm" as ``<7 %`` / ``<200 mg/dL`` with interpretation N: the reported band, no invented
  number.
* The ``readmitted`` column is the label; it is returned beside the bundle, never written into it.
"""

import argparse
import contextlib
import csv
import gzip
import io
import json
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TextIO

from terminology.api import rxnorm_by_name
from terminology.charlson import normalize_icd9
from terminology.codesystems import (
    ACT_CODE,
    ACT_PRIORITY,
    ADMIT_SOURCE,
    CANONICAL_BASE,
    CDC_RACE_ETHNICITY,
    CONDITION_CATEGORY,
    ICD9CM,
    LOINC,
    MEDICAL_SPECIALTY,
    NUBC_DISCHARGE,
    OBSERVATION_CATEGORY,
    OBSERVATION_INTERPRETATION,
    RXNORM,
    UCUM,
    US_CORE_ETHNICITY,
    US_CORE_RACE,
)

PATIENT_SYSTEM: Final = "urn:diabetes130:patient"
ENCOUNTER_SYSTEM: Final = "urn:diabetes130:encounter"
ADMISSION_TYPE_SYSTEM: Final = "urn:diabetes130:admission-type"
ADMISSION_SOURCE_SYSTEM: Final = "urn:diabetes130:admission-source"
DISCHARGE_SYSTEM: Final = "urn:diabetes130:discharge-disposition"
SOURCE_COUNT_URL: Final = f"{CANONICAL_BASE}/StructureDefinition/source-count"
DOSE_CHANGE_URL: Final = f"{CANONICAL_BASE}/StructureDefinition/dose-change"
_NAMESPACE: Final = uuid.UUID("6f1d3c1e-2b7a-4c59-9d7e-130d1abe7e5a")
_LAST_DISCHARGE: Final = datetime(2008, 12, 31, 12, 0, tzinfo=UTC)
_SPACING: Final = timedelta(days=400)
DEATH_OR_HOSPICE_IDS: Final = frozenset({"11", "13", "14", "19", "20", "21"})

DRUG_COLUMNS: Final = (
    "metformin", "repaglinide", "nateglinide", "chlorpropamide", "glimepiride", "acetohexamide",
    "glipizide", "glyburide", "tolbutamide", "pioglitazone", "rosiglitazone", "acarbose",
    "miglitol", "troglitazone", "tolazamide", "examide", "citoglipton", "insulin",
    "glyburide-metformin", "glipizide-metformin", "glimepiride-pioglitazone",
    "metformin-rosiglitazone", "metformin-pioglitazone",
)  # fmt: skip
_PRIORITY = {"1": "EM", "7": "EM", "2": "UR", "3": "EL"}
_ADMIT_SOURCE = {
    "1": "gp", "2": "outp", "3": "mp", "4": "hosp-trans", "5": "nursing", "6": "other",
    "7": "emd", "8": "other", "10": "hosp-trans", "11": "born", "12": "born", "13": "born",
    "14": "born", "22": "hosp-trans", "23": "born", "24": "born", "25": "outp",
}  # fmt: skip
# Diabetes-130 discharge_disposition_id → NUBC UB-04 patient discharge status.
_NUBC = {
    "1": "01", "2": "02", "3": "03", "4": "04", "5": "05", "6": "06", "7": "07", "8": "06",
    "9": "09", "11": "20", "13": "50", "14": "51", "15": "61", "16": "70", "17": "70",
    "19": "40", "20": "41", "21": "42", "22": "62", "23": "63", "24": "64", "27": "43",
    "28": "65", "29": "66", "30": "70",
}  # fmt: skip
_SPECIALTY = {
    "Oncology": "oncology",
    "Hematology/Oncology": "hematology-oncology",
    "Pediatrics-Hematology-Oncology": "pediatrics-hematology-oncology",
    "Obsterics&Gynecology-GynecologicOnco": "gynecologic-oncology",
}
_RACE = {
    "Caucasian": ("2106-3", "White"),
    "AfricanAmerican": ("2054-5", "Black or African American"),
    "Asian": ("2028-9", "Asian"),
}
_A1C = {">8": (">", 8.0, "H"), ">7": (">", 7.0, "H"), "Norm": ("<", 7.0, "N")}
_GLUCOSE = {">300": (">", 300.0, "H"), ">200": (">", 200.0, "H"), "Norm": ("<", 200.0, "N")}


@dataclass(frozen=True)
class IndexLabel:
    """The outcome of one index stay, kept beside (never inside) the FHIR data."""

    patient_nbr: str
    encounter_id: str
    fhir_encounter_id: str
    readmitted_30d: bool
    excluded: bool  # death or hospice: readmission impossible


def _uid(*parts: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, ":".join(str(p) for p in parts)))


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _ref(rid: str) -> dict[str, str]:
    return {"reference": f"urn:uuid:{rid}"}


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    rid = resource.pop("id")
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _birth_date(age_band: str, at: datetime) -> str | None:
    """Middle of a ``[70-80)`` band, counted back from the first discharge."""
    try:
        low, high = age_band.strip("[)").split("-")
        years = (int(low) + int(high)) // 2
    except ValueError:
        return None
    born = at.date().replace(month=1, day=1)
    return date(born.year - years, 7, 1).isoformat()


def _patient(row: Mapping[str, str], pid: str, first_discharge: datetime) -> dict[str, Any]:
    gender = {"Female": "female", "Male": "male"}.get(row["gender"], "unknown")
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": PATIENT_SYSTEM, "value": row["patient_nbr"]}],
        "gender": gender,
    }
    birth = _birth_date(row["age"], first_discharge)
    if birth:
        patient["birthDate"] = birth
    race = _RACE.get(row["race"])
    if race is not None:
        patient["extension"] = [
            {
                "url": US_CORE_RACE,
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": {
                            "system": CDC_RACE_ETHNICITY,
                            "code": race[0],
                            "display": race[1],
                        },
                    },
                    {"url": "text", "valueString": race[1]},
                ],
            }
        ]
    elif row["race"] == "Hispanic":
        patient["extension"] = [
            {
                "url": US_CORE_ETHNICITY,
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": {
                            "system": CDC_RACE_ETHNICITY,
                            "code": "2135-2",
                            "display": "Hispanic or Latino",
                        },
                    },
                    {"url": "text", "valueString": "Hispanic or Latino"},
                ],
            }
        ]
    return patient


def _encounter(pid: str, eid: str, cls: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": ACT_CODE, "code": cls},
        "subject": _ref(pid),
        "period": {"start": _iso(start), "end": _iso(end)},
    }


def _spread(
    count: int, admit: datetime, duration: timedelta
) -> Iterator[tuple[datetime, datetime]]:
    for i in range(count):
        start = admit - timedelta(days=round((i + 0.5) * 360 / count)) - duration
        yield start, start + duration


def _coding_with_source(
    system: str, code: str | None, source_system: str, source_id: str, labels: Mapping[str, str]
) -> dict[str, Any]:
    coding: list[dict[str, str]] = []
    if code is not None:
        coding.append({"system": system, "code": code})
    source: dict[str, str] = {"system": source_system, "code": source_id}
    if labels.get(source_id):
        source["display"] = labels[source_id]
    coding.append(source)
    return {"coding": coding}


def _index_stay(
    row: Mapping[str, str],
    pid: str,
    discharge: datetime,
    id_labels: Mapping[str, Mapping[str, str]],
) -> list[dict[str, Any]]:
    enc_nbr = row["encounter_id"]
    eid = _uid("encounter", enc_nbr)
    days = int(row["time_in_hospital"])
    admit = discharge - timedelta(days=days)
    index = _encounter(pid, eid, "IMP", admit, discharge)
    index["identifier"] = [{"system": ENCOUNTER_SYSTEM, "value": enc_nbr}]
    adm_type = row["admission_type_id"]
    index["priority"] = _coding_with_source(
        ACT_PRIORITY,
        _PRIORITY.get(adm_type),
        ADMISSION_TYPE_SYSTEM,
        adm_type,
        id_labels.get("admission_type_id", {}),
    )
    source_id = row["admission_source_id"]
    disp_id = row["discharge_disposition_id"]
    index["hospitalization"] = {
        "admitSource": _coding_with_source(
            ADMIT_SOURCE,
            _ADMIT_SOURCE.get(source_id),
            ADMISSION_SOURCE_SYSTEM,
            source_id,
            id_labels.get("admission_source_id", {}),
        ),
        "dischargeDisposition": _coding_with_source(
            NUBC_DISCHARGE,
            _NUBC.get(disp_id),
            DISCHARGE_SYSTEM,
            disp_id,
            id_labels.get("discharge_disposition_id", {}),
        ),
    }
    specialty = row["medical_specialty"]
    if specialty and specialty != "?":
        service: dict[str, Any] = {"text": specialty}
        if specialty in _SPECIALTY:
            service["coding"] = [{"system": MEDICAL_SPECIALTY, "code": _SPECIALTY[specialty]}]
        index["serviceType"] = service
    index["extension"] = [
        {"url": SOURCE_COUNT_URL, "extension": [
            {"url": "kind", "valueCode": kind}, {"url": "count", "valueInteger": int(row[col])}
        ]}
        for kind, col in (
            ("lab-procedures", "num_lab_procedures"),
            ("medications", "num_medications"),
            ("diagnoses", "number_diagnoses"),
        )
    ]  # fmt: skip
    out = [index]
    diagnoses = []
    for rank, col in enumerate(("diag_1", "diag_2", "diag_3"), start=1):
        code = row[col]
        if not code or code == "?":
            continue
        cid = _uid("condition", enc_nbr, col)
        diagnoses.append({"condition": _ref(cid), "rank": rank})
        out.append(
            {
                "resourceType": "Condition",
                "id": cid,
                "category": [{"coding": [
                    {"system": CONDITION_CATEGORY, "code": "encounter-diagnosis"}
                ]}],
                "code": {"coding": [{"system": ICD9CM, "code": normalize_icd9(code)}]},
                "subject": _ref(pid),
                "encounter": _ref(eid),
                "recordedDate": _iso(admit),
            }
        )  # fmt: skip
    if diagnoses:
        index["diagnosis"] = diagnoses
    lab_time = discharge - timedelta(days=1) if days >= 1 else admit
    for col, loinc, unit, bands in (
        ("A1Cresult", "4548-4", "%", _A1C),
        ("max_glu_serum", "2345-7", "mg/dL", _GLUCOSE),
    ):
        band = bands.get(row[col])
        if band is None:
            continue
        comparator, value, flag = band
        out.append(
            {
                "resourceType": "Observation",
                "id": _uid("observation", enc_nbr, col),
                "status": "final",
                "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory"}]}],
                "code": {"coding": [{"system": LOINC, "code": loinc}]},
                "subject": _ref(pid),
                "encounter": _ref(eid),
                "effectiveDateTime": _iso(lab_time),
                "valueQuantity": {
                    "value": value, "comparator": comparator, "unit": unit, "system": UCUM,
                    "code": unit,
                },
                "interpretation": [{"coding": [
                    {"system": OBSERVATION_INTERPRETATION, "code": flag}
                ]}],
            }
        )  # fmt: skip
    for i in range(int(row["num_procedures"])):
        out.append(
            {
                "resourceType": "Procedure",
                "id": _uid("procedure", enc_nbr, i),
                "status": "completed",
                "code": {"text": "Procedure (not specified in source data)"},
                "subject": _ref(pid),
                "encounter": _ref(eid),
                "performedDateTime": _iso(admit + (discharge - admit) / 2),
            }
        )
    rxnorm = rxnorm_by_name()
    for drug in DRUG_COLUMNS:
        change = row.get(drug, "No")
        if change in ("No", "", None):
            continue
        concept: dict[str, Any] = {"text": drug}
        if drug in rxnorm:
            concept["coding"] = [{"system": RXNORM, "code": rxnorm[drug], "display": drug}]
        out.append(
            {
                "resourceType": "MedicationRequest",
                "id": _uid("medication", enc_nbr, drug),
                "status": "completed",
                "intent": "order",
                "medicationCodeableConcept": concept,
                "subject": _ref(pid),
                "encounter": _ref(eid),
                "authoredOn": _iso(admit),
                "extension": [{"url": DOSE_CHANGE_URL, "valueCode": change.lower()}],
            }
        )
    for kind, cls, col, duration in (
        ("inpatient", "IMP", "number_inpatient", timedelta(days=2)),
        ("emergency", "EMER", "number_emergency", timedelta(hours=4)),
        ("outpatient", "AMB", "number_outpatient", timedelta(minutes=30)),
    ):
        for i, (start, end) in enumerate(_spread(int(row[col]), admit, duration)):
            out.append(_encounter(pid, _uid(kind, enc_nbr, i), cls, start, end))
    return out


def patient_bundle(
    rows: Sequence[Mapping[str, str]],
    id_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[dict[str, Any], list[IndexLabel]]:
    """One patient's rows → (transaction Bundle, labels of each index stay)."""
    if not rows:
        raise ValueError("a patient needs at least one row")
    labels_map = id_labels or {}
    ordered = sorted(rows, key=lambda r: int(r["encounter_id"]))
    nbr = ordered[0]["patient_nbr"]
    pid = _uid("patient", nbr)
    jitter = timedelta(days=int(uuid.UUID(pid).int % 300))
    last = _LAST_DISCHARGE - jitter
    discharges = [last - _SPACING * (len(ordered) - 1 - k) for k in range(len(ordered))]
    resources: list[dict[str, Any]] = [_patient(ordered[0], pid, discharges[0])]
    labels: list[IndexLabel] = []
    for row, discharge in zip(ordered, discharges, strict=True):
        resources.extend(_index_stay(row, pid, discharge, labels_map))
        labels.append(
            IndexLabel(
                patient_nbr=nbr,
                encounter_id=row["encounter_id"],
                fhir_encounter_id=_uid("encounter", row["encounter_id"]),
                readmitted_30d=row["readmitted"] == "<30",
                excluded=row["discharge_disposition_id"] in DEATH_OR_HOSPICE_IDS,
            )
        )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_entry(r) for r in resources],
    }
    return bundle, labels


def read_id_labels(path: Path) -> dict[str, dict[str, str]]:
    """IDs_mapping.csv (three stacked tables) → {column: {id: description}}."""
    out: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in csv.reader(path.read_text(encoding="utf-8").splitlines()):
        if not line or not any(line):
            current = None
            continue
        if current is None:
            current = out.setdefault(line[0], {})
            continue
        current[line[0].strip()] = ",".join(line[1:]).strip()
    return out


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def read_patients(csv_path: Path) -> list[list[dict[str, str]]]:
    """Rows grouped by patient_nbr, in order of each patient's first appearance."""
    groups: dict[str, list[dict[str, str]]] = {}
    with _open_text(csv_path) as handle:
        for row in csv.DictReader(handle):
            groups.setdefault(row["patient_nbr"], []).append(row)
    return list(groups.values())


def convert(
    csv_path: Path, id_labels: Mapping[str, Mapping[str, str]] | None = None
) -> Iterator[tuple[dict[str, Any], list[IndexLabel]]]:
    """Stream (bundle, labels) per patient of a Diabetes-130 CSV (plain or gzip)."""
    for rows in read_patients(csv_path):
        yield patient_bundle(rows, id_labels)


def write_labels(labels: Iterable[IndexLabel], handle: TextIO) -> None:
    writer = csv.writer(handle)
    writer.writerow(
        ["patient_nbr", "encounter_id", "fhir_encounter_id", "readmitted_30d", "excluded"]
    )
    for lab in labels:
        writer.writerow(
            [
                lab.patient_nbr,
                lab.encounter_id,
                lab.fhir_encounter_id,
                int(lab.readmitted_30d),
                int(lab.excluded),
            ]
        )


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: CSV → ``bundles.ndjson.gz`` (one Bundle per line) or one JSON file per patient."""
    from tqdm import tqdm

    parser = argparse.ArgumentParser(
        prog="python -m risk_model.datasets.diabetes130",
        description="Convert the Diabetes-130 CSV to FHIR R4 transaction Bundles.",
    )
    parser.add_argument("csv", type=Path, help="diabetic_data*.csv[.gz]")
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument("--ids-mapping", type=Path, default=None, help="IDs_mapping.csv")
    parser.add_argument("--format", choices=("ndjson", "files"), default="ndjson")
    parser.add_argument("--limit", type=int, default=None, help="convert only the first N patients")
    args = parser.parse_args(argv)
    mapping_path = args.ids_mapping or args.csv.parent / "IDs_mapping.csv"
    id_labels = read_id_labels(mapping_path) if mapping_path.exists() else {}
    patients = read_patients(args.csv)[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    all_labels: list[IndexLabel] = []
    with contextlib.ExitStack() as stack:
        ndjson = (
            stack.enter_context(gzip.open(args.out / "bundles.ndjson.gz", "wt", encoding="utf-8"))
            if args.format == "ndjson"
            else None
        )
        for rows in tqdm(patients, unit="patient", desc="diabetes130 → FHIR"):
            bundle, labels = patient_bundle(rows, id_labels)
            all_labels.extend(labels)
            text = json.dumps(bundle, separators=(",", ":"))
            if ndjson is not None:
                ndjson.write(text + "\n")
            else:
                (args.out / f"patient-{rows[0]['patient_nbr']}.json").write_text(
                    text, encoding="utf-8"
                )
    with (args.out / "labels.csv").open("w", encoding="utf-8", newline="") as handle:
        write_labels(all_labels, handle)
    print(
        f"wrote {len(patients)} bundles and {len(all_labels)} labels to {args.out}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
