"""The pages CDS cards link to answer, publicly, and carry no patient data."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer


def test_model_card_and_viewer(live_fhir_server: LiveServer) -> None:
    card = httpx.get(live_fhir_server.base_url + "/model-card")
    assert card.status_code == 200
    assert card.headers["content-type"].startswith("text/markdown")
    assert "AUROC" in card.text and "LACE" in card.text
    page = httpx.get(
        live_fhir_server.base_url + "/apps/risk-viewer/launch",
        params={"iss": live_fhir_server.fhir_base, "patient": "demo-03"},
    )
    assert page.status_code == 200
    assert "RiskAssessment?patient=" in page.text
