"""Codes, code systems, value sets and Charlson comorbidity maps; imports nothing of ours."""

from terminology.api import CodeSystemInfo, Concept, Validation, code_system, lookup, validate_code
from terminology.errors import TerminologyError, UnknownCode, UnknownValueSet

__all__ = [
    "CodeSystemInfo",
    "Concept",
    "TerminologyError",
    "UnknownCode",
    "UnknownValueSet",
    "Validation",
    "code_system",
    "lookup",
    "validate_code",
]
