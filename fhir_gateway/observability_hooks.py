"""Domain counters the request path bumps, kept behind small functions so callers stay terse."""

from __future__ import annotations

from fhir_gateway.observability import metrics


def count_bundle_entries(bundle_type: str, n: int) -> None:
    metrics.count_bundle_entries(bundle_type, n)


def count_rollback() -> None:
    metrics.count_transaction_rollback()


def observe_prediction(band: str, model_version: str, seconds: float) -> None:
    metrics.record_prediction(band, model_version, seconds)
