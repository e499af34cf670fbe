"""Scope enforcement: the one place that decides whether a caller may do an interaction.

Routes call :func:`require` (or one of the thin helpers built on it) before touching data and,
for patient-confined callers, again with the resource they are about to return or change.
Letters follow SMART v2: ``c`` create, ``r`` read/vread/history, ``u`` update/patch, ``d``
delete, ``s`` search. A caller whose only grant is a ``patient/`` scope is confined to the
``patient`` of its token: resources of compartment types must belong to that patient's
compartment; types outside the Patient compartment (Medication, Practitioner…) are not patient
data and need only the scope. Audit records can never be changed through the API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_gateway.auth.principal import Principal
from fhir_gateway.auth.scopes import Scope, granting, parse_scopes
from fhir_gateway.fhir import errors

ADMIN_SCOPE = "system/erasure"
AUDIT_TYPE = "AuditEvent"
RISK_INPUT_TYPES = (
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "MedicationRequest",
    "Procedure",
)
# What each operation reads or writes, by code; anything else defaults to read (or update, when
# the operation affects state) on its own type.
OPERATION_NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "readmission-risk": tuple(("r", t) for t in RISK_INPUT_TYPES),
    "readmission-risk-population": (("c", "RiskAssessment"), ("u", "RiskAssessment")),
    "everything": (("r", "*"),),
    "validate": (),
}
PATIENT_LEVEL_OPERATIONS = frozenset({"readmission-risk", "everything"})


def _scopes(principal: Principal) -> tuple[Scope, ...]:
    return parse_scopes(principal.scopes)


def _compartment_params(resource_type: str) -> tuple[str, ...]:
    from fhir_gateway.search.definitions import patient_compartment

    return patient_compartment(resource_type)


def is_compartment_type(resource_type: str) -> bool:
    return resource_type == "Patient" or bool(_compartment_params(resource_type))


def in_patient_compartment(resource_type: str, resource: Mapping[str, Any], patient: str) -> bool:
    if resource_type == "Patient":
        return resource.get("id") == patient
    params = _compartment_params(resource_type)
    if not params:
        return True
    from fhir_gateway.search.index import extract

    rows = extract(resource_type, resource).reference
    return any(r[0] in params and r[1] == "Patient" and r[2] == patient for r in rows)


def _matches_params(scope: Scope, resource_type: str, resource: Mapping[str, Any]) -> bool:
    """A ``?param=value`` restriction holds when the resource has that search value."""
    if not scope.params:
        return True
    from fhir_gateway.search.index import extract

    rows = extract(resource_type, resource)
    for name, wanted in scope.params:
        system, bar, code = wanted.rpartition("|")
        found = any(
            t[0] == name and t[2] == code and (not bar or t[1] == system) for t in rows.token
        )
        found = found or any(
            s[0] == name and wanted.lower() in (s[1], s[2].lower()) for s in rows.string
        )
        found = found or any(r[0] == name and f"{r[1]}/{r[2]}" == wanted for r in rows.reference)
        if not found:
            return False
    return True


def _scope_allows_resource(
    principal: Principal, scope: Scope, resource_type: str, resource: Mapping[str, Any] | None
) -> bool:
    if scope.context == "patient" and is_compartment_type(resource_type):
        if principal.patient is None:
            return False
        if resource is not None and not in_patient_compartment(
            resource_type, resource, principal.patient
        ):
            return False
    return resource is None or _matches_params(scope, resource_type, resource)


def require(
    principal: Principal,
    interaction_letter: str,
    resource_type: str,
    resource: Mapping[str, Any] | None = None,
) -> None:
    """Raise 403 unless ``principal`` may do ``interaction_letter`` on ``resource_type`` (and, when
    given, on this very resource). ``resource_type`` ``"*"`` asks for every type at once."""
    if resource_type == AUDIT_TYPE and interaction_letter in "cud":
        raise errors.forbidden("Audit records cannot be created, changed or deleted")
    grants = granting(_scopes(principal), interaction_letter, resource_type)
    if not grants:
        raise errors.forbidden(
            f"The granted scopes do not allow '{interaction_letter}' on {resource_type}"
        )
    if any(_scope_allows_resource(principal, s, resource_type, resource) for s in grants):
        return
    if resource is None:
        raise errors.forbidden("A patient-context grant needs the token's patient")
    raise errors.forbidden(
        f"{resource_type}/{resource.get('id', '')} is outside what the granted scopes allow"
    )


def needs_resource(principal: Principal, letter: str, resource_type: str) -> bool:
    """Whether the decision depends on the resource itself (so callers parse it only then)."""
    for s in granting(_scopes(principal), letter, resource_type):
        unconfined = s.context != "patient" or not is_compartment_type(resource_type)
        if unconfined and not s.params:
            return False
    return True


def require_content(
    principal: Principal, letter: str, resource_type: str, content: str | None
) -> None:
    """:func:`require` on stored JSON text, parsed only when the decision needs it."""
    if content is None or not needs_resource(principal, letter, resource_type):
        require(principal, letter, resource_type)
        return
    require(principal, letter, resource_type, orjson.loads(content))


async def require_current(
    principal: Principal, letter: str, repo: Any, resource_type: str, rid: str
) -> None:
    """For update, patch and delete: the resource as it is now must be within reach too."""
    require(principal, letter, resource_type)
    if needs_resource(principal, letter, resource_type):
        await repo.flush()  # creates earlier in the same transaction must be visible
        current = await repo.current(resource_type, rid)
        if current is not None and not current.deleted:
            require_content(principal, letter, resource_type, current.content)


def conditional_guard(principal: Principal) -> Callable[[Any, str, list[str]], Any]:
    """Conditional criteria are a search: the caller needs search on the type, and read on every
    resource they match, or the answer (its id, version, even its body) would leak it."""

    async def guard(repo: Any, resource_type: str, ids: list[str]) -> None:
        require(principal, "s", resource_type)
        for rid in ids:
            current = await repo.current(resource_type, rid)
            if current is None or current.deleted:
                continue
            try:
                require_content(principal, "r", resource_type, current.content)
            except errors.OperationOutcomeError:
                raise errors.forbidden(
                    "The conditional criteria match a resource outside the granted scopes"
                ) from None

    return guard


def confined_patient(principal: Principal, letter: str, resource_type: str) -> str | None:
    """The patient whose compartment a search or history must stay inside, if any."""
    grants = granting(_scopes(principal), letter, resource_type)
    if any(s.context != "patient" for s in grants):
        return None
    if resource_type != "*" and not is_compartment_type(resource_type):
        return None
    if principal.patient is None:
        raise errors.forbidden("A patient-context grant needs the token's patient")
    return principal.patient


@dataclass(frozen=True)
class SearchLimits:
    """What a search must add so its results stay within the caller's grants."""

    compartment: tuple[str, str] | None = None
    params: list[tuple[str, str]] = field(default_factory=list)
    include_filter: Callable[[str, str], bool] | None = None


def _linked_types(params: list[tuple[str, str]]) -> set[str]:
    """Types a search reaches through chains (``subject:Patient.name``), ``_has`` and ``_type``:
    each needs its own search grant, or a chain would reveal what a direct search may not."""
    found: set[str] = set()
    for name, value in params:
        if name == "_type":
            found.update(t.strip() for t in value.split(",") if t.strip())
        elif name.startswith("_has:"):
            parts = name.split(":")
            if len(parts) > 1:
                found.add(parts[1])
        elif "." in name:
            for link in name.split(".")[:-1]:
                _, _, target = link.partition(":")
                if target[:1].isupper():
                    found.add(target)
    return found


def search_limits(
    principal: Principal,
    resource_type: str | None,
    compartment: tuple[str, str] | None = None,
    params: list[tuple[str, str]] | None = None,
) -> SearchLimits:
    """Check a search and say how to confine it: a patient-confined caller gets its own
    compartment (a different one is refused); a ``?param=value`` grant becomes a filter; included
    resources are filtered one by one against read permission."""
    rtype = resource_type or "*"
    require(principal, "s", rtype)
    for linked in _linked_types(params or []):
        require(principal, "s", linked)
    grants = granting(_scopes(principal), "s", rtype)
    extra: list[tuple[str, str]] = []
    if all(g.params for g in grants):
        names = {n for g in grants for n, _ in g.params}
        if len(grants) == 1:
            extra = list(grants[0].params)
        elif len(names) == 1 and all(len(g.params) == 1 for g in grants):
            extra = [(names.pop(), ",".join(g.params[0][1] for g in grants))]
        else:
            raise errors.forbidden("The granted scopes restrict this search in incompatible ways")
    patient = confined_patient(principal, "s", rtype)
    if patient is not None:
        if resource_type is None:
            raise errors.forbidden("A patient-context grant cannot search across all types")
        if compartment is not None and compartment != ("Patient", patient):
            raise errors.forbidden("The search names another patient's compartment")
        compartment = ("Patient", patient)

    def include_ok(rtype: str, content: str) -> bool:
        try:
            require_content(principal, "r", rtype, content)
        except errors.OperationOutcomeError:
            return False
        return True

    return SearchLimits(compartment, extra, include_ok)


def require_joined(
    principal: Principal, resource_type: str | None, params: list[tuple[str, str]]
) -> None:
    """Chains and ``_has`` read other types' data: the caller must be allowed to search those
    types too, or the match/no-match answer would reveal them."""
    from fhir_gateway.search.definitions import search_parameters

    for name, _value in params:
        if name.startswith("_has:"):
            parts = name.split(":")
            for i, part in enumerate(parts):
                if part == "_has" and i + 1 < len(parts):
                    require(principal, "s", parts[i + 1])
            continue
        if "." not in name or resource_type is None:
            continue
        current = resource_type
        for link in name.split(".")[:-1]:
            code, _, explicit = link.partition(":")
            if explicit:
                targets: tuple[str, ...] = (explicit,)
            else:
                definition = search_parameters(current).get(code)
                targets = definition.targets if definition is not None else ()
            for target in targets:
                require(principal, "s", target)
            if len(targets) != 1:
                break
            current = targets[0]


def visible_type(principal: Principal, letter: str, resource_type: str) -> bool:
    """For system-level results: drop whole types (audit records) the caller may not see."""
    return bool(granting(_scopes(principal), letter, resource_type))


def require_history(principal: Principal, resource_type: str | None, rid: str | None) -> None:
    require(principal, "r", resource_type or "*")
    if rid is None and confined_patient(principal, "r", resource_type or "*") is not None:
        raise errors.forbidden("A patient-context grant allows only instance history")


def require_operation(
    principal: Principal,
    code: str,
    resource_type: str | None,
    rid: str | None,
    affects_state: bool,
) -> None:
    needs = OPERATION_NEEDS.get(code)
    if needs is None:
        needs = (("u" if affects_state else "r", resource_type or "*"),)
    for letter, rtype in needs:
        require(principal, letter, rtype)
        patient = confined_patient(principal, letter, rtype)
        if patient is None:
            continue
        if code not in PATIENT_LEVEL_OPERATIONS or resource_type != "Patient" or rid != patient:
            raise errors.forbidden(f"${code} is outside the token's patient context")


def require_admin(principal: Principal) -> None:
    if ADMIN_SCOPE not in principal.scopes:
        raise errors.forbidden(f"This operation needs the '{ADMIN_SCOPE}' scope")


def entry_letter(method: str, has_id: bool) -> str:
    return {"POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}.get(
        method, "r" if has_id else "s"
    )


class BundleGuard:
    """Checks each batch/transaction entry just before it runs (references already resolved).

    It touches the database only when the decision depends on a stored resource (patient-
    confined or parameter-restricted grants), so bulk ingest with a system grant keeps its
    batched writes."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        # (letter, type) pairs a grant allows whatever the resource: a Bundle of a thousand
        # Observations is then decided once, not once per entry.
        self._allowed: set[tuple[str, str]] = set()

    async def check(self, repo: Any, entry: Any) -> None:
        letter = entry_letter(entry.method, entry.rid is not None)
        rtype = entry.rtype
        target = entry.rid or entry.assigned_id
        if letter in "ud" and target is not None:
            await require_current(self.principal, letter, repo, rtype, target)
        if letter in "cu" and entry.resource is not None:
            if (letter, rtype) in self._allowed:
                return
            if needs_resource(self.principal, letter, rtype):
                require(self.principal, letter, rtype, entry.resource)
            else:
                require(self.principal, letter, rtype)
                self._allowed.add((letter, rtype))
        elif letter == "r":
            require(self.principal, "r", rtype)
            if target is not None and needs_resource(self.principal, "r", rtype):
                await repo.flush()
                current = await repo.current(rtype, target)
                if current is not None and not current.deleted:
                    require_content(self.principal, "r", rtype, current.content)
        else:
            require(self.principal, letter, rtype)

    def search_limits(self, rtype: str, params: list[tuple[str, str]]) -> SearchLimits:
        return search_limits(self.principal, rtype, None, params)

    async def conditional_guard(self, repo: Any, resource_type: str, ids: list[str]) -> None:
        await conditional_guard(self.principal)(repo, resource_type, ids)
