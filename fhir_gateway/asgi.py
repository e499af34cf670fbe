"""ASGI entry point for uvicorn workers: settings come from the environment."""

from fhir_gateway.app import create_app

app = create_app()
