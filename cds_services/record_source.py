"""One patient's record for the hook: the EHR's prefetch first, its FHIR server for the rest.

This is the only way the service sees patient data (never the gateway's tables), so the same
code serves an external EHR and this very server named as ``fhirServer``. Requests go only to a
FHIR base on the calling client's allowlist (no server-side request forgery), never follow
redirects, and follow ``next`` links only while they stay under that base.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from cds_services.prefetch import TEMPLATES, Slot, Template, read_slot
from cds_services.requests import HookRequest

FHIR_JSON = "application/fhir+json"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RecordUnavailable(Exception):  # noqa: N818 (reads as a condition)
    """The data the service needs could be had neither from prefetch nor from the server (412)."""


class ServerNotAllowed(Exception):  # noqa: N818 (reads as a condition)
    """``fhirServer`` is not on the calling client's allowlist."""


def normalize_base(url: str) -> str:
    """Canonical form of a FHIR base URL for allowlist comparison."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    if ":" in host:  # IPv6 literal
        netloc = f"[{host}]" if port is None else f"[{host}]:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def check_server(fhir_server: str, allowlist: Iterable[str], own_fhir_base: str) -> str:
    """The normalised base when allowed; an empty allowlist means only our own FHIR base."""
    allowed = {normalize_base(u) for u in allowlist} or {normalize_base(own_fhir_base)}
    base = normalize_base(fhir_server)
    if urlsplit(fhir_server).username or urlsplit(fhir_server).password or base not in allowed:
        raise ServerNotAllowed("fhirServer is not on this client's allowlist")
    return base


class FhirFetcher:
    """Reads and searches on one FHIR server with the EHR-issued bearer token."""

    def __init__(
        self, http: httpx.AsyncClient, base: str, access_token: str, *, max_pages: int
    ) -> None:
        self._http = http
        self._base = base.rstrip("/")
        self._headers = {"Authorization": f"Bearer {access_token}", "Accept": FHIR_JSON}
        self._max_pages = max_pages

    def _absolute(self, url: str) -> str:
        if url.lower().startswith(("http://", "https://")):
            candidate = normalize_base(url.split("?", 1)[0])
            if not (candidate + "/").startswith(self._base + "/"):
                raise RecordUnavailable("the FHIR server sent a link outside its own base")
            return url
        return f"{self._base}/{url.lstrip('/')}"

    async def _get(self, url: str, what: str) -> httpx.Response:
        try:
            response = await self._http.get(
                self._absolute(url), headers=self._headers, follow_redirects=False
            )
        except httpx.TimeoutException as exc:
            raise RecordUnavailable(f"{what}: the FHIR server did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise RecordUnavailable(
                f"{what}: FHIR server unreachable ({type(exc).__name__})"
            ) from exc
        return response

    async def read(self, url: str, what: str) -> Slot:
        response = await self._get(url, what)
        return _read_result(response.status_code, _json_or_none(response), what)

    async def batch(self, urls: Sequence[str], what: str) -> list[tuple[int, Any]] | None:
        """Several GETs in one batch Bundle: (status, resource) per URL, in order.

        None when the server does not take the batch as asked (no batch support, or an answer
        that is not a matching batch-response), so the caller falls back to one GET per URL.
        """
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
        }
        try:
            response = await self._http.post(
                self._base,
                content=orjson.dumps(bundle),
                headers={**self._headers, "Content-Type": FHIR_JSON},
                follow_redirects=False,
            )
        except httpx.TimeoutException as exc:
            raise RecordUnavailable(f"{what}: the FHIR server did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise RecordUnavailable(
                f"{what}: FHIR server unreachable ({type(exc).__name__})"
            ) from exc
        body = _json_or_none(response) if response.status_code == 200 else None
        if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
            return None
        entries = body.get("entry")
        if body.get("type") != "batch-response" or not isinstance(entries, list):
            return None
        if len(entries) != len(urls):
            return None
        results: list[tuple[int, Any]] = []
        for entry in entries:
            entry = entry if isinstance(entry, dict) else {}
            status = str((entry.get("response") or {}).get("status", "")).split(" ")[0]
            if not status.isdigit():
                return None
            results.append((int(status), entry.get("resource")))
        return results

    async def search(self, url: str, what: str, *, paged: bool, found: Sequence[Any] = ()) -> Slot:
        resources: list[Mapping[str, Any]] = list(found)
        next_url: str | None = url
        pages = 0
        while next_url is not None:
            if pages >= self._max_pages:
                raise RecordUnavailable(f"{what}: more than {self._max_pages} pages")
            response = await self._get(next_url, what)
            if response.status_code != 200:
                raise RecordUnavailable(f"{what}: FHIR server answered HTTP {response.status_code}")
            slot = read_slot(_json(response, what))
            if slot is None:
                raise RecordUnavailable(f"{what}: FHIR server answered with an OperationOutcome")
            resources.extend(slot.resources)
            pages += 1
            next_url = slot.next_url if paged else None
        return Slot(tuple(resources))


def _read_result(status: int, body: Any, what: str) -> Slot:
    if status in (404, 410):
        return Slot(())
    if status != 200:
        raise RecordUnavailable(f"{what}: FHIR server answered HTTP {status}")
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise RecordUnavailable(f"{what}: FHIR server sent no FHIR resource")
    if body.get("resourceType") == "OperationOutcome":
        raise RecordUnavailable(f"{what}: FHIR server answered with an OperationOutcome")
    return Slot((body,))


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise RecordUnavailable(f"{what}: FHIR server sent no JSON") from exc
    if not isinstance(body, dict):
        raise RecordUnavailable(f"{what}: FHIR server sent no FHIR resource")
    return body


@dataclass(frozen=True)
class PatientRecord:
    resources: tuple[Mapping[str, Any], ...]
    fetched: tuple[str, ...]  # prefetch keys that had to be fetched from the server


async def _fill(
    template: Template, slot: Slot | None, patient_id: str, fetcher: FhirFetcher
) -> Slot:
    if slot is None:
        if template.is_read:
            return await fetcher.read(template.render(patient_id), template.key)
        return await fetcher.search(template.render(patient_id), template.key, paged=template.paged)
    assert slot.next_url is not None
    if not template.paged:
        return Slot(slot.resources)
    return await fetcher.search(slot.next_url, template.key, paged=True, found=slot.resources)


async def _fetch_all(
    todo: dict[str, tuple[Template, Slot | None]], patient_id: str, fetcher: FhirFetcher
) -> dict[str, Slot]:
    """Fetch the missing slots: one batch when the server takes it, else concurrent GETs."""
    missing = [key for key, (_, slot) in todo.items() if slot is None]
    done: dict[str, Slot] = {}
    if len(missing) > 1:
        urls = [todo[key][0].render(patient_id) for key in missing]
        answers = await fetcher.batch(urls, "prefetch fallback")
        for key, (status, body) in zip(missing, answers or (), strict=False):
            template = todo[key][0]
            if template.is_read:
                done[key] = _read_result(status, body, key)
                continue
            if status != 200 or not isinstance(body, dict):
                raise RecordUnavailable(f"{key}: FHIR server answered HTTP {status}")
            slot = read_slot(body)
            if slot is None:
                raise RecordUnavailable(f"{key}: FHIR server answered with an OperationOutcome")
            done[key] = slot if template.paged else Slot(slot.resources)
    rest = {
        key: (template, done.get(key, slot))
        for key, (template, slot) in todo.items()
        if key not in done or done[key].next_url is not None
    }
    filled = await asyncio.gather(*(_fill(t, s, patient_id, fetcher) for t, s in rest.values()))
    done.update(zip(rest, filled, strict=True))
    return done


async def load_record(request: HookRequest, fetcher: FhirFetcher | None) -> PatientRecord:
    """Every template's data, prefetched or fetched concurrently; RecordUnavailable otherwise."""
    patient_id = request.context.patientId
    prefetch = request.prefetch or {}
    slots: dict[str, Slot] = {}
    todo: dict[str, tuple[Template, Slot | None]] = {}
    for template in TEMPLATES:
        slot = read_slot(prefetch[template.key]) if template.key in prefetch else None
        if slot is not None and (slot.next_url is None or not template.paged):
            slots[template.key] = Slot(slot.resources)
        else:
            todo[template.key] = (template, slot)
    if todo and fetcher is None:
        missing = ", ".join(sorted(todo))
        raise RecordUnavailable(
            f"prefetch lacks {missing} and the request gives no fhirServer with fhirAuthorization"
        )
    if todo:
        assert fetcher is not None
        slots.update(await _fetch_all(todo, patient_id, fetcher))
    resources = _unique(r for slot in slots.values() for r in slot.resources)
    encounter_id = request.context.encounterId
    if encounter_id and fetcher is not None and not _has(resources, "Encounter", encounter_id):
        extra = await fetcher.read(f"Encounter/{encounter_id}", "context encounter")
        resources = _unique([*resources, *extra.resources])
    return PatientRecord(tuple(resources), tuple(sorted(todo)))


def _has(resources: Sequence[Mapping[str, Any]], kind: str, rid: str) -> bool:
    return any(r.get("resourceType") == kind and r.get("id") == rid for r in resources)


def _unique(resources: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    seen: set[tuple[str, str]] = set()
    out: list[Mapping[str, Any]] = []
    for resource in resources:
        rid = resource.get("id")
        key = (str(resource.get("resourceType")), str(rid))
        if rid is not None and key in seen:
            continue
        seen.add(key)
        out.append(resource)
    return out
