"""The ``readmission-risk`` service on the ``patient-view`` hook.

Flow: validate the request, gather the patient's record (prefetch, then the EHR's FHIR server),
score the latest inpatient stay (or the one named by ``context.encounterId``), and answer with
one card. No inpatient stay means nothing to say: an empty card list.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
from pydantic import ValidationError
from risk_model.errors import InsufficientData, RiskModelError
from risk_model.predictor import Prediction, Predictor

from cds_services import metrics
from cds_services.cards import BuiltCard, CardLinks, build_card
from cds_services.config import CdsSettings
from cds_services.errors import CdsError, bad_request, forbidden, precondition_failed
from cds_services.record_source import (
    FhirFetcher,
    RecordUnavailable,
    ServerNotAllowed,
    check_server,
    load_record,
)
from cds_services.requests import HookRequest, describe
from cds_services.security import VerifiedClient
from cds_services.store import CdsStore, IssuedCard

log = logging.getLogger(__name__)

HOOK = "patient-view"
INPATIENT_CLASSES = frozenset({"IMP", "ACUTE", "NONAC"})
_PATIENT_REF = re.compile(r"(?:^|/)Patient/([^/]+)$")

PredictionObserver = Callable[[Prediction, float], None]


def _patient_of(resource: Mapping[str, Any]) -> str | None:
    for field in ("subject", "patient", "for"):
        ref = resource.get(field)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            match = _PATIENT_REF.search(ref["reference"])
            if match:
                return match.group(1)
    return None


def only_patient(
    resources: Sequence[Mapping[str, Any]], patient_id: str
) -> list[Mapping[str, Any]]:
    """Drop anything that plainly belongs to another patient (defence against mixed bundles)."""
    kept = []
    for resource in resources:
        if resource.get("resourceType") == "Patient":
            if resource.get("id") == patient_id:
                kept.append(resource)
            continue
        owner = _patient_of(resource)
        if owner is None or owner == patient_id:
            kept.append(resource)
    return kept


def is_inpatient(encounter: Mapping[str, Any]) -> bool:
    klass = encounter.get("class")
    return isinstance(klass, dict) and klass.get("code") in INPATIENT_CLASSES


class PatientViewService:
    def __init__(
        self,
        settings: CdsSettings,
        predictor: Predictor,
        store: CdsStore,
        http: Callable[[], httpx.AsyncClient],
        *,
        own_fhir_base: str,
        on_prediction: PredictionObserver | None = None,
    ) -> None:
        self._settings = settings
        self._predictor = predictor
        self._store = store
        self._http = http
        self._own_fhir_base = own_fhir_base
        self._on_prediction = on_prediction
        self._links = CardLinks(settings.model_card_url(), settings.smart_app_url())

    def parse(self, body: Any) -> HookRequest:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        try:
            request = HookRequest.model_validate(body)
        except ValidationError as exc:
            raise bad_request(describe(exc)) from exc
        if request.hook != HOOK:
            raise bad_request(f"this service answers the {HOOK} hook, not {request.hook!r}")
        return request

    def _fetcher(self, request: HookRequest, client: VerifiedClient) -> FhirFetcher | None:
        if request.fhirServer is None:
            return None
        try:
            base = check_server(request.fhirServer, client.fhir_servers, self._own_fhir_base)
        except ServerNotAllowed as exc:
            raise forbidden(str(exc)) from exc
        if request.fhirAuthorization is None:
            return None
        return FhirFetcher(
            self._http(),
            base,
            request.fhirAuthorization.access_token,
            max_pages=self._settings.cds_fetch_max_pages,
        )

    async def handle(self, body: Any, client: VerifiedClient) -> dict[str, Any]:
        request = self.parse(body)
        patient_id = request.context.patientId
        fetcher = self._fetcher(request, client)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._settings.cds_fetch_deadline_seconds):
                record = await load_record(request, fetcher)
        except RecordUnavailable as exc:
            raise precondition_failed(str(exc)) from exc
        except TimeoutError as exc:
            raise precondition_failed("the FHIR server did not answer in time") from exc
        log.debug(
            "hook %s: %d resources, fetched %s in %.1f ms",
            request.hookInstance,
            len(record.resources),
            ",".join(record.fetched) or "nothing",
            (time.perf_counter() - started) * 1000,
        )
        patients = [r for r in record.resources if r.get("resourceType") == "Patient"]
        if patients and all(p.get("id") != patient_id for p in patients):
            raise bad_request("the Patient resource provided is not context.patientId")
        resources = only_patient(record.resources, patient_id)
        if not any(r.get("resourceType") == "Patient" for r in resources):
            raise precondition_failed("the Patient resource could not be obtained")
        prediction = self._predict(resources, patient_id, request.context.encounterId)
        if prediction is None:
            return {"cards": []}
        built = build_card(
            prediction, self._links, thresholds=self._settings.cds_indicator_thresholds
        )
        await self._remember(built, client, request, prediction)
        metrics.CARDS.labels(indicator=built.indicator).inc()
        log.debug("hook %s: %s card", request.hookInstance, built.indicator)
        return {"cards": [built.card]}

    def _predict(
        self, resources: list[Mapping[str, Any]], patient_id: str, encounter_id: str | None
    ) -> Prediction | None:
        named = None
        if encounter_id is not None:
            named = next(
                (
                    r
                    for r in resources
                    if r.get("resourceType") == "Encounter" and r.get("id") == encounter_id
                ),
                None,
            )
        candidates = [encounter_id] if named is not None and is_inpatient(named) else []
        started = time.perf_counter()
        for index_encounter in [*candidates, None]:
            try:
                prediction: Prediction = self._predictor.predict(
                    resources, patient_id=patient_id, encounter_id=index_encounter
                )
            except InsufficientData:
                continue
            except RiskModelError as exc:
                log.error("risk model failed: %s", type(exc).__name__)
                raise CdsError(500, "the risk model could not score this patient") from exc
            if self._on_prediction is not None:
                self._on_prediction(prediction, time.perf_counter() - started)
            return prediction
        return None

    async def _remember(
        self,
        built: BuiltCard,
        client: VerifiedClient,
        request: HookRequest,
        prediction: Prediction,
    ) -> None:
        await self._store.record_cards(
            [
                IssuedCard(
                    uuid=built.uuid,
                    tenant=client.tenant,
                    patient_id=prediction.patient_id,
                    encounter_id=prediction.encounter_id,
                    hook_instance=str(request.hookInstance),
                    indicator=built.indicator,
                    model_version=prediction.model_version,
                    suggestion_uuids=built.suggestion_uuids,
                )
            ]
        )
