"""Domain counters the request path bumps, resolved lazily so the store works without metrics."""

from __future__ import annotations

from typing import Any


def _metrics() -> Any:
    try:
        from fhir_gateway.observability import metrics
    except ImportError:
        return None
    return metrics


def count_bundle_entries(bundle_type: str, n: int) -> None:
    m = _metrics()
    if m is not None and hasattr(m, "BUNDLE_ENTRIES"):
        m.BUNDLE_ENTRIES.labels(bundle_type=bundle_type).inc(n)


def count_rollback() -> None:
    m = _metrics()
    if m is not None and hasattr(m, "TRANSACTION_ROLLBACKS"):
        m.TRANSACTION_ROLLBACKS.inc()
