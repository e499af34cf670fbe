"""Per-prediction latency of the readmission model, against baselines measured in the same run.

Prints, per patient record: feature extraction + model (the whole in-process path), the model
step alone (our arithmetic logistic regression) and, as baselines, scikit-learn's
LogisticRegression.predict_proba and HistGradientBoosting predict_proba on one row.

Records: the Synthea patients with an inpatient stay from ``../shared/data/synthea-r4`` (or
``$FHIR_GATEWAY_SHARED_DATA``); without that folder, the synthetic demo cohort.

    PYTHONPATH=. python bench/model.py
"""

import gzip
import json
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from risk_model._fhir import by_type, resources_from_bundle
from risk_model.cohort import demo_bundles
from risk_model.errors import InsufficientData
from risk_model.features import FEATURE_NAMES, extract
from risk_model.model import LinearModel
from risk_model.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FHIR_GATEWAY_SHARED_DATA", REPO / ".." / "shared" / "data"))


def _per_call_us(fn: Callable[[], object], repeat: int = 7, number: int = 200) -> float:
    """Best of ``repeat`` runs of the mean time of ``number`` calls, in microseconds.

    The best run is the one least disturbed by other processes (as timeit advises); the
    baselines are measured the same way, so the comparison stays fair on a busy machine.
    """
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number * 1e6)
    return min(runs)


def _records() -> tuple[str, list[list[dict[str, Any]]]]:
    folder = SHARED / "synthea-r4"
    if folder.is_dir():
        records = []
        for path in sorted(folder.glob("*.json.gz")):
            resources = resources_from_bundle(json.loads(gzip.decompress(path.read_bytes())))
            try:
                extract(resources)
            except InsufficientData:
                continue
            records.append(resources)
        return "Synthea patients with an inpatient stay", records
    return "synthetic demo cohort", [resources_from_bundle(b) for b in demo_bundles(12)]


def main() -> None:
    predictor = Predictor.load()
    source, records = _records()
    sizes = [len(r) for r in records]
    print(f"model {predictor.name} {predictor.version}; {len(records)} records ({source})")
    print(f"resources per record: median {int(np.median(sizes))}, max {max(sizes)}")

    whole = [_per_call_us(partial(predictor.predict, r), number=50) for r in records]
    grouped = [by_type(r) for r in records]
    feats = [_per_call_us(partial(extract, g), number=50) for g in grouped]
    biggest = records[int(np.argmax(sizes))]
    print(
        f"features + predict (whole path): median {statistics.median(whole):8.1f} µs, "
        f"max {max(whole):8.1f} µs (largest record: {len(biggest)} resources)"
    )
    print(f"features only (pre-grouped):      median {statistics.median(feats):8.1f} µs")

    rng = np.random.default_rng(0)
    x = rng.poisson(2.0, size=(5000, len(FEATURE_NAMES))).astype(np.float64)
    y = (rng.random(5000) < 0.12).astype(np.int64)
    row = extract(biggest).as_list()
    row_2d = np.asarray([row])
    model: LinearModel = predictor.model
    sk_lr = LogisticRegression(max_iter=1000).fit(x, y)
    sk_gbm = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x, y)
    ours = _per_call_us(lambda: model.predict_one(row), number=5000)
    lr_us = _per_call_us(lambda: sk_lr.predict_proba(row_2d), number=500)
    with threadpool_limits(limits=1):  # threads only add overhead for one row
        gbm_us = _per_call_us(lambda: sk_gbm.predict_proba(row_2d), number=100)
    print("model step, one row:")
    print(f"  ours (arithmetic logistic regression): {ours:8.2f} µs")
    print(f"  baseline sklearn LogisticRegression:   {lr_us:8.2f} µs  ({lr_us / ours:5.0f}x ours)")
    print(
        f"  baseline sklearn HistGradientBoosting: {gbm_us:8.2f} µs  ({gbm_us / ours:5.0f}x ours)"
    )


if __name__ == "__main__":
    main()
