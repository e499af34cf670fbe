"""One exception type for every FHIR-level failure, rendered as an OperationOutcome.

Routes raise ``OperationOutcomeError`` through the small factories below; the HTTP status is
carried with the outcome so a handler never has to guess it. Each issue carries a stable code in
``details.coding`` (system ``ISSUE_CODE_SYSTEM``) so clients and tests can match on it without
parsing prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ISSUE_CODE_SYSTEM = "urn:fhir-gateway:issue"


@dataclass(frozen=True)
class Issue:
    code: str  # FHIR IssueType: invalid, structure, required, value, not-found, ...
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()
    detail_code: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        if self.detail_code:
            out["details"] = {
                "coding": [{"system": ISSUE_CODE_SYSTEM, "code": self.detail_code}],
            }
        out["diagnostics"] = self.diagnostics
        if self.expression:
            out["expression"] = list(self.expression)
        return out


@dataclass
class OperationOutcomeError(Exception):
    status: int
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(i.diagnostics for i in self.issues)

    def outcome(self) -> dict[str, Any]:
        return outcome([i.to_json() for i in self.issues])


def outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": issues}


def information(message: str, detail_code: str = "ok") -> dict[str, Any]:
    return outcome(
        [Issue("informational", message, severity="information", detail_code=detail_code).to_json()]
    )


def _err(
    status: int, code: str, message: str, detail: str, expression: tuple[str, ...] | list[str] = ()
) -> OperationOutcomeError:
    return OperationOutcomeError(status, [Issue(code, message, "error", tuple(expression), detail)])


def invalid(
    message: str,
    expression: tuple[str, ...] | list[str] = (),
    *,
    status: int = 400,
    detail: str = "invalid",
) -> OperationOutcomeError:
    return _err(status, "invalid", message, detail, expression)


def structure(message: str, expression: tuple[str, ...] | list[str] = ()) -> OperationOutcomeError:
    return _err(400, "structure", message, "structure", expression)


def processing(
    message: str, expression: tuple[str, ...] | list[str] = (), *, status: int = 422
) -> OperationOutcomeError:
    return _err(status, "processing", message, "processing", expression)


def not_found(message: str, detail: str = "not-found") -> OperationOutcomeError:
    return _err(404, "not-found", message, detail)


def gone(message: str) -> OperationOutcomeError:
    return _err(410, "deleted", message, "gone")


def conflict(message: str, status: int = 409) -> OperationOutcomeError:
    return _err(status, "conflict", message, "conflict")


def precondition_failed(message: str) -> OperationOutcomeError:
    return _err(412, "conflict", message, "precondition-failed")


def forbidden(message: str) -> OperationOutcomeError:
    return _err(403, "forbidden", message, "forbidden")


def unauthorized(message: str, challenge: str = 'Bearer realm="fhir"') -> OperationOutcomeError:
    e = _err(401, "login", message, "unauthorized")
    e.headers["WWW-Authenticate"] = challenge
    return e


def too_large(message: str) -> OperationOutcomeError:
    return _err(413, "too-costly", message, "too-large")


def unsupported_media(message: str) -> OperationOutcomeError:
    return _err(415, "not-supported", message, "unsupported-media-type")


def not_supported(message: str, status: int = 400) -> OperationOutcomeError:
    return _err(status, "not-supported", message, "not-supported")


def method_not_allowed(message: str) -> OperationOutcomeError:
    return _err(405, "not-supported", message, "method-not-allowed")
