"""Prometheus counters owned by the CDS service (names agreed with the gateway's metrics)."""

from __future__ import annotations

from prometheus_client import Counter

CARDS = Counter(
    "fhir_gateway_cds_cards_total", "CDS Hooks cards returned, by indicator", ["indicator"]
)
FEEDBACK = Counter(
    "fhir_gateway_cds_feedback_total", "CDS Hooks card feedback received, by outcome", ["outcome"]
)
