"""Converters from public data sets to FHIR, so the model trains on what it will be fed."""
