"""Training tables built from FHIR: bundles (files or NDJSON) or Diabetes-130 converted on the fly.

Every row goes through :func:`risk_model.features.extract`, the function live scoring uses, so the
model is trained on exactly what it will later be fed.
"""

import csv
import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from risk_model import features, labels, scores
from risk_model._fhir import by_type, reference_id, resources_from_bundle
from risk_model.datasets import diabetes130
from risk_model.errors import InsufficientData
from risk_model.model import FloatArray


@dataclass(frozen=True)
class Table:
    """Feature matrix, labels, patient keys (for the split) and baseline totals, row-aligned."""

    x: FloatArray
    y: np.ndarray[Any, np.dtype[np.int64]]
    patients: np.ndarray[Any, np.dtype[np.str_]]
    lace: FloatArray
    hospital: FloatArray
    skipped: int

    def fingerprint(self) -> str:
        """sha256 over the rows, labels and patient keys: identical data, identical fingerprint."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.x).tobytes())
        digest.update(np.ascontiguousarray(self.y).tobytes())
        digest.update("\n".join(self.patients.tolist()).encode())
        return digest.hexdigest()


class _Builder:
    def __init__(self) -> None:
        self.rows: list[list[float]] = []
        self.y: list[int] = []
        self.patients: list[str] = []
        self.lace: list[float] = []
        self.hospital: list[float] = []
        self.skipped = 0

    def add(
        self, grouped: Mapping[str, list[Any]], encounter_id: str, label: bool, key: str
    ) -> None:
        try:
            fv = features.extract(grouped, encounter_id=encounter_id)
        except InsufficientData:
            self.skipped += 1
            return
        self.rows.append(fv.as_list())
        self.y.append(int(label))
        self.patients.append(key)
        self.lace.append(float(scores.lace(fv.values).total))
        self.hospital.append(float(scores.hospital(fv.values).total))

    def table(self) -> Table:
        return Table(
            x=np.asarray(self.rows, dtype=np.float64).reshape(-1, len(features.FEATURE_NAMES)),
            y=np.asarray(self.y, dtype=np.int64),
            patients=np.asarray(self.patients, dtype=np.str_),
            lace=np.asarray(self.lace, dtype=np.float64),
            hospital=np.asarray(self.hospital, dtype=np.float64),
            skipped=self.skipped,
        )


def _progress(items: Iterable[Any], total: int | None, desc: str, show: bool) -> Iterable[Any]:
    if not show:
        return items
    from tqdm import tqdm

    wrapped: Iterable[Any] = tqdm(items, total=total, unit="patient", desc=desc)
    return wrapped


def from_diabetes130(csv_path: Path, *, limit: int | None = None, progress: bool = False) -> Table:
    """Diabetes-130 CSV → FHIR bundles in memory → features; death/hospice stays left out."""
    patients = diabetes130.read_patients(csv_path)[:limit]
    builder = _Builder()
    for rows in _progress(patients, len(patients), "features", progress):
        bundle, stay_labels = diabetes130.patient_bundle(rows)
        grouped = by_type(resources_from_bundle(bundle))
        for lab in stay_labels:
            if not lab.excluded:
                builder.add(grouped, lab.fhir_encounter_id, lab.readmitted_30d, lab.patient_nbr)
    return builder.table()


def iter_json(path: Path) -> Iterator[dict[str, Any]]:
    """JSON objects from a ``*.json[.gz]`` file, an NDJSON[.gz] file, or a directory of them."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        name = file.name
        opener: Any = gzip.open if name.endswith(".gz") else open
        if ".ndjson" in name:
            with opener(file, "rt", encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)
        elif ".json" in name:
            with opener(file, "rt", encoding="utf-8") as handle:
                yield json.load(handle)


def iter_patient_records(path: Path) -> Iterator[list[dict[str, Any]]]:
    """One resource list per patient, from Bundles (one per patient, as Synthea and our
    converter write them) or from Bulk Data NDJSON of single resources (what a FHIR store's
    ``$export`` produces), which are regrouped by the patient they refer to."""
    loose: dict[str, list[dict[str, Any]]] = {}
    for item in iter_json(path):
        if item.get("resourceType") == "Bundle":
            yield resources_from_bundle(item)
            continue
        owner = (
            str(item.get("id"))
            if item.get("resourceType") == "Patient"
            else reference_id(item.get("subject") or item.get("patient"))
        )
        if owner is not None:
            loose.setdefault(owner, []).append(item)
    yield from loose.values()


def read_label_file(path: Path) -> dict[str, tuple[bool, bool]]:
    """labels.csv (as the converter writes it) → FHIR encounter id → (readmitted, excluded)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            row["fhir_encounter_id"]: (row["readmitted_30d"] == "1", row["excluded"] == "1")
            for row in csv.DictReader(handle)
        }


def from_bundles(path: Path, *, label_file: Path | None = None, progress: bool = False) -> Table:
    """FHIR records → features; labels from ``label_file`` or, without one, derived from the
    Encounters (see :mod:`risk_model.labels`)."""
    known = read_label_file(label_file) if label_file else None
    builder = _Builder()
    for resources in _progress(iter_patient_records(path), None, "features", progress):
        grouped = by_type(resources)
        patient = (grouped.get("Patient") or [{}])[0]
        key = str(patient.get("id"))
        if known is not None:
            for enc in grouped.get("Encounter") or []:
                found = known.get(str(enc.get("id")))
                if found is not None and not found[1]:
                    builder.add(grouped, str(enc.get("id")), found[0], key)
        else:
            for stay in labels.readmission_labels(resources):
                if not stay.excluded:
                    builder.add(grouped, stay.encounter_id, stay.readmitted_30d, key)
    return builder.table()
