"""The JSON Patch engine behind ``PATCH`` replays the official test vectors.

The vectors patch plain JSON documents, not FHIR resources, so they exercise the engine
directly; the HTTP tests in tests/fhir_gateway cover PATCH on resources end to end.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhir_gateway.fhir.errors import OperationOutcomeError
from fhir_gateway.interactions import apply_patch
from tests.conftest import SHARED_DATA


def vectors() -> list[dict[str, Any]]:
    path = SHARED_DATA / "fhir-test-cases" / "json-patch-tests.json"
    if not path.exists():
        return []
    loaded: list[dict[str, Any]] = json.loads(path.read_text())
    return loaded


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "case",
    vectors()
    or [
        pytest.param(
            None,
            marks=pytest.mark.skip(
                reason="shared data not available (fhir-test-cases): the clone has no ../shared"
            ),
        )
    ],
    ids=lambda c: c["comment"] if c else "absent",
)
def test_json_patch_vector(case: dict[str, Any]) -> None:
    doc = case["doc"]
    if not isinstance(doc, dict):
        pytest.skip("the engine patches resources, which are JSON objects")
    if "error" in case:
        with pytest.raises(OperationOutcomeError) as info:
            apply_patch(doc, case["patch"])
        assert info.value.status in (400, 412, 422)
    else:
        assert apply_patch(doc, case["patch"]) == case["expected"]
