"""Codes, code systems, value sets and Charlson comorbidity maps; imports nothing of ours."""

from terminology.api import Concept, Validation, lookup, validate_code
from terminology.errors import TerminologyError, UnknownCode, UnknownValueSet

__all__ = [
    "Concept",
    "TerminologyError",
    "UnknownCode",
    "UnknownValueSet",
    "Validation",
    "lookup",
    "validate_code",
]
