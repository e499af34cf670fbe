"""The JSON bodies CDS clients send, validated strictly so mistakes become clear 400s.

Strictness matters here: a patient id like ``Patient/123`` where ``123`` is meant would
otherwise silently fetch nothing and produce a misleading "no data" answer.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

FHIR_ID = r"^[A-Za-z0-9\-\.]{1,64}$"
USER_REFERENCE = r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-\.]{1,64}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class FhirAuthorization(_Model):
    access_token: str = Field(min_length=1)
    token_type: str
    expires_in: int = Field(ge=0)
    scope: str
    subject: str
    patient: str | None = None

    @field_validator("token_type")
    @classmethod
    def _bearer(cls, value: str) -> str:
        if value.lower() != "bearer":
            raise ValueError("token_type must be Bearer")
        return value

    def __repr__(self) -> str:  # never let the token reach a log line
        return "FhirAuthorization(<redacted>)"


class PatientViewContext(_Model):
    userId: str = Field(pattern=USER_REFERENCE)  # noqa: N815 (CDS Hooks field name)
    patientId: str = Field(pattern=FHIR_ID)  # noqa: N815
    encounterId: str | None = Field(default=None, pattern=FHIR_ID)  # noqa: N815


class HookRequest(_Model):
    hook: str
    hookInstance: uuid.UUID  # noqa: N815
    fhirServer: str | None = None  # noqa: N815
    fhirAuthorization: FhirAuthorization | None = None  # noqa: N815
    context: PatientViewContext
    prefetch: dict[str, dict[str, Any] | None] | None = None
    extension: dict[str, Any] | None = None

    @field_validator("fhirServer")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("http://", "https://")):
            raise ValueError("fhirServer must be an http(s) URL")
        return value

    @field_validator("prefetch")
    @classmethod
    def _resources(
        cls, value: dict[str, dict[str, Any] | None] | None
    ) -> dict[str, dict[str, Any] | None] | None:
        for key, item in (value or {}).items():
            if item is not None and not isinstance(item.get("resourceType"), str):
                raise ValueError(f"prefetch {key!r} is not a FHIR resource (no resourceType)")
        return value

    @model_validator(mode="after")
    def _server_for_token(self) -> HookRequest:
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirAuthorization given without fhirServer")
        return self


class Coding(_Model):
    system: str | None = None
    code: str = Field(min_length=1)
    display: str | None = None


class OverrideReason(_Model):
    reason: Coding | None = None
    userComment: str | None = None  # noqa: N815


class AcceptedSuggestion(_Model):
    id: str = Field(min_length=1)


class Feedback(_Model):
    card: uuid.UUID
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None  # noqa: N815
    overrideReason: OverrideReason | None = None  # noqa: N815
    outcomeTimestamp: AwareDatetime  # noqa: N815

    @model_validator(mode="after")
    def _accepted_needs_suggestions(self) -> Feedback:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("an accepted outcome needs acceptedSuggestions")
        if self.outcome == "accepted" and self.overrideReason is not None:
            raise ValueError("overrideReason belongs to an overridden outcome")
        return self


class FeedbackRequest(_Model):
    feedback: list[Feedback] = Field(min_length=1)


def describe(error: ValidationError) -> str:
    """One readable sentence per problem, with the JSON path, for a 400 body."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in item["loc"]) or "body"
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
