"""Domain metrics and the HTTP instrumentation, under the names the dashboards and alerts rely on.

The names are a contract (see the team's shared contracts): Prometheus rules, the Grafana dashboard
and the CDS package all refer to them, so they are defined once here. The two CDS metrics
(``fhir_gateway_cds_cards_total`` and ``fhir_gateway_cds_feedback_total``) are registered by
``cds_services.metrics``, which must not import this package; they are deliberately absent here.

Several uvicorn workers share one ``/metrics``: when ``PROMETHEUS_MULTIPROC_DIR`` is set (it must be
set before ``prometheus_client`` is first imported, i.e. in the environment of the server process),
every worker writes its samples to files there and the endpoint aggregates them. Gauges therefore
declare how they aggregate across workers.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from time import perf_counter

from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Endpoints kept out of the HTTP metrics: scraping and probing would otherwise dominate request
# counts, and a 503 from /ready while the database is down must not also page as an error rate.
EXCLUDED_HANDLERS = ("^/metrics$", "^/health$", "^/ready$")

# Fine enough around the budgets the alerts watch (operation p95 50 ms, CDS p95 100 ms); the
# instrumentator's default (0.1, 0.5, 1) cannot tell 10 ms from 90 ms.
HTTP_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _ensure_multiprocess_dir() -> None:
    # Unlabelled metrics open their sample file as soon as they are defined below, so a missing
    # directory would break the first import (e.g. `fhir-gateway migrate` in a fresh container).
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        Path(configured).mkdir(parents=True, exist_ok=True)


_ensure_multiprocess_dir()

PREDICTIONS = Counter(
    "fhir_gateway_predictions",
    "Readmission-risk predictions made, by risk band and model version.",
    ["band", "model_version"],
)
PREDICTION_LATENCY = Histogram(
    "fhir_gateway_prediction_latency_seconds",
    "Time to build features and score one patient (excludes HTTP and database reads).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BUNDLE_ENTRIES = Counter(
    "fhir_gateway_bundle_entries",
    "Bundle entries processed, by Bundle.type (transaction, batch).",
    ["bundle_type"],
)
TRANSACTION_ROLLBACKS = Counter(
    "fhir_gateway_transaction_rollbacks",
    "Transaction Bundles rolled back as a whole.",
)
DB_POOL_IN_USE = Gauge(
    "fhir_gateway_db_pool_in_use",
    "Database connections checked out of the pool, summed over live workers.",
    multiprocess_mode="livesum",
)
MODEL_INFO = Gauge(
    "fhir_gateway_model_info",
    "1 for the model artifact loaded by this process (labels identify it).",
    ["version", "sha256"],
    multiprocess_mode="livemax",
)
DEPENDENCY_UP = Gauge(
    "fhir_gateway_dependency_up",
    "Last readiness result per dependency (e.g. database, model): 1 ready, 0 not.",
    ["dependency"],
    multiprocess_mode="livemostrecent",
)

# Every name this module exports, for checks that dashboards and rules only use real metrics.
EXPORTED_METRIC_NAMES: tuple[str, ...] = (
    "fhir_gateway_predictions_total",
    "fhir_gateway_prediction_latency_seconds",
    "fhir_gateway_bundle_entries_total",
    "fhir_gateway_transaction_rollbacks_total",
    "fhir_gateway_db_pool_in_use",
    "fhir_gateway_model_info",
    "fhir_gateway_dependency_up",
)


def record_prediction(band: str, model_version: str, seconds: float) -> None:
    PREDICTIONS.labels(band=band, model_version=model_version).inc()
    PREDICTION_LATENCY.observe(seconds)


@contextmanager
def time_prediction() -> Iterator[None]:
    """Time a scoring block into the latency histogram (the band is only known afterwards)."""
    start = perf_counter()
    try:
        yield
    finally:
        PREDICTION_LATENCY.observe(perf_counter() - start)


def count_prediction(band: str, model_version: str) -> None:
    PREDICTIONS.labels(band=band, model_version=model_version).inc()


def count_bundle_entries(bundle_type: str, entries: int) -> None:
    BUNDLE_ENTRIES.labels(bundle_type=bundle_type).inc(entries)


def count_transaction_rollback() -> None:
    TRANSACTION_ROLLBACKS.inc()


def set_db_pool_in_use(connections: int) -> None:
    DB_POOL_IN_USE.set(connections)


_loaded_model: tuple[str, str] | None = None


def set_model_info(version: str, sha256: str) -> None:
    """Mark the loaded artifact; a reload retires the previous labels instead of adding to them.

    The previous series is set to 0 before it is removed: in multiprocess mode its last value
    stays in this worker's sample file, and 0 (not 1) is what must remain there.
    """
    global _loaded_model
    if _loaded_model is not None and _loaded_model != (version, sha256):
        MODEL_INFO.labels(*_loaded_model).set(0)
        MODEL_INFO.remove(*_loaded_model)
    MODEL_INFO.labels(version=version, sha256=sha256).set(1)
    _loaded_model = (version, sha256)


def set_dependency_up(dependency: str, up: bool) -> None:
    """Called by the readiness check so alerts see a database or model failure by name."""
    DEPENDENCY_UP.labels(dependency=dependency).set(1 if up else 0)


def prepare_multiprocess_dir() -> Path | None:
    """Empty the multiprocess directory before workers start.

    Files left by a previous run would be summed into the new one's counters. Call this once in
    the parent process, before uvicorn forks workers; never from a worker.
    """
    configured = os.environ.get(MULTIPROC_ENV)
    if not configured:
        return None
    directory = Path(configured)
    directory.mkdir(parents=True, exist_ok=True)
    for child in directory.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    return directory


@cache
def _http_instrumentation() -> Callable[[http_metrics.Info], None]:
    """The HTTP metrics, created once per process and shared by every app instrumented in it.

    Left to itself the instrumentator registers its metrics when an app's middleware stack is
    built, and a second app in the same process (tests, the CLI building an app twice) finds the
    names taken and silently records nothing.
    """
    instrumentation = http_metrics.default(latency_lowr_buckets=HTTP_LATENCY_BUCKETS)
    if instrumentation is None:  # pragma: no cover - only if someone else registered the names
        raise RuntimeError("HTTP metric names are already registered by another component")
    return instrumentation


def instrument(app: FastAPI) -> None:
    """Add HTTP metrics labelled by route template and serve ``/metrics``.

    Labels use the route template (``/fhir/Patient/{id}``), never the raw path: ids in URLs would
    explode the series count and leak identifiers. Requests that match no route are grouped as
    ``none``. Status codes stay exact so the error-rate rule can select ``5..``.
    """
    Instrumentator(
        should_group_status_codes=False,
        should_ignore_untemplated=False,
        should_group_untemplated=True,
        excluded_handlers=list(EXCLUDED_HANDLERS),
    ).add(_http_instrumentation()).instrument(app).expose(
        app, endpoint="/metrics", include_in_schema=False
    )
