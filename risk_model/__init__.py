"""30-day readmission risk from FHIR resources: features, LACE/HOSPITAL, a verified model.

Pure: FHIR JSON dicts in, values out; no HTTP, no SQL. Imports only ``terminology`` of ours.
"""

from risk_model.errors import ArtifactError, InsufficientData, RiskModelError
from risk_model.predictor import Factor, Prediction, Predictor
from risk_model.scores import ScoreResult

__all__ = [
    "ArtifactError",
    "Factor",
    "InsufficientData",
    "Prediction",
    "Predictor",
    "RiskModelError",
    "ScoreResult",
]
