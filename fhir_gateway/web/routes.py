"""Public pages the CDS cards link to: the model card and the risk viewer app.

Both are documentation or static code with no patient data in them; the viewer fetches data
with the user's own credential through the ordinary FHIR API.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, PlainTextResponse

router = APIRouter(include_in_schema=False)


@router.get("/model-card")
async def model_card() -> PlainTextResponse:
    from risk_model.artifact import model_card_text

    text = model_card_text()
    if text is None:
        return PlainTextResponse("No model card ships with this artifact.", status_code=404)
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")


@router.get("/apps/risk-viewer/launch")
async def risk_viewer() -> HTMLResponse:
    page = (resources.files("fhir_gateway.web") / "risk_viewer.html").read_text(encoding="utf-8")
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": (
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                "connect-src *"
            )
        },
    )
