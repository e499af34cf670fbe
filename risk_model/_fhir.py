"""Small, fast readers for FHIR JSON dicts.

The feature hot path reads hundreds of resources per request, so these helpers work on plain dicts
and never build fhir.resources models (about 550 µs per resource) or regular expressions.
"""

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

Resource = Mapping[str, Any]


def parse_datetime(value: object) -> datetime | None:
    """FHIR date/dateTime/instant → aware datetime (UTC assumed when no offset); None if absent.

    Partial dates (``2020`` or ``2020-05``) take the first instant they could mean.
    """
    if not isinstance(value, str) or not value:
        return None
    n = len(value)
    try:
        if n == 4:
            return datetime(int(value), 1, 1, tzinfo=UTC)
        if n == 7:
            return datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def reference_id(reference: object) -> str | None:
    """The id a Reference points at, for ``Type/id``, absolute URLs and ``urn:uuid:`` alike."""
    if not isinstance(reference, dict | Mapping):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str):
        return None
    if ref.startswith("urn:uuid:"):
        return ref[9:]
    parts = ref.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        return parts[-3]
    return parts[-1]


def codings(concept: object) -> Iterator[tuple[str | None, str | None]]:
    """(system, code) pairs of a CodeableConcept (or a list of them)."""
    if isinstance(concept, list):
        for item in concept:
            yield from codings(item)
        return
    if not isinstance(concept, dict | Mapping):
        return
    for coding in concept.get("coding") or ():
        if isinstance(coding, dict | Mapping):
            yield coding.get("system"), coding.get("code")


def concept_text(concept: object) -> str | None:
    """A human label of a CodeableConcept: its text, else the first coding's display."""
    if not isinstance(concept, Mapping):
        return None
    text = concept.get("text")
    if isinstance(text, str):
        return text
    for coding in concept.get("coding") or ():
        if isinstance(coding, Mapping) and isinstance(coding.get("display"), str):
            return str(coding["display"])
    return None


def resources_from_bundle(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Entry resources of a Bundle; a missing id is taken from the ``urn:uuid:`` fullUrl."""
    out: list[dict[str, Any]] = []
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        if "id" not in resource:
            full = entry.get("fullUrl")
            if isinstance(full, str) and full.startswith("urn:uuid:"):
                resource = {**resource, "id": full[9:]}
        out.append(resource)
    return out


def by_type(resources: Iterable[Resource]) -> dict[str, list[Resource]]:
    """Group resources by resourceType in one pass."""
    grouped: dict[str, list[Resource]] = {}
    for r in resources:
        rtype = r.get("resourceType")
        bucket = grouped.get(rtype)  # type: ignore[arg-type]
        if bucket is None:
            if type(rtype) is not str:
                continue
            bucket = grouped[rtype] = []
        bucket.append(r)
    return grouped
