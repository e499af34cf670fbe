"""The record ``$readmission-risk`` fetches is the windows around the patient's possible index
stays, not the whole history; on every Synthea patient, and every inpatient stay of each, it must
score exactly as the whole record does (same features, evidence, probability and refusals)."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from risk_model.errors import InsufficientData
from risk_model.features import FEATURE_OBSERVATION_CODES, FEATURE_RESOURCE_TYPES
from risk_model.predictor import Predictor
from tests.conftest import LiveServer, shared_path


def _outcome(
    predictor: Predictor,
    record: Any,
    patient_id: str,
    encounter_id: str | None,
    as_of: datetime | None,
) -> object:
    try:
        p = predictor.predict(record, patient_id=patient_id, encounter_id=encounter_id, as_of=as_of)
    except InsufficientData as exc:
        return f"refused: {exc}"
    return (p.encounter_id, dict(p.features), p.basis, p.probability, p.factors, p.lace)


def _size(record: Mapping[str, list[Any]]) -> int:
    return sum(len(items) for items in record.values())


async def _load(conn: Any, tenant: str, files: list[Path], base_url: str) -> None:
    from fhir_gateway.bundles import TransactionProcessor, parse_entries

    for path in files:
        bundle = orjson.loads(gzip.decompress(path.read_bytes()))
        async with conn.transaction():
            await TransactionProcessor(conn, tenant, base_url).run(parse_entries(bundle))


async def _compare(server: LiveServer, files: list[Path]) -> tuple[int, int, int, int]:
    import asyncpg

    from fhir_gateway.scoring.service import discharge_time, load_record
    from fhir_gateway.store.records import patient_record
    from fhir_gateway.store.urls import asyncpg_dsn

    predictor = Predictor.load()
    tenant = f"window-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(asyncpg_dsn(server.database_url))
    scored = cases = whole_size = window_size = 0
    try:
        await _load(conn, tenant, files, server.fhir_base)
        patients = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM resource WHERE tenant = $1 AND type = 'Patient'", tenant
            )
        ]
        assert len(patients) == len(files)
        for pid in patients:
            whole = [
                v.resource()
                for v in await patient_record(
                    conn,
                    tenant,
                    pid,
                    types=FEATURE_RESOURCE_TYPES,
                    observation_codes=FEATURE_OBSERVATION_CODES,
                )
            ]
            encounters = [r for r in whole if r["resourceType"] == "Encounter"]
            # The latest stay, each stay by name, and each stay as of its own discharge (as the
            # discharge worker scores it), plus an ambulatory visit named as the index.
            stays = [e["id"] for e in encounters if e["class"]["code"] == "IMP"]
            others = [e["id"] for e in encounters if e["class"]["code"] != "IMP"][:1]
            asks: list[tuple[str | None, datetime | None]] = [(None, None)]
            for enc in stays:
                asks += [(enc, None), (enc, discharge_time({"Encounter": encounters}, enc))]
            asks += [(enc, None) for enc in others]
            for enc, as_of in asks:
                window = await load_record(conn, tenant, pid, enc)
                expected = _outcome(predictor, whole, pid, enc, as_of)
                assert _outcome(predictor, window, pid, enc, as_of) == expected, (pid, enc)
                cases += 1
                if not isinstance(expected, str):
                    scored += 1
                    if enc is None:  # what the operation fetches by default
                        whole_size += len(whole)
                        window_size += _size(window)
    finally:
        await conn.close()
    return cases, scored, whole_size, window_size


@pytest.mark.shared_data
def test_window_record_scores_like_the_whole_record(live_fhir_server: LiveServer) -> None:
    files = sorted(shared_path("synthea-r4").glob("*.json.gz"))
    assert files
    cases, scored, whole_size, window_size = asyncio.run(_compare(live_fhir_server, files))
    assert scored >= 100 and cases > scored  # both scores and refusals were compared
    assert window_size * 2 < whole_size  # and the window really is a fraction of the history


async def _lab_index(database_url: str) -> tuple[str, list[str]]:
    import asyncpg

    from fhir_gateway.scoring.service import _scope
    from fhir_gateway.store.records import FeatureScope, _feature_sql
    from fhir_gateway.store.urls import asyncpg_dsn

    scope: FeatureScope = _scope()
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        definition = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_token_feature_lab'"
        )
        plan = await conn.fetch("EXPLAIN " + _feature_sql(scope), "dkfz", "nobody", None)
    finally:
        await conn.close()
    return definition or "", [r[0] for r in plan]


def test_the_lab_index_holds_exactly_the_codes_the_model_reads(
    live_fhir_server: LiveServer,
) -> None:
    """Migration 0007 indexes the model's lab codes; if the model's list changes, the index (and
    with it the cheap lab look-up) silently stops applying, so this must fail first."""
    import re

    definition, plan = asyncio.run(_lab_index(live_fhir_server.database_url))
    indexed = set(re.findall(r"'([^']+)'::text", definition.split("code =", 1)[-1]))
    assert indexed == set(FEATURE_OBSERVATION_CODES)
    assert any("idx_token_feature_lab" in line for line in plan), "\n".join(plan)
