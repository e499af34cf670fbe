"""ASGI entry point for uvicorn workers: settings come from the environment."""

from fhir_gateway.app import create_app
from fhir_gateway.gc_tuning import tune_for_serving

app = create_app()
# Here rather than in the app factory: only a serving process wants it, and by now the model,
# the search definitions and the routes are loaded.
tune_for_serving()
