"""FHIR write and read interactions shared by the REST routes and Bundle processing.

Each function works on a tenant-scoped ``Repository`` inside a transaction the caller owns and
returns an ``Outcome`` describing the HTTP-level result, so a single PUT and the PUT entry of a
transaction Bundle behave identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_gateway.fhir import errors
from fhir_gateway.fhir.parsing import check_resource
from fhir_gateway.fhir.references import ID_PATTERN
from fhir_gateway.store.repository import Repository, Version


@dataclass(frozen=True)
class Outcome:
    status: int
    version: Version | None = None
    outcome: dict[str, Any] | None = None

    @property
    def location(self) -> str | None:
        v = self.version
        return f"{v.type}/{v.id}/_history/{v.version}" if v else None


async def find_ids(repo: Repository, rtype: str, query: str) -> list[str]:
    try:
        from fhir_gateway.search.service import find_ids as search_find_ids
    except ImportError:  # search not installed: conditional interactions unavailable
        raise errors.not_supported("Conditional interactions need search", status=501) from None
    found = list(await search_find_ids(repo.conn, repo.tenant, rtype, query))
    if repo.conditional_guard is not None:
        await repo.conditional_guard(repo, rtype, found)
    return found


async def lock_query(repo: Repository, rtype: str, query: str) -> None:
    """Serialise writers that depend on the same conditional query (race-safe ifNoneExist)."""
    key = f"{repo.tenant}/{rtype}?{normalise_query(query)}"
    await repo.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", key)


def normalise_query(query: str) -> str:
    return "&".join(sorted(p for p in query.lstrip("?").split("&") if p))


def check_id(rid: str) -> None:
    if not ID_PATTERN.match(rid):
        raise errors.invalid(f"'{rid}' is not a valid FHIR id", ["id"])


async def create(
    repo: Repository,
    rtype: str,
    resource: dict[str, Any],
    *,
    if_none_exist: str | None = None,
    assigned_id: str | None = None,
) -> Outcome:
    check_resource(resource, expected_type=rtype)
    if if_none_exist:
        await lock_query(repo, rtype, if_none_exist)
        matches = await find_ids(repo, rtype, if_none_exist)
        if len(matches) > 1:
            raise errors.precondition_failed(
                f"If-None-Exist matched {len(matches)} {rtype} resources; expected at most one"
            )
        if matches:
            return Outcome(200, await repo.read(rtype, matches[0]))
    version = await repo.create(resource, assigned_id)
    if if_none_exist:
        await repo.flush()  # visible to the next waiter on the same lock
    return Outcome(201, version)


async def update(
    repo: Repository,
    rtype: str,
    rid: str,
    resource: dict[str, Any],
    *,
    if_match: int | None = None,
    method: str = "PUT",
) -> Outcome:
    check_id(rid)
    check_resource(resource, expected_type=rtype)
    body_id = resource.get("id")
    if body_id is None:
        raise errors.invalid("An update must carry the resource's id in the body", ["id"])
    if body_id != rid:
        raise errors.invalid(
            f"The body's id '{body_id}' does not match the URL's id '{rid}'", ["id"]
        )
    version, created = await repo.update(rtype, rid, resource, if_match=if_match, method=method)
    return Outcome(201 if created else 200, version)


async def conditional_update(
    repo: Repository,
    rtype: str,
    query: str,
    resource: dict[str, Any],
    *,
    if_match: int | None = None,
) -> Outcome:
    check_resource(resource, expected_type=rtype)
    await lock_query(repo, rtype, query)
    matches = await find_ids(repo, rtype, query)
    if len(matches) > 1:
        raise errors.precondition_failed(
            f"The conditional update matched {len(matches)} resources; expected at most one"
        )
    body_id = resource.get("id")
    if matches:
        if body_id is not None and body_id != matches[0]:
            raise errors.invalid(
                f"The body's id '{body_id}' differs from the matching resource's id", ["id"]
            )
        resource["id"] = matches[0]
        return await update(repo, rtype, matches[0], resource, if_match=if_match)
    if body_id is not None:
        # No match but an id: create it under that id, unless that id is already taken by a
        # resource the criteria did not match (R5 spells this out: 409, never an overwrite).
        existing = await repo.current(rtype, str(body_id))
        if existing is not None and not existing.deleted:
            raise errors.conflict(
                f"No {rtype} matched the criteria, and the body's id '{body_id}' is taken"
            )
        return await update(repo, rtype, str(body_id), resource, if_match=if_match)
    version = await repo.create(resource)
    await repo.flush()
    return Outcome(201, version)


async def delete(repo: Repository, rtype: str, rid: str, *, if_match: int | None = None) -> Outcome:
    check_id(rid)
    version = await repo.delete(rtype, rid, if_match=if_match)
    if version is None:
        return Outcome(
            204, None, errors.information(f"{rtype}/{rid} had no current version to delete")
        )
    return Outcome(204, version)


async def conditional_delete(repo: Repository, rtype: str, query: str) -> Outcome:
    await lock_query(repo, rtype, query)
    matches = await find_ids(repo, rtype, query)
    if len(matches) > 1:
        raise errors.precondition_failed(
            f"The conditional delete matched {len(matches)} resources; expected at most one"
        )
    if not matches:
        return Outcome(204, None, errors.information("No resource matched; nothing deleted"))
    return await delete(repo, rtype, matches[0])


def apply_patch(resource: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an RFC 6902 JSON Patch, turning its failures into OperationOutcomes."""
    import jsonpatch

    if not isinstance(patch, list):
        raise errors.invalid("A JSON Patch document must be a JSON array of operations")
    try:
        patched = jsonpatch.apply_patch(resource, patch)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise errors.precondition_failed(f"JSON Patch test failed: {exc}") from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise errors.processing(f"JSON Patch could not be applied: {exc}") from None
    except (TypeError, KeyError, IndexError, ValueError) as exc:
        raise errors.invalid(f"Malformed JSON Patch: {exc}") from None
    if not isinstance(patched, dict):
        raise errors.processing("JSON Patch result is not a resource")
    return patched
