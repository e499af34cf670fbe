"""A small app wired like the real one (request context, instrumentation, health), for ops tests.

It exercises our observability modules end to end without the database or the model, so the
scrape, Prometheus and multiprocess tests run on every branch.
"""

from __future__ import annotations

import logging
import os
import time

from fastapi import FastAPI

from fhir_gateway.observability import metrics
from fhir_gateway.observability.logging import RequestContextMiddleware, current_request_id

MODEL_VERSION = "demo-1"
MODEL_SHA256 = "0" * 64

log = logging.getLogger("demo")


def create_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware)
    metrics.instrument(app)
    metrics.set_model_info(MODEL_VERSION, MODEL_SHA256)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        metrics.set_dependency_up("database", True)
        metrics.set_dependency_up("model", True)
        return {"status": "ready"}

    @app.get("/fhir/Patient/{patient_id}")
    async def read_patient(patient_id: str) -> dict[str, str | int | None]:
        log.info("read patient", extra={"resource_type": "Patient"})
        return {"resourceType": "Patient", "id": patient_id, "request_id": current_request_id()}

    @app.get("/fhir/Patient/{patient_id}/$readmission-risk")
    async def risk(patient_id: str) -> dict[str, str]:
        with metrics.time_prediction():
            band = "high" if patient_id.endswith("9") else "low"
        metrics.count_prediction(band, MODEL_VERSION)
        return {"band": band}

    @app.get("/slow")
    async def slow() -> dict[str, int]:
        # Blocks this worker's event loop on purpose, so concurrent requests spread over workers.
        time.sleep(0.15)  # noqa: ASYNC251
        return {"pid": os.getpid()}

    @app.get("/fhir/Patient/{patient_id}/boom")
    async def boom(patient_id: str) -> None:
        # Like a driver error quoting the offending value (e.g. a duplicate identifier).
        raise RuntimeError(f"duplicate key value {patient_id}")

    return app


app = create_app()
