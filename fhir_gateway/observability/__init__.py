"""Metrics, structured logs and request correlation: what platform teams scrape and read.

Kept apart from the FHIR and CDS code so that instrumentation never decides behaviour, and so the
app factory can wire it in one place.
"""
