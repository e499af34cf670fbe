"""The one object every caller uses to score a discharge: load once, predict many times."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from risk_model import artifact as artifacts
from risk_model import features as feats
from risk_model.errors import ArtifactError
from risk_model.explain import top_factors
from risk_model.model import LinearModel
from risk_model.scores import ScoreResult, hospital, lace

DEFAULT_THRESHOLDS: tuple[float, float] = (0.10, 0.20)


@dataclass(frozen=True)
class Factor:
    """One contributing factor: feature name, the fact in words, and its pull on the logit."""

    feature: str
    description: str
    contribution: float


@dataclass(frozen=True)
class Prediction:
    """A scored index stay, with the baselines and the evidence it rests on."""

    probability: float
    band: str
    model_name: str
    model_version: str
    patient_id: str
    encounter_id: str
    admitted: datetime | None
    discharged: datetime | None
    lace: ScoreResult
    hospital: ScoreResult
    factors: tuple[Factor, ...]
    basis: tuple[str, ...]
    features: Mapping[str, float]


def _check_thresholds(thresholds: tuple[float, float]) -> tuple[float, float]:
    low, high = float(thresholds[0]), float(thresholds[1])
    if not 0.0 < low < high < 1.0:
        raise ValueError(f"thresholds must satisfy 0 < low < high < 1, got {thresholds}")
    return low, high


class Predictor:
    """A verified model plus the risk-band thresholds shared by the operation and CDS cards."""

    def __init__(
        self,
        model: LinearModel,
        *,
        name: str,
        version: str,
        sha256: str,
        thresholds: tuple[float, float] = DEFAULT_THRESHOLDS,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if model.feature_names != feats.FEATURE_NAMES:
            raise ArtifactError("model features differ from the features this code computes")
        self._model = model
        self.name = name
        self.version = version
        self.sha256 = sha256
        self.thresholds = _check_thresholds(thresholds)
        self.metadata: Mapping[str, Any] = metadata or {}

    @classmethod
    def load(
        cls, path: Path | None = None, *, thresholds: tuple[float, float] | None = None
    ) -> "Predictor":
        """Load and verify an artifact (the packaged one when ``path`` is None)."""
        art = artifacts.load(path)
        if art.payload.get("kind") != "linear":
            raise ArtifactError(f"{art.path.name}: model kind {art.payload.get('kind')!r} unknown")
        stored = art.metadata.get("thresholds")
        chosen = thresholds or (tuple(stored) if stored else DEFAULT_THRESHOLDS)
        return cls(
            LinearModel.from_payload(art.payload),
            name=art.name,
            version=art.version,
            sha256=art.sha256,
            thresholds=(float(chosen[0]), float(chosen[1])),
            metadata=art.metadata,
        )

    @property
    def model(self) -> LinearModel:
        """The verified scorer itself (benchmarks and batch re-scoring use it directly)."""
        return self._model

    def band(self, probability: float) -> str:
        low, high = self.thresholds
        if probability < low:
            return "low"
        return "moderate" if probability < high else "high"

    def probability(self, values: Mapping[str, float]) -> float:
        """Model probability for an already extracted feature mapping."""
        return self._model.predict_one([values[n] for n in feats.FEATURE_NAMES])[0]

    def predict(
        self,
        resources: Iterable[Mapping[str, Any]] | Mapping[str, list[Mapping[str, Any]]],
        *,
        patient_id: str | None = None,
        encounter_id: str | None = None,
        as_of: datetime | None = None,
    ) -> Prediction:
        """Score one patient's index stay; raises InsufficientData naming what is missing.

        ``resources`` may also come grouped by type (as a store fetching per type has them).
        """
        fv = feats.extract(resources, patient_id=patient_id, encounter_id=encounter_id, as_of=as_of)
        probability, contributions = self._model.predict_one(fv.as_list())
        named = dict(zip(feats.FEATURE_NAMES, contributions, strict=True))
        factors = tuple(Factor(n, d, c) for n, d, c in top_factors(fv.values, named))
        return Prediction(
            probability=probability,
            band=self.band(probability),
            model_name=self.name,
            model_version=self.version,
            patient_id=fv.patient_id,
            encounter_id=fv.encounter_id,
            admitted=fv.admitted,
            discharged=fv.discharged,
            lace=lace(fv.values),
            hospital=hospital(fv.values),
            factors=factors,
            basis=fv.basis,
            features=fv.values,
        )
