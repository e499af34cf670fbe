"""Fixtures: a fresh hand-built record, and the shared data folder (skip when absent)."""

from pathlib import Path

import pytest
from rm_records import SHARED, Record


@pytest.fixture
def record() -> Record:
    return Record()


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder; the test is skipped when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED} (set FHIR_GATEWAY_SHARED_DATA)")
    return SHARED
