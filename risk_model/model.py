"""A logistic model evaluated with plain arithmetic, so one row scores in microseconds.

Training (scikit-learn) ends by folding standardisation and the calibration map into one weight
vector; scoring a row is then a dot product and a sigmoid. Batches use numpy, single rows use a
Python loop over ~30 floats, which beats numpy's per-call overhead at that size.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
TRANSFORMS = ("identity", "log1p")


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@dataclass(frozen=True)
class LinearModel:
    """logit = intercept + sum_i coef_i * (t_i(x_i) - mean_i) / scale_i, calibration folded in.

    ``coef * (t - mean) / scale`` is also each feature's contribution relative to the average
    training patient, which is what the explanations report.
    """

    feature_names: tuple[str, ...]
    transforms: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def __post_init__(self) -> None:
        n = len(self.feature_names)
        if not all(len(v) == n for v in (self.transforms, self.mean, self.scale, self.coef)):
            raise ValueError("linear model vectors differ in length")
        if any(t not in TRANSFORMS for t in self.transforms):
            raise ValueError(f"unknown transform in {self.transforms}")

    def transform(self, x: FloatArray) -> FloatArray:
        """Apply the per-feature transforms to an (n, d) matrix."""
        out = np.array(x, dtype=np.float64, copy=True)
        for i, t in enumerate(self.transforms):
            if t == "log1p":
                out[:, i] = np.log1p(np.clip(out[:, i], 0.0, None))
        return np.asarray(out, dtype=np.float64)

    def standardized(self, x: FloatArray) -> FloatArray:
        centred = self.transform(x) - np.asarray(self.mean)
        return np.asarray(centred / np.asarray(self.scale), dtype=np.float64)

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Probabilities for an (n, d) matrix of raw feature values."""
        logits = self.standardized(x) @ np.asarray(self.coef) + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)

    def predict_one(self, row: Sequence[float]) -> tuple[float, list[float]]:
        """(probability, per-feature contributions to the logit) for one row of raw values."""
        contributions: list[float] = []
        logit = self.intercept
        for value, t, m, s, w in zip(
            row, self.transforms, self.mean, self.scale, self.coef, strict=True
        ):
            v = math.log1p(value if value > 0 else 0.0) if t == "log1p" else value
            c = w * (v - m) / s
            contributions.append(c)
            logit += c
        return _sigmoid(logit), contributions

    def to_payload(self) -> dict[str, Any]:
        return {
            "kind": "linear",
            "feature_names": list(self.feature_names),
            "transforms": list(self.transforms),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> "LinearModel":
        return cls(
            feature_names=tuple(payload["feature_names"]),
            transforms=tuple(payload["transforms"]),
            mean=tuple(float(v) for v in payload["mean"]),
            scale=tuple(float(v) for v in payload["scale"]),
            coef=tuple(float(v) for v in payload["coef"]),
            intercept=float(payload["intercept"]),
        )
