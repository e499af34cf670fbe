"""Batch and transaction Bundle processing.

A transaction is planned first (ids assigned, fullUrls mapped), then executed in the spec's
order — DELETE, POST, PUT/PATCH, GET — inside one database transaction; any failing entry
rolls everything back and the error names the entry. A batch runs each entry in its own
savepoint so entries succeed or fail independently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from fhir_gateway import interactions
from fhir_gateway.fhir import errors
from fhir_gateway.fhir.models import resource_types
from fhir_gateway.fhir.parsing import check_resource
from fhir_gateway.fhir.references import (
    ID_PATTERN,
    iter_references,
    locate,
    reference_holders,
)
from fhir_gateway.store.repository import Repository, format_instant, new_id, new_ids

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class Entry:
    index: int
    method: str
    url: str
    rtype: str
    rid: str | None
    query: str
    full_url: str | None
    resource: dict[str, Any] | None
    if_none_exist: str | None
    if_match: int | None
    response: dict[str, Any] | None = None
    assigned_id: str | None = None
    existing: bool = False
    where: str = field(default="")


def _entry_error(exc: errors.OperationOutcomeError, entry: Entry) -> errors.OperationOutcomeError:
    issues = [
        errors.Issue(
            i.code,
            f"Bundle.entry[{entry.index}] ({entry.method} {entry.url}): {i.diagnostics}",
            i.severity,
            tuple(
                e if e.startswith("Bundle.") else f"Bundle.entry[{entry.index}].{_rel(e, entry)}"
                for e in i.expression
            )
            or (f"Bundle.entry[{entry.index}]",),
            i.detail_code,
        )
        for i in exc.issues
    ]
    return errors.OperationOutcomeError(exc.status, issues, exc.headers)


def _rel(expression: str, entry: Entry) -> str:
    if entry.resource is not None:
        rtype = entry.resource.get("resourceType", "")
        if expression.startswith(f"{rtype}."):
            return "resource." + expression[len(rtype) + 1 :]
        if expression == rtype:
            return "resource"
    return expression


def parse_entries(bundle: dict[str, Any]) -> list[Entry]:
    raw = bundle.get("entry", [])
    if not isinstance(raw, list):
        raise errors.structure("Bundle.entry must be an array", ["Bundle.entry"])
    out = []
    for i, e in enumerate(raw):
        where = f"Bundle.entry[{i}]"
        if not isinstance(e, dict):
            raise errors.structure(f"{where} must be an object", [where])
        req = e.get("request")
        if not isinstance(req, dict):
            raise errors.invalid(f"{where}.request is required", [f"{where}.request"])
        method = str(req.get("method", "")).upper()
        url = req.get("url")
        if method not in _ORDER or not isinstance(url, str) or not url:
            raise errors.invalid(
                f"{where}.request needs a method (GET, POST, PUT, PATCH, DELETE) and a url",
                [f"{where}.request"],
            )
        path, _, query = url.partition("?")
        parts = [p for p in path.strip("/").split("/") if p]
        rtype = parts[0] if parts else ""
        rid = parts[1] if len(parts) > 1 else None
        if rtype not in resource_types():
            raise errors.invalid(
                f"{where}.request.url names unknown type '{rtype}'", [f"{where}.request.url"]
            )
        resource = e.get("resource")
        if method in ("PUT", "DELETE") and rid is None and not query:
            raise errors.invalid(
                f"{where}.request.url must name Type/id or carry search criteria for {method}",
                [f"{where}.request.url"],
            )
        if method == "PATCH" and rid is None:
            raise errors.invalid(
                f"{where}.request.url must name Type/id for PATCH", [f"{where}.request.url"]
            )
        if rid is not None and not ID_PATTERN.match(rid):
            raise errors.invalid(
                f"{where}.request.url has an invalid id '{rid[:80]}'", [f"{where}.request.url"]
            )
        if method in ("POST", "PUT") and not isinstance(resource, dict):
            raise errors.invalid(f"{where} ({method}) needs a resource", [f"{where}.resource"])
        match = req.get("ifMatch")
        if_match = None
        if isinstance(match, str):
            digits = match.replace("W/", "").strip('"')
            if not (digits.isascii() and digits.isdigit()) or len(digits) > 9:
                raise errors.invalid(
                    f"{where}.request.ifMatch is not a version ETag", [f"{where}.request.ifMatch"]
                )
            if_match = int(digits)
        full_url = e.get("fullUrl")
        out.append(
            Entry(
                i,
                method,
                url,
                rtype,
                rid,
                query,
                full_url if isinstance(full_url, str) else None,
                resource if isinstance(resource, dict) else None,
                req.get("ifNoneExist") if isinstance(req.get("ifNoneExist"), str) else None,
                if_match,
                where=where,
            )
        )
    return out


def _response(
    status: int, version: Any = None, outcome: dict[str, Any] | None = None, resource: bool = False
) -> dict[str, Any]:
    text = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}.get(status, str(status))
    resp: dict[str, Any] = {"status": text}
    if version is not None:
        resp["location"] = f"{version.type}/{version.id}/_history/{version.version}"
        resp["etag"] = version.etag
        resp["lastModified"] = format_instant(version.last_updated)
    if outcome is not None:
        resp["outcome"] = outcome
    out: dict[str, Any] = {"response": resp}
    if resource and version is not None and version.content is not None:
        out["resource"] = orjson.Fragment(version.content)
        out["fullUrl"] = f"{version.type}/{version.id}"
    return out


class TransactionProcessor:
    def __init__(
        self,
        conn: asyncpg.Connection,
        tenant: str,
        base_url: str,
        guard: Any = None,
        *,
        strict_references: bool = True,
    ) -> None:
        self.repo = Repository(conn, tenant)
        self.base_url = base_url
        # Bulk imports keep conditional references to resources they do not carry (e.g.
        # practitioners held elsewhere) as written instead of failing the whole file.
        self.strict_references = strict_references
        self.ref_map: dict[str, str] = {}
        # Authorization hook (``check(repo, entry)``, ``search_limits(type)``), run per entry
        # after references are resolved, so a forbidden entry fails like any other entry.
        self.guard = guard
        if guard is not None:
            self.repo.conditional_guard = guard.conditional_guard

    async def run(self, entries: list[Entry]) -> list[dict[str, Any]]:
        for e in entries:
            if e.resource is not None:
                try:
                    check_resource(e.resource, where=f"{e.where}.resource")
                    if e.method == "PUT" and e.resource.get("resourceType") != e.rtype:
                        raise errors.invalid("The resource's type does not match request.url")
                except errors.OperationOutcomeError as exc:
                    raise _entry_error(exc, e) from None
        self._plan_ids(entries)
        for e in sorted(entries, key=lambda x: (_ORDER[x.method], x.index)):
            try:
                await self._resolve_conditionals(e)
            except errors.OperationOutcomeError as exc:
                raise _entry_error(exc, e) from None
        for e in entries:
            if e.resource is not None:
                try:
                    await self._rewrite(e)
                except errors.OperationOutcomeError as exc:
                    raise _entry_error(exc, e) from None
        creates = sum(1 for e in entries if e.method == "POST")
        if creates > 1:  # a single create draws its rid in the statement that writes it
            await self.repo.reserve_rids(creates)
        for e in sorted(entries, key=lambda x: (_ORDER[x.method], x.index)):
            try:
                if self.guard is not None:
                    await self.guard.check(self.repo, e)
                await self._execute(e)
            except errors.OperationOutcomeError as exc:
                raise _entry_error(exc, e) from None
        await self.repo.flush()
        return [e.response or {} for e in entries]

    def _plan_ids(self, entries: list[Entry]) -> None:
        fresh = iter(new_ids(sum(1 for e in entries if e.method == "POST")))
        for e in entries:
            if e.method == "POST":
                e.assigned_id = next(fresh)
            elif e.method in ("PUT", "PATCH") and e.rid:
                if not ID_PATTERN.match(e.rid):
                    raise _entry_error(errors.invalid(f"'{e.rid}' is not a valid id"), e)
                e.assigned_id = e.rid
            if e.full_url and e.assigned_id:
                self.ref_map[e.full_url] = f"{e.rtype}/{e.assigned_id}"

    async def _resolve_conditionals(self, e: Entry) -> None:
        if e.method == "POST" and e.if_none_exist:
            await interactions.lock_query(self.repo, e.rtype, e.if_none_exist)
            await self.repo.flush()
            matches = await interactions.find_ids(self.repo, e.rtype, e.if_none_exist)
            if len(matches) > 1:
                raise errors.precondition_failed(
                    f"ifNoneExist matched {len(matches)} resources; expected at most one"
                )
            if matches:
                e.assigned_id = matches[0]
                e.existing = True
                if e.full_url:
                    self.ref_map[e.full_url] = f"{e.rtype}/{matches[0]}"
        elif e.method in ("PUT", "DELETE") and e.rid is None and e.query:
            await interactions.lock_query(self.repo, e.rtype, e.query)
            matches = await interactions.find_ids(self.repo, e.rtype, e.query)
            if len(matches) > 1:
                raise errors.precondition_failed(
                    f"The conditional {e.method} matched {len(matches)} resources"
                )
            if matches:
                e.assigned_id = matches[0]
            elif e.method == "PUT":
                body_id = (e.resource or {}).get("id")
                if body_id:
                    taken = await self.repo.current(e.rtype, str(body_id))
                    if taken is not None and not taken.deleted:
                        raise errors.conflict(
                            f"No {e.rtype} matched the criteria, and the body's id "
                            f"'{body_id}' is taken"
                        )
                e.assigned_id = str(body_id) if body_id else new_id()
            if e.full_url and e.assigned_id:
                self.ref_map[e.full_url] = f"{e.rtype}/{e.assigned_id}"

    async def _rewrite(self, e: Entry) -> None:
        """Point references at the ids planned for this Bundle and resolve conditional ones.

        One walk over the resource finds every reference; locations are worked out only for
        the error messages, because most transactions have none.
        """
        resource = e.resource
        assert resource is not None
        ref_map = self.ref_map
        pending: list[dict[str, Any]] = []
        unresolved: list[dict[str, Any]] = []
        for holder in reference_holders(resource):
            ref: str = holder["reference"]
            mapped = ref_map.get(ref)
            if mapped is not None:
                holder["reference"] = mapped
            elif ref.startswith(("urn:uuid:", "urn:oid:")):
                unresolved.append(holder)
            elif "?" in ref and not ref.startswith("#") and "/" not in ref.split("?")[0]:
                pending.append(holder)
        if unresolved:
            # Report the first one in document order, as a client reading the Bundle meets it.
            ids = {id(h) for h in unresolved}
            for holder, location in iter_references(resource, resource["resourceType"]):
                if id(holder) in ids:
                    raise errors.invalid(
                        f"Reference '{holder['reference']}' at {location} names no entry of "
                        "this Bundle",
                        [f"{e.where}.resource.{location.partition('.')[2]}"],
                        detail="unresolved-reference",
                    )
        for holder in pending:
            ref = holder["reference"]
            location = locate(resource, holder)
            rtype, _, query = ref.partition("?")
            matches = await interactions.find_ids(self.repo, rtype, query)
            if not matches and not self.strict_references:
                continue
            if len(matches) != 1:
                raise errors.invalid(
                    f"Conditional reference '{ref}' at {location} matched {len(matches)} "
                    "resources; exactly one is required",
                    [f"{e.where}.resource.{location.partition('.')[2]}"],
                    status=412 if matches else 400,
                    detail="conditional-reference",
                )
            holder["reference"] = f"{rtype}/{matches[0]}"

    async def _execute(self, e: Entry) -> None:
        repo = self.repo
        if e.method == "DELETE":
            if e.rid is None and not e.assigned_id:
                e.response = _response(204, outcome=errors.information("No resource matched"))
                return
            rid = e.rid or e.assigned_id
            assert rid is not None
            out = await interactions.delete(repo, e.rtype, rid, if_match=e.if_match)
            e.response = _response(204, out.version)
        elif e.method == "POST":
            assert e.resource is not None
            if e.existing:
                assert e.assigned_id is not None
                v = await repo.read(e.rtype, e.assigned_id)
                e.response = _response(200, v)
                return
            if e.resource.get("resourceType") != e.rtype:
                raise errors.invalid("The resource's type does not match request.url")
            v = await repo.create(e.resource, e.assigned_id)
            e.response = _response(201, v)
        elif e.method == "PUT":
            assert e.resource is not None and e.assigned_id is not None
            e.resource["id"] = e.assigned_id
            out = await interactions.update(
                repo, e.rtype, e.assigned_id, e.resource, if_match=e.if_match
            )
            e.response = _response(out.status, out.version)
        elif e.method == "PATCH":
            await repo.flush()
            rid = e.rid
            if rid is None:
                raise errors.invalid("PATCH needs Type/id in request.url")
            current = await repo.read(e.rtype, rid)
            if e.if_match is not None and e.if_match != current.version:
                raise errors.precondition_failed("ifMatch does not match the current version")
            ops = _patch_ops(e.resource)
            patched = interactions.apply_patch(current.resource(), ops)
            out = await interactions.update(repo, e.rtype, rid, patched, method="PATCH")
            e.response = _response(out.status, out.version)
        else:
            await repo.flush()
            e.response = await self._get(e)

    async def _get(self, e: Entry) -> dict[str, Any]:
        if e.rid is not None:
            parts = e.url.split("?")[0].strip("/").split("/")
            if len(parts) == 2:
                v = await self.repo.read(e.rtype, e.rid)
            elif (
                len(parts) == 4
                and parts[2] == "_history"
                and parts[3].isascii()
                and parts[3].isdigit()
                and int(parts[3]) <= 2**31 - 1
            ):
                v = await self.repo.vread(e.rtype, e.rid, int(parts[3]))
            else:
                raise errors.not_supported(
                    "A Bundle GET entry may read (Type/id), vread (Type/id/_history/n) or search"
                )
            return _response(200, v, resource=True)
        try:
            from fhir_gateway.search.service import search_bundle
        except ImportError:
            raise errors.not_supported("Search is not available", status=501) from None
        from urllib.parse import parse_qsl

        params = parse_qsl(e.query, keep_blank_values=True)
        limits = self.guard.search_limits(e.rtype, params) if self.guard is not None else None
        found = await search_bundle(
            self.repo.conn,
            self.repo.tenant,
            e.rtype,
            params + (limits.params if limits else []),
            base_url=self.base_url,
            strict=False,
            compartment=limits.compartment if limits else None,
            include_filter=limits.include_filter if limits else None,
        )
        return {"resource": found, "response": {"status": "200 OK"}}


def _patch_ops(resource: dict[str, Any] | None) -> Any:
    """PATCH entries carry the JSON Patch as a Binary with base64 data, as FHIR prescribes."""
    import base64

    if resource is None or resource.get("resourceType") != "Binary" or "data" not in resource:
        raise errors.invalid("A PATCH entry needs a Binary resource holding the JSON Patch")
    try:
        return orjson.loads(base64.b64decode(resource["data"]))
    except (ValueError, orjson.JSONDecodeError):
        raise errors.invalid("The PATCH Binary's data is not a base64 JSON Patch") from None
