"""Errors the terminology layer raises; HTTP layers turn them into OperationOutcomes."""


class TerminologyError(Exception):
    """Base of every terminology error, so callers can catch the family at once."""


class UnknownCode(TerminologyError):  # noqa: N818 - name agreed in the team contract
    """A code (or code system) we hold no facts about.

    Raised instead of guessing: a silently dropped or mis-mapped code would change a patient's
    Charlson index without anyone noticing.
    """

    def __init__(self, system: str, code: str, reason: str = "") -> None:
        self.system = system
        self.code = code
        self.reason = reason or "code not known"
        super().__init__(f"{system}|{code}: {self.reason}")


class UnknownValueSet(TerminologyError):  # noqa: N818 - mirrors UnknownCode
    """A value set URL that is not one of ours."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"unknown value set {url}")
