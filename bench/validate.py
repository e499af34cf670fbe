"""Resources per second: fhir.resources R4B ``model_validate`` against the fast validator.

Both validate the same Synthea resources in the same run. The first Bundle warms both up
(pydantic builds its validators lazily, the fast validator compiles each type on first use);
the rest is timed in interleaved chunks so a busy machine slows both sides alike.

    PYTHONPATH=. python bench/validate.py [--bundles 20] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from fhir_gateway.fhir.models import model_class, resource_types
from fhir_gateway.fhir.validation import validate_resource

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("FHIR_GATEWAY_SHARED_DATA", REPO.parent / "shared" / "data"))
CHUNK = 500


def load(paths: list[Path]) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    for path in paths:
        bundle = orjson.loads(gzip.decompress(path.read_bytes()))
        resources.extend(entry["resource"] for entry in bundle["entry"])
    return resources


def oracle(resource: dict[str, Any]) -> None:
    model_class(resource["resourceType"]).model_validate(resource)


def fast(resource: dict[str, Any]) -> None:
    issues = validate_resource(resource)
    if issues:
        raise AssertionError(f"{resource['resourceType']}/{resource.get('id')}: {issues[:3]}")


def timed(check: Callable[[dict[str, Any]], None], chunk: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for resource in chunk:
        check(resource)
    return time.perf_counter() - start


def startup_cost() -> None:
    """The one-off cost: importing the models, then compiling each resource type on first use."""
    start = time.perf_counter()
    types = sorted(resource_types())
    imported = time.perf_counter()
    for name in types:
        validate_resource({"resourceType": name, "id": "x"})
    compiled = time.perf_counter()
    print(f"start-up: importing {len(types)} R4B resource models {imported - start:.2f} s;")
    print(f"  compiling the validator of each on first use {compiled - imported:.2f} s in total")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=20, help="Synthea Bundles to time")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    args = parser.parse_args()
    folder = args.data / "synthea-r4"
    paths = sorted(folder.glob("*.json.gz"))
    if len(paths) < 2:
        print(f"skipped: no Synthea Bundles in {folder} (the shared data is absent)")
        return 0
    startup_cost()
    warm, measured = load(paths[:1]), load(paths[1 : 1 + args.bundles])
    for resource in warm:
        oracle(resource)
        fast(resource)
    totals = {"fhir.resources model_validate": 0.0, "fast validator": 0.0}
    for i, start in enumerate(range(0, len(measured), CHUNK)):
        chunk = measured[start : start + CHUNK]
        order = [("fhir.resources model_validate", oracle), ("fast validator", fast)]
        for name, check in order if i % 2 == 0 else reversed(order):
            totals[name] += timed(check, chunk)
    n = len(measured)
    print(f"{n} Synthea resources from {min(args.bundles, len(paths) - 1)} Bundles, one pass each")
    for name, seconds in totals.items():
        print(f"  {name:32s} {n / seconds:>10,.0f} resources/s  {seconds / n * 1e6:7.1f} µs each")
    ratio = totals["fhir.resources model_validate"] / totals["fast validator"]
    print(f"  speed-up                         {ratio:10.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
