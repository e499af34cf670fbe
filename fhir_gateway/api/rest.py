"""Instance and type interactions: create, read, vread, update, patch, delete, history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from fhir_gateway import interactions
from fhir_gateway.api.deps import (
    DatabaseDep,
    PrincipalDep,
    SettingsDep,
    check_content_type,
    read_body,
)
from fhir_gateway.api.headers import if_match, prefer_return
from fhir_gateway.api.responses import fhir_json, http_date
from fhir_gateway.auth import audit, enforce
from fhir_gateway.fhir import errors
from fhir_gateway.fhir.models import resource_types
from fhir_gateway.fhir.parsing import parse_json
from fhir_gateway.store.repository import Repository, Version, format_instant

MAX_VERSION = 2**31 - 1  # versions are PostgreSQL integers

router = APIRouter()
# History routes are mounted before the instance routes so "_history" is never read as an id.
history_router = APIRouter()


def known_type(resource_type: str) -> str:
    if resource_type not in resource_types():
        raise errors.not_found(
            f"Resource type '{resource_type}' is not supported", detail="unknown-type"
        )
    return resource_type


def version_headers(v: Version, base: str, with_location: bool) -> dict[str, str]:
    headers = {"ETag": v.etag, "Last-Modified": http_date(v.last_updated)}
    if with_location:
        headers["Location"] = f"{base}/{v.type}/{v.id}/_history/{v.version}"
    return headers


def write_response(request: Request, out: interactions.Outcome, base: str) -> Response:
    v = out.version
    if v is None:
        return fhir_json(out.outcome, 200) if out.outcome else Response(status_code=204)
    headers = version_headers(v, base, with_location=out.status in (200, 201))
    if out.status == 204 or v.deleted:
        return Response(status_code=204, headers=headers)
    pref = prefer_return(request)
    if pref == "minimal":
        return Response(status_code=out.status, headers=headers)
    if pref == "operationoutcome":
        msg = f"{v.type}/{v.id} version {v.version} {'created' if out.status == 201 else 'stored'}"
        return fhir_json(errors.information(msg), out.status, headers)
    return fhir_json(v.content, out.status, headers)


async def _body(request: Request, limit: int) -> Any:
    check_content_type(request)
    return parse_json(await read_body(request, limit))


@router.post("/{resource_type}")
async def create(
    resource_type: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    known_type(resource_type)
    enforce.require(principal, "c", resource_type)
    data = await _body(request, settings.max_body_bytes)
    if isinstance(data, dict):
        enforce.require(principal, "c", resource_type, data)
    async with db.connection() as conn, conn.transaction():
        repo = Repository(
            conn, principal.tenant, conditional_guard=enforce.conditional_guard(principal)
        )
        out = await interactions.create(
            repo, resource_type, data, if_none_exist=request.headers.get("if-none-exist")
        )
        await repo.flush()
        await audit.record_write(conn, request, principal, "create", [out.version])
    return write_response(request, out, settings.fhir_base_url())


@router.get("/{resource_type}/{rid}")
async def read(
    resource_type: str,
    rid: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    known_type(resource_type)
    enforce.require(principal, "r", resource_type)
    async with db.connection() as conn:
        v = await Repository(conn, principal.tenant).read(resource_type, rid)
    enforce.require_content(principal, "r", resource_type, v.content)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and if_none_match.strip() in (v.etag, f'"{v.version}"'):
        return Response(status_code=304, headers={"ETag": v.etag})
    return fhir_json(v.content, 200, version_headers(v, settings.fhir_base_url(), False))


@router.get("/{resource_type}/{rid}/_history/{vid}")
async def vread(
    resource_type: str,
    rid: str,
    vid: str,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    known_type(resource_type)
    if not vid.isascii() or not vid.isdigit() or int(vid) > MAX_VERSION:
        raise errors.not_found(f"Version '{vid[:20]}' is not known")
    enforce.require(principal, "r", resource_type)
    async with db.connection() as conn:
        v = await Repository(conn, principal.tenant).vread(resource_type, rid, int(vid))
    enforce.require_content(principal, "r", resource_type, v.content)
    return fhir_json(v.content, 200, version_headers(v, settings.fhir_base_url(), False))


@router.put("/{resource_type}/{rid}")
async def update(
    resource_type: str,
    rid: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    known_type(resource_type)
    enforce.require(principal, "u", resource_type)
    data = await _body(request, settings.max_body_bytes)
    if isinstance(data, dict):
        enforce.require(principal, "u", resource_type, data)
    async with db.connection() as conn, conn.transaction():
        repo = Repository(
            conn, principal.tenant, conditional_guard=enforce.conditional_guard(principal)
        )
        await enforce.require_current(principal, "u", repo, resource_type, rid)
        out = await interactions.update(repo, resource_type, rid, data, if_match=if_match(request))
        await audit.record_write(conn, request, principal, "update", [out.version])
    return write_response(request, out, settings.fhir_base_url())


@router.put("/{resource_type}")
async def conditional_update(
    resource_type: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    known_type(resource_type)
    query = request.url.query
    if not query:
        raise errors.invalid("A conditional update needs search parameters in the URL")
    enforce.require(principal, "u", resource_type)
    enforce.require(principal, "s", resource_type)
    data = await _body(request, settings.max_body_bytes)
    if isinstance(data, dict):
        enforce.require(principal, "u", resource_type, data)
    if enforce.confined_patient(principal, "u", resource_type) is not None:
        raise errors.forbidden("A patient-context grant cannot update by search criteria")
    async with db.connection() as conn, conn.transaction():
        repo = Repository(
            conn, principal.tenant, conditional_guard=enforce.conditional_guard(principal)
        )
        out = await interactions.conditional_update(
            repo, resource_type, query, data, if_match=if_match(request)
        )
        await audit.record_write(conn, request, principal, "update", [out.version])
    return write_response(request, out, settings.fhir_base_url())


@router.patch("/{resource_type}/{rid}")
async def patch(
    resource_type: str,
    rid: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    known_type(resource_type)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json-patch+json":
        raise errors.unsupported_media("PATCH accepts application/json-patch+json only")
    enforce.require(principal, "u", resource_type)
    ops = parse_json(await read_body(request, settings.max_body_bytes))
    async with db.connection() as conn, conn.transaction():
        repo = Repository(
            conn, principal.tenant, conditional_guard=enforce.conditional_guard(principal)
        )
        current = await repo.read(resource_type, rid)
        enforce.require_content(principal, "u", resource_type, current.content)
        expected = if_match(request)
        if expected is not None and expected != current.version:
            raise errors.precondition_failed(
                f"If-Match names version {expected} but the current version is {current.version}"
            )
        patched = interactions.apply_patch(current.resource(), ops)
        if patched.get("id") != rid or patched.get("resourceType") != resource_type:
            raise errors.processing("JSON Patch may not change the resource's id or type")
        enforce.require(principal, "u", resource_type, patched)
        out = await interactions.update(
            repo, resource_type, rid, patched, if_match=current.version, method="PATCH"
        )
        await audit.record_write(conn, request, principal, "patch", [out.version])
    return write_response(request, out, settings.fhir_base_url())


@router.delete("/{resource_type}/{rid}")
async def delete(
    resource_type: str,
    rid: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    known_type(resource_type)
    enforce.require(principal, "d", resource_type)
    async with db.connection() as conn, conn.transaction():
        repo = Repository(
            conn, principal.tenant, conditional_guard=enforce.conditional_guard(principal)
        )
        await enforce.require_current(principal, "d", repo, resource_type, rid)
        out = await interactions.delete(repo, resource_type, rid, if_match=if_match(request))
        await audit.record_write(conn, request, principal, "delete", [out.version])
    return write_response(request, out, settings.fhir_base_url())


@router.delete("/{resource_type}")
async def conditional_delete(
    resource_type: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    known_type(resource_type)
    if not request.url.query:
        raise errors.invalid("A conditional delete needs search parameters in the URL")
    enforce.require(principal, "d", resource_type)
    enforce.require(principal, "s", resource_type)
    if enforce.confined_patient(principal, "d", resource_type) is not None:
        raise errors.forbidden("A patient-context grant cannot delete by search criteria")
    async with db.connection() as conn, conn.transaction():
        repo = Repository(
            conn, principal.tenant, conditional_guard=enforce.conditional_guard(principal)
        )
        out = await interactions.conditional_delete(repo, resource_type, request.url.query)
        await audit.record_write(conn, request, principal, "delete", [out.version])
    return write_response(request, out, settings.fhir_base_url())


# ------------------------------------------------------------------------ history


def _history_params(request: Request) -> tuple[datetime | None, datetime | None, int, Any]:
    q = request.query_params
    since = _instant(q.get("_since"), "_since")
    at = _instant(q.get("_at"), "_at")
    raw_count = q.get("_count", "50")
    if not (raw_count.isascii() and raw_count.isdigit()) or len(raw_count) > 9:
        raise errors.invalid(f"_count '{raw_count}' is not a non-negative integer", ["_count"])
    count = min(int(raw_count), 1000)
    cursor = q.get("_cursor")
    before = None
    if cursor:
        try:
            ts, rtype, rid, ver = cursor.split("|")
            before = (datetime.fromisoformat(ts), rtype, rid, int(ver))
            if not 0 < before[3] <= MAX_VERSION:
                raise ValueError(ver)
        except ValueError:
            raise errors.invalid("_cursor is malformed", ["_cursor"]) from None
    return since, at, count, before


def _instant(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise errors.invalid(f"{name} '{raw}' is not a valid instant", [name]) from None
    if value.tzinfo is None:
        raise errors.invalid(f"{name} '{raw}' needs a time zone", [name])
    return value


def history_bundle(
    versions: list[Version], base: str, self_url: str, next_url: str | None
) -> bytes:
    parts: list[bytes] = [
        b'{"resourceType":"Bundle","type":"history","link":[{"relation":"self","url":',
        _jstr(self_url),
        b"}",
    ]
    if next_url:
        parts += [b',{"relation":"next","url":', _jstr(next_url), b"}"]
    parts.append(b'],"entry":[')
    for i, v in enumerate(versions):
        if i:
            parts.append(b",")
        url = f"{v.type}/{v.id}"
        parts += [b'{"fullUrl":', _jstr(f"{base}/{url}")]
        if v.content is not None:
            parts += [b',"resource":', v.content.encode()]
        method = "DELETE" if v.deleted else v.method
        status = "204" if v.deleted else ("201" if v.version == 1 else "200")
        request_url = v.type if method == "POST" else url
        parts += [
            b',"request":{"method":"',
            method.encode(),
            b'","url":',
            _jstr(request_url),
            b'},"response":{"status":"',
            status.encode(),
            b'","etag":',
            _jstr(v.etag),
            b',"lastModified":',
            _jstr(format_instant(v.last_updated)),
            b"}}",
        ]
    parts.append(b"]}")
    return b"".join(parts)


def _jstr(value: str) -> bytes:
    import orjson

    return orjson.dumps(value)


async def _history(
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    rtype: str | None,
    rid: str | None,
) -> Response:
    since, at, count, before = _history_params(request)
    enforce.require_history(principal, rtype, rid)
    async with db.connection() as conn:
        repo = Repository(
            conn, principal.tenant, conditional_guard=enforce.conditional_guard(principal)
        )
        if rid is not None and rtype is not None:
            await _require_known(repo, rtype, rid)
            await enforce.require_current(principal, "r", repo, rtype, rid)
        versions = await repo.history(
            rtype, rid, since=since, at=at, count=count + 1, before=before
        )
    versions = [v for v in versions if enforce.visible_type(principal, "r", v.type)]
    if rid is not None and rtype is not None and enforce.needs_resource(principal, "r", rtype):
        # Every version must be within reach, not only the current one: a deleted resource,
        # or one that moved between patients, keeps its older content in history.
        for v in versions:
            if v.content is not None:
                enforce.require_content(principal, "r", rtype, v.content)
    base = settings.fhir_base_url()
    path = request.url.path
    next_url = None
    more = len(versions) > count
    versions = versions[:count]
    if more and versions:
        last = versions[-1]
        cursor = f"{last.last_updated.isoformat()}|{last.type}|{last.id}|{last.version}"
        params = dict(request.query_params)
        params["_cursor"] = cursor
        from urllib.parse import urlencode

        next_url = f"{settings.base_url()}{path}?{urlencode(params)}"
    self_url = f"{settings.base_url()}{path}" + (
        f"?{request.url.query}" if request.url.query else ""
    )
    return fhir_json(history_bundle(versions, base, self_url, next_url))


async def _require_known(repo: Repository, rtype: str, rid: str) -> None:
    if await repo.current(rtype, rid) is None:
        raise errors.not_found(f"{rtype}/{rid} is not known")


@history_router.get("/_history")
async def system_history(
    request: Request, principal: PrincipalDep, db: DatabaseDep, settings: SettingsDep
) -> Response:
    return await _history(request, principal, db, settings, None, None)


@history_router.get("/{resource_type}/_history")
async def type_history(
    resource_type: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    known_type(resource_type)
    return await _history(request, principal, db, settings, resource_type, None)


@history_router.get("/{resource_type}/{rid}/_history")
async def instance_history(
    resource_type: str,
    rid: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    known_type(resource_type)
    return await _history(request, principal, db, settings, resource_type, rid)
