"""Result control through HTTP: includes, sorting, paging under writes, totals, subsets, strict
handling, POST _search, compartments, system search and tenant isolation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.search.dataset import Loaded, load


@pytest.fixture(scope="module")
def data(live_fhir_server) -> Iterator[Loaded]:  # type: ignore[no-untyped-def]
    with live_fhir_server.client("dkfz") as client:
        yield load(client)


def get(client: httpx.Client, data: Loaded, path: str, query: str) -> dict[str, Any]:
    params = [tuple(p.split("=", 1)) for p in data.fill(query).split("&") if p]
    params.append(("_tag", data.tag))
    r = client.get(data.fill(path), params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def order(data: Loaded, bundle: dict[str, Any]) -> list[str]:
    return [
        data.labels[e["resource"]["id"]] for e in bundle["entry"] if e["search"]["mode"] == "match"
    ]


# --- includes ---------------------------------------------------------------------------------


def test_include_adds_referenced_resources_marked_include(
    app_client: httpx.Client, data: Loaded
) -> None:
    b = get(app_client, data, "/Condition", "patient={pA}&_include=Condition:encounter")
    assert data.found(b) == {"cA1"}
    assert data.found(b, "include") == {"eA1"}
    assert b["total"] == 1  # includes never count


def test_include_with_target_type(app_client: httpx.Client, data: Loaded) -> None:
    b = get(app_client, data, "/Condition", "_include=Condition:subject:Patient")
    assert data.found(b, "include") == {"pA", "pB"}
    b = get(app_client, data, "/Condition", "_include=Condition:subject:Group")
    assert data.found(b, "include") == set()


def test_include_of_another_type_is_ignored_unless_strict(
    app_client: httpx.Client, data: Loaded
) -> None:
    b = get(app_client, data, "/Condition", "patient={pA}&_include=Observation:encounter")
    assert data.found(b, "include") == set()
    r = app_client.get(
        "/Condition",
        params={"_include": "Observation:encounter"},
        headers={"Prefer": "handling=strict"},
    )
    assert r.status_code == 400


def test_include_wildcard_follows_every_reference(app_client: httpx.Client, data: Loaded) -> None:
    b = get(app_client, data, "/Encounter", "_id={eA1}&_include=*")
    assert data.found(b, "include") == {"pA", "org1"}


def test_includes_through_a_derived_parameter(app_client: httpx.Client, data: Loaded) -> None:
    # Observation's 'patient' has no rows of its own: it reads 'subject' rows that point at a
    # Patient, so the Group's Observation (oG1) is no patient's.
    b = get(app_client, data, "/Observation", "_include=Observation:patient")
    assert data.found(b, "include") == {"pA", "pB", "pC"}
    b = get(app_client, data, "/Patient", "_id={pB}&_revinclude=Observation:patient")
    assert data.found(b, "include") == {"oB1"}
    b = get(app_client, data, "/Patient", "_revinclude=Observation:patient")
    assert data.found(b, "include") == {"oA1", "oA2", "oB1", "oC1"}


def test_revinclude_and_iterate(app_client: httpx.Client, data: Loaded) -> None:
    b = get(app_client, data, "/Patient", "_id={pA}&_revinclude=Observation:subject")
    assert data.found(b) == {"pA"}
    assert data.found(b, "include") == {"oA1", "oA2"}
    b = get(
        app_client,
        data,
        "/Observation",
        "_id={oA1}&_include=Observation:encounter&_include:iterate=Encounter:service-provider",
    )
    assert data.found(b, "include") == {"eA1", "org1"}
    # Without :iterate the second hop is not taken.
    b = get(
        app_client,
        data,
        "/Observation",
        "_id={oA1}&_include=Observation:encounter&_include=Encounter:service-provider",
    )
    assert data.found(b, "include") == {"eA1"}


def test_revinclude_iterate_reaches_second_level(app_client: httpx.Client, data: Loaded) -> None:
    b = get(
        app_client,
        data,
        "/Patient",
        "_id={pA}&_revinclude=Encounter:subject&_revinclude:iterate=Procedure:encounter",
    )
    assert data.found(b, "include") == {"eA1", "eA2", "prA1"}


# --- sorting ----------------------------------------------------------------------------------


def test_sort_by_date_both_directions(app_client: httpx.Client, data: Loaded) -> None:
    assert order(data, get(app_client, data, "/Encounter", "_sort=-date")) == ["eA2", "eA1", "eB1"]
    assert order(data, get(app_client, data, "/Encounter", "_sort=date")) == ["eB1", "eA1", "eA2"]


def test_sort_by_several_keys(app_client: httpx.Client, data: Loaded) -> None:
    b = get(app_client, data, "/Encounter", "_sort=status,-date")
    assert order(data, b) == ["eA1", "eB1", "eA2"]
    b = get(app_client, data, "/Observation", "_sort=-code,date")
    # 8867-4, then 718-7, then 2947-0 (text order); missing dates (oC1) sort last.
    assert order(data, b) == ["oG1", "oA1", "oA2", "oC1", "oB1"]


def test_sort_by_a_derived_parameter(app_client: httpx.Client, data: Loaded) -> None:
    # combo-code reads the 'code' and 'component-code' rows: oB1's component code 8480-6 is its
    # highest, 2947-0 its lowest.
    assert order(data, get(app_client, data, "/Observation", "_sort=-combo-code"))[:2] == [
        "oG1",
        "oB1",
    ]
    assert order(data, get(app_client, data, "/Observation", "_sort=combo-code"))[0] == "oB1"
    assert order(data, get(app_client, data, "/Observation", "_sort=-code"))[-1] == "oB1"


def test_sort_missing_values_last_in_both_directions(
    app_client: httpx.Client, data: Loaded
) -> None:
    assert order(data, get(app_client, data, "/Patient", "_sort=birthdate"))[-1] == "pC"
    assert order(data, get(app_client, data, "/Patient", "_sort=-birthdate")) == ["pB", "pA", "pC"]


def test_sort_by_string_and_number(app_client: httpx.Client, data: Loaded) -> None:
    assert order(data, get(app_client, data, "/Patient", "_sort=family")) == ["pA", "pB", "pC"]
    assert order(data, get(app_client, data, "/RiskAssessment", "_sort=-probability")) == [
        "rA1",
        "rB1",
    ]


# --- totals and subsets -------------------------------------------------------------------------


def test_total_modes(app_client: httpx.Client, data: Loaded) -> None:
    b = get(app_client, data, "/Observation", "_count=1&_total=accurate")
    assert b["total"] == 5 and len(b["entry"]) == 1
    b = get(app_client, data, "/Observation", "_count=1&_total=none")
    assert "total" not in b
    b = get(app_client, data, "/Observation", "_count=1&_total=estimate")
    assert isinstance(b["total"], int) and b["total"] >= 0


def test_summary_count_returns_only_the_total(app_client: httpx.Client, data: Loaded) -> None:
    b = get(app_client, data, "/Observation", "code=718-7&_summary=count")
    assert b["total"] == 3
    assert "entry" not in b


def test_elements_subsets_and_marks_the_resource(app_client: httpx.Client, data: Loaded) -> None:
    b = get(app_client, data, "/Patient", "_id={pA}&_elements=name,birthDate")
    res = b["entry"][0]["resource"]
    assert res["name"][0]["family"] == "Müller" and res["birthDate"] == "1970-05-02"
    assert "gender" not in res and "identifier" not in res
    assert {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
        "code": "SUBSETTED",
    } in res["meta"]["tag"]


def test_elements_keeps_choice_elements(app_client: httpx.Client, data: Loaded) -> None:
    b = get(app_client, data, "/Observation", "_id={oA1}&_elements=value")
    res = b["entry"][0]["resource"]
    assert res["valueQuantity"]["value"] == 11.2 and "code" not in res


def test_summary_data_drops_narrative(app_client: httpx.Client) -> None:
    tag = uuid.uuid4().hex
    r = app_client.post(
        "/Patient",
        json={
            "resourceType": "Patient",
            "meta": {"tag": [{"system": "urn:t", "code": tag}]},
            "text": {
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
            },
            "gender": "other",
        },
    )
    assert r.status_code == 201, r.text
    b = app_client.get("/Patient", params={"_tag": f"urn:t|{tag}", "_summary": "data"}).json()
    res = b["entry"][0]["resource"]
    assert "text" not in res and res["gender"] == "other"


# --- paging -----------------------------------------------------------------------------------


def _create(client: httpx.Client, tag: str, family: str) -> str:
    r = client.post(
        "/Patient",
        json={
            "resourceType": "Patient",
            "meta": {"tag": [{"system": "urn:page", "code": tag}]},
            "name": [{"family": family}],
        },
    )
    assert r.status_code == 201, r.text
    rid: str = r.json()["id"]
    return rid


def _link(bundle: dict[str, Any], relation: str) -> str | None:
    for link in bundle.get("link", []):
        if link["relation"] == relation:
            url: str = link["url"]
            return url
    return None


def _follow(client: httpx.Client, url: str) -> dict[str, Any]:
    r = client.get(url)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


@pytest.mark.parametrize("sort", [None, "family", "-family", "-_lastUpdated,family"])
def test_paging_is_stable_while_resources_are_written(
    app_client: httpx.Client, sort: str | None
) -> None:
    tag = uuid.uuid4().hex
    families = ["Adams", "Baker", "Clark", "Davis", "Evans", "Fox", "Grant"]
    original = {_create(app_client, tag, f) for f in families}
    params = {"_tag": f"urn:page|{tag}", "_count": "3"}
    if sort:
        params["_sort"] = sort
    first = app_client.get("/Patient", params=params).json()
    seen = _ids(first)
    assert len(seen) == 3 and first["total"] == 7
    # Writes between pages: new resources sorting anywhere, and a delete of an unseen one.
    _create(app_client, tag, "Aaron")
    _create(app_client, tag, "Zed")
    unseen = sorted(original - set(seen))
    deleted = unseen[0]
    assert app_client.delete(f"/Patient/{deleted}").status_code in (200, 204)
    page = first
    while (nxt := _link(page, "next")) is not None:
        page = _follow(app_client, nxt)
        seen.extend(_ids(page))
    assert len(seen) == len(set(seen)), "a resource was returned twice"
    assert original - {deleted} <= set(seen), "a resource present throughout was skipped"
    assert deleted not in seen[3:]


def test_previous_link_returns_the_earlier_page(app_client: httpx.Client) -> None:
    tag = uuid.uuid4().hex
    for f in ["Ames", "Bell", "Cole", "Dunn", "Eden"]:
        _create(app_client, tag, f)
    first = app_client.get(
        "/Patient", params={"_tag": f"urn:page|{tag}", "_count": "2", "_sort": "family"}
    ).json()
    assert _link(first, "previous") is None
    second = _follow(app_client, _link(first, "next") or "")
    third = _follow(app_client, _link(second, "next") or "")
    assert _link(third, "next") is None
    assert [e["resource"]["name"][0]["family"] for e in third["entry"]] == ["Eden"]
    back = _follow(app_client, _link(third, "previous") or "")
    assert _ids(back) == _ids(second)
    back2 = _follow(app_client, _link(back, "previous") or "")
    assert _ids(back2) == _ids(first)
    assert _link(back2, "previous") is None


def test_count_is_capped_and_zero_gives_total_only(app_client: httpx.Client, data: Loaded) -> None:
    b = get(app_client, data, "/Observation", "_count=0")
    assert b["total"] == 5 and "entry" not in b
    b = get(app_client, data, "/Observation", "_count=100000")
    assert len(b["entry"]) == 5


# --- strict handling and links ----------------------------------------------------------------


def test_unknown_parameters_are_ignored_and_left_out_of_self(
    app_client: httpx.Client, data: Loaded
) -> None:
    b = get(app_client, data, "/Patient", "gender=male&unknown-thing=1")
    assert data.found(b) == {"pB"}
    selflink = _link(b, "self") or ""
    assert "unknown-thing" not in selflink and "gender=male" in selflink


def test_strict_handling_rejects_unknown_parameters(app_client: httpx.Client) -> None:
    r = app_client.get(
        "/Patient",
        params={"gender": "male", "unknown-thing": "1"},
        headers={"Prefer": "handling=strict"},
    )
    assert r.status_code == 400
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["unknown-thing"]
    r = app_client.get("/Patient", params={"gender": "male"}, headers={"Prefer": "handling=strict"})
    assert r.status_code == 200


def test_strict_handling_rejects_unknown_chained_parameter(app_client: httpx.Client) -> None:
    r = app_client.get(
        "/Observation", params={"patient.nothing": "x"}, headers={"Prefer": "handling=strict"}
    )
    assert r.status_code == 400


# --- other entry points -----------------------------------------------------------------------


def test_post_search_with_form_body(app_client: httpx.Client, data: Loaded) -> None:
    r = app_client.post(
        "/Observation/_search",
        params={"_tag": data.tag},
        data={"code": "718-7", "status": "final"},
    )
    assert r.status_code == 200, r.text
    assert data.found(r.json()) == {"oA1", "oA2"}
    r = app_client.post(
        "/Observation/_search", content=b'{"code": 1}', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 415


def test_patient_compartment(app_client: httpx.Client, data: Loaded) -> None:
    assert data.found(get(app_client, data, "/Patient/{pA}/Observation", "")) == {"oA1", "oA2"}
    assert data.found(get(app_client, data, "/Patient/{pA}/Encounter", "status=finished")) == {
        "eA1"
    }
    assert data.found(get(app_client, data, "/Patient/{pB}/Condition", "")) == {"cB1"}
    assert data.found(get(app_client, data, "/Patient/{pC}/Procedure", "")) == set()


def test_system_search(app_client: httpx.Client, data: Loaded) -> None:
    b = get(app_client, data, "/", "_type=Patient,Observation&_count=100")
    assert data.found(b) == {"pA", "pB", "pC", "oA1", "oA2", "oB1", "oC1", "oG1"}
    b = get(app_client, data, "/", "_id={pA}")
    assert data.found(b) == {"pA"}
    b = get(app_client, data, "/", "_lastUpdated=gt2000-01-01&_count=100")
    assert data.found(b) == set(data.ids)
    b = get(app_client, data, "/", "_lastUpdated=lt2000-01-01")
    assert data.found(b) == set()
    # [base]? without the trailing slash reaches the same search (via a redirect).
    r = app_client.get("", params={"_id": data.ids["pB"]}, follow_redirects=True)
    assert r.status_code == 200 and data.found(r.json()) == {"pB"}
    r = app_client.post("/_search", data={"_id": data.ids["oB1"]})
    assert r.status_code == 200 and data.found(r.json()) == {"oB1"}


def test_unknown_type_is_404(app_client: httpx.Client) -> None:
    assert app_client.get("/NotAType").status_code == 404


# --- tenancy ----------------------------------------------------------------------------------


def test_tenants_never_see_each_other(
    app_client: httpx.Client, other_tenant_client: httpx.Client, data: Loaded
) -> None:
    pa = data.ids["pA"]
    # The other tenant holds an Observation that points at an id only this tenant has.
    r = other_tenant_client.post(
        "/Observation",
        json={
            "resourceType": "Observation",
            "status": "final",
            "meta": {"tag": [{"system": "urn:search-test", "code": data.tag.split("|")[1]}]},
            "code": {"coding": [{"system": "http://loinc.org", "code": "tenant-probe"}]},
            "subject": {"reference": f"Patient/{pa}"},
        },
    )
    assert r.status_code == 201, r.text
    foreign = r.json()["id"]
    # Plain, chained and _has searches from the owning tenant do not reach the foreign row.
    b = get(app_client, data, "/Observation", "subject=Patient/{pA}")
    assert foreign not in _ids(b)
    b = get(app_client, data, "/Patient", "_has:Observation:subject:code=tenant-probe")
    assert data.found(b) == set()
    b = get(app_client, data, "/Patient", "_id={pA}&_revinclude=Observation:subject")
    assert foreign not in _ids(b)
    # From the other tenant: chains, includes and compartments do not reach this tenant's Patient.
    theirs = other_tenant_client.get(
        "/Observation",
        params={"code": "tenant-probe", "_include": "Observation:subject", "_tag": data.tag},
    ).json()
    assert _ids(theirs) == [foreign]
    theirs = other_tenant_client.get(
        "/Observation", params={"patient.name": "müller", "_tag": data.tag}
    ).json()
    assert theirs["total"] == 0
    theirs = other_tenant_client.get("/Patient", params={"_tag": data.tag}).json()
    assert theirs["total"] == 0
    theirs = other_tenant_client.get(f"/Patient/{pa}/Observation").json()
    assert _ids(theirs) == [foreign]
    theirs = other_tenant_client.get("/", params={"_id": pa}).json()
    assert theirs["total"] == 0
