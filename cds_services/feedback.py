"""The feedback endpoint: what clinicians did with our cards, kept per tenant for evaluation."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from cds_services import metrics
from cds_services.errors import bad_request, not_found
from cds_services.requests import FeedbackRequest, describe
from cds_services.security import VerifiedClient
from cds_services.store import CdsStore, FeedbackEntry, UnknownCard, UnknownSuggestion


def _entries(request: FeedbackRequest) -> list[FeedbackEntry]:
    entries = []
    for item in request.feedback:
        reason = item.overrideReason.reason if item.overrideReason else None
        entries.append(
            FeedbackEntry(
                card_uuid=item.card,
                outcome=item.outcome,
                accepted_suggestions=tuple(s.id for s in item.acceptedSuggestions or ()),
                reason_system=reason.system if reason else None,
                reason_code=reason.code if reason else None,
                reason_display=reason.display if reason else None,
                user_comment=item.overrideReason.userComment if item.overrideReason else None,
                outcome_timestamp=item.outcomeTimestamp,
            )
        )
    return entries


async def record_feedback(store: CdsStore, body: Any, client: VerifiedClient) -> int:
    """Validate and store one feedback report; returns how many entries were stored."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    try:
        request = FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        raise bad_request(describe(exc)) from exc
    entries = _entries(request)
    try:
        await store.record_feedback(client.tenant, client.iss, entries)
    except UnknownCard as exc:
        raise not_found(str(exc)) from exc
    except UnknownSuggestion as exc:
        raise bad_request(str(exc)) from exc
    for entry in entries:
        metrics.FEEDBACK.labels(outcome=entry.outcome).inc()
    return len(entries)
