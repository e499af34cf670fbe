"""The CDS Hooks validator's own request samples, replayed against the service."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cds.conftest import Signer, shared_data
from tests.cds.helpers import SERVICE, headers

pytestmark = [pytest.mark.anyio, pytest.mark.shared_data]


def sample(name: str) -> dict[str, Any]:
    folder = shared_data() / "cds-hooks-samples"
    if not folder.is_dir():
        pytest.skip("shared data not available (cds-hooks-samples): the clone has no ../shared")
    data: dict[str, Any] = json.loads((folder / name).read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize(
    "name",
    [
        "cdshooks__cdshooks-request-patient-view-bad.json",
        "cdshooks__cdshooks-request-order-sign-bad-1.json",
        "cdshooks__cdshooks-request-order-sign-bad-2.json",
        "cdshooks__cdshooks-request-order-select-bad.json",
    ],
)
async def test_bad_samples_are_400(cds: Any, ec_signer: Signer, name: str) -> None:
    response = await cds().post(SERVICE, json=sample(name), headers=headers(ec_signer, SERVICE))
    assert response.status_code == 400
    assert response.json()["message"]


async def test_good_patient_view_sample_is_valid_but_lacks_our_data(
    cds: Any, ec_signer: Signer
) -> None:
    """Valid request; its prefetch keys are another service's and it grants no FHIR access."""
    body = sample("cdshooks__cdshooks-request-patient-view-good.json")
    client = cds(fhir_servers=[body["fhirServer"]])
    response = await client.post(SERVICE, json=body, headers=headers(ec_signer, SERVICE))
    assert response.status_code == 412


async def test_spec_example_request_names_a_server_we_do_not_trust(
    cds: Any, ec_signer: Signer
) -> None:
    body = sample("cdshooks-request-pv-good.json")
    response = await cds().post(SERVICE, json=body, headers=headers(ec_signer, SERVICE))
    assert response.status_code == 403


async def test_discovery_has_the_shape_of_the_spec_sample(cds: Any, ec_signer: Signer) -> None:
    reference = sample("cdshooks-services-good.json")["services"][0]
    response = await cds().get("/cds-services", headers=headers(ec_signer, "/cds-services"))
    ours = response.json()["services"][0]
    assert set(reference) <= set(ours) | {"usageRequirements"}
    for key, value in reference.items():
        assert type(ours[key]) is type(value), key


def synthea_patients(limit: int) -> list[list[dict[str, Any]]]:
    """Realistic records: Synthea patients with an inpatient stay, as the EHR would hold them."""
    import gzip

    from tests.cds.records import resources_of

    folder = shared_data() / "synthea-r4"
    if not folder.is_dir():
        pytest.skip("shared data not available (synthea-r4): the clone has no ../shared")
    found = []
    for path in sorted(folder.glob("*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            resources = resources_of(json.load(handle))
        inpatient = any(
            r["resourceType"] == "Encounter" and r.get("class", {}).get("code") == "IMP"
            for r in resources
        )
        if inpatient:
            found.append(resources)
        if len(found) == limit:
            break
    return found


async def test_synthea_cards_match_the_whole_record(
    cds: Any, ec_signer: Signer, predictor: Any
) -> None:
    from tests.cds.helpers import empty_paths, hook_request
    from tests.cds.records import full_prefetch, patient_id

    """The prefetch templates carry everything the model reads, even for heavy users."""
    client = cds()
    for resources in synthea_patients(8):
        pid = patient_id(resources)
        body = hook_request(pid, full_prefetch(resources))
        response = await client.post(SERVICE, json=body, headers=headers(ec_signer, SERVICE))
        assert response.status_code == 200, response.text
        cards = response.json()["cards"]
        assert empty_paths(response.json()) == []
        expected = predictor.predict(resources, patient_id=pid)
        assert len(cards) == 1
        assert cards[0]["summary"].lower().startswith(expected.band)
        percent = f"{round(expected.probability * 100):.0f}%"
        assert cards[0]["summary"].endswith(f": {percent}"), (cards[0]["summary"], percent)
