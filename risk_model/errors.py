"""Domain errors of the risk model; only HTTP layers turn them into outcomes or status codes."""


class RiskModelError(Exception):
    """Base of every risk-model error."""


class InsufficientData(RiskModelError):  # noqa: N818 - name agreed in the team contract
    """The record lacks what a prediction needs; the message says exactly what is missing."""


class ArtifactError(RiskModelError):
    """A tampered, mismatched or unreadable model artifact, refused before unpickling."""
