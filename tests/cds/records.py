"""Demo patients as an EHR would hold them, and the prefetch an EHR would send for them."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from cds_services.prefetch import TEMPLATES


def resources_of(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A transaction Bundle's resources with ids, ``urn:uuid`` references made relative."""
    ids: dict[str, str] = {}
    resources = []
    for entry in bundle["entry"]:
        resource = copy.deepcopy(entry["resource"])
        full_url = entry.get("fullUrl", "")
        rid = (
            resource.get("id")
            or (full_url.removeprefix("urn:uuid:") if full_url.startswith("urn:uuid:") else None)
            or str(uuid.uuid4())
        )
        resource["id"] = rid
        if full_url:
            ids[full_url] = f"{resource['resourceType']}/{rid}"
        resources.append(resource)

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (ids.get(v, v) if k == "reference" and isinstance(v, str) else rewrite(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    return [rewrite(r) for r in resources]


def patient_id(resources: Iterable[Mapping[str, Any]]) -> str:
    return next(str(r["id"]) for r in resources if r["resourceType"] == "Patient")


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"http://ehr.example.org/fhir/{r['resourceType']}/{r['id']}", "resource": r}
            for r in resources
        ],
    }


def _when(resource: Mapping[str, Any]) -> str:
    period = resource.get("period") or {}
    return str(
        resource.get("effectiveDateTime")
        or (resource.get("effectivePeriod") or {}).get("start")
        or period.get("start")
        or resource.get("issued")
        or ""
    )


def _codes(resource: Mapping[str, Any]) -> set[str]:
    return {c.get("code") for c in (resource.get("code") or {}).get("coding", [])}


def full_prefetch(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """What a conforming EHR sends for every template (null where it found nothing)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    out: dict[str, Any] = {}
    for template in TEMPLATES:
        kind = template.query.split("?", 1)[0].split("/", 1)[0]
        found = list(by_type.get(kind, []))
        if template.is_read:
            out[template.key] = found[0] if found else None
            continue
        if "class=" in template.query:
            wanted = template.query.split("class=")[1].split("&")[0].split(",")
            found = [
                r
                for r in found
                if f"{r.get('class', {}).get('system')}|{r.get('class', {}).get('code')}" in wanted
            ]
        if kind == "Observation":
            wanted = {
                c.split("|")[1] for c in template.query.split("code=")[1].split("&")[0].split(",")
            }
            found = sorted((r for r in found if wanted & _codes(r)), key=_when, reverse=True)[:20]
        if kind == "Encounter":
            count = int(template.query.split("_count=")[1].split("&")[0])
            found = sorted(found, key=_when, reverse=True)[:count]
        out[template.key] = _searchset(found) if found else None
    return out
