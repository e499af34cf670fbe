"""Discrimination and calibration metrics, computed the same way for the model and the baselines."""

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from risk_model.model import FloatArray

IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class Metrics:
    """Test-set figures of one scorer; CI is a percentile bootstrap over rows."""

    n: int
    events: int
    auroc: float
    auroc_ci_low: float
    auroc_ci_high: float
    auprc: float
    brier: float
    calibration_slope: float
    calibration_intercept: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bootstrap_auroc_ci(
    y: IntArray, score: FloatArray, *, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile bootstrap interval of the AUROC."""
    rng = np.random.default_rng(seed)
    n = len(y)
    values: list[float] = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        yb = y[idx]
        if yb.min() == yb.max():
            continue
        values.append(float(roc_auc_score(yb, score[idx])))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def calibration_slope_intercept(y: IntArray, probability: FloatArray) -> tuple[float, float]:
    """Logistic recalibration of y on logit(p): slope 1 and intercept 0 mean well calibrated."""
    p = np.clip(probability, 1e-6, 1 - 1e-6)
    logit = np.log(p / (1 - p)).reshape(-1, 1)
    fit = LogisticRegression(C=1e9, max_iter=1000).fit(logit, y)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def evaluate(y: IntArray, probability: FloatArray, *, n_boot: int = 1000, seed: int = 0) -> Metrics:
    low, high = bootstrap_auroc_ci(y, probability, n_boot=n_boot, seed=seed)
    slope, intercept = calibration_slope_intercept(y, probability)
    return Metrics(
        n=len(y),
        events=int(y.sum()),
        auroc=float(roc_auc_score(y, probability)),
        auroc_ci_low=low,
        auroc_ci_high=high,
        auprc=float(average_precision_score(y, probability)),
        brier=float(brier_score_loss(y, probability)),
        calibration_slope=slope,
        calibration_intercept=intercept,
    )
