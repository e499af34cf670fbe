"""Every SNOMED CT condition code in the Synthea sample data is reviewed in our Charlson map."""

import gzip
import json
import os
from pathlib import Path

import pytest

from terminology.charlson import category_of
from terminology.codesystems import SNOMED_CT

_REPO = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("FHIR_GATEWAY_SHARED_DATA", _REPO / ".." / "shared" / "data"))


@pytest.mark.shared_data
def test_all_synthea_condition_codes_are_mapped() -> None:
    folder = SHARED / "synthea-r4"
    if not folder.is_dir():
        pytest.skip(f"shared data not found at {folder}")
    codes: set[str] = set()
    for path in folder.glob("*.json.gz"):
        bundle = json.loads(gzip.decompress(path.read_bytes()))
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Condition":
                codes.update(
                    c["code"] for c in resource["code"]["coding"] if c["system"] == SNOMED_CT
                )
    assert codes
    for code in sorted(codes):
        category_of(SNOMED_CT, code)  # raises UnknownCode for an unreviewed code
