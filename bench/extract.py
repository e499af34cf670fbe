"""Microseconds per resource: the FHIRPath interpreter against the compiled index extractors.

Both extract the search index rows of the same Synthea resources in the same run and must give
the same rows. The first Bundle warms both up (each compiles a resource type on first use); the
rest is timed in interleaved chunks so a busy machine slows both sides alike. The caches of dates,
texts and references are emptied before every chunk (about one patient's Bundle), so values are
only found cached when they repeat within it.

    PYTHONPATH=. python bench/extract.py [--bundles 60] [--rounds 3] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from fhir_gateway.search.compile_rows import clear_caches
from fhir_gateway.search.index import IndexRows, extract, extract_reference

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("FHIR_GATEWAY_SHARED_DATA", REPO.parent / "shared" / "data"))
CHUNK = 500

Extractor = Callable[[str, Mapping[str, Any]], IndexRows]


def load(paths: list[Path]) -> list[tuple[str, dict[str, Any]]]:
    resources: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        bundle = orjson.loads(gzip.decompress(path.read_bytes()))
        for entry in bundle["entry"]:
            resource = entry["resource"]
            resources.append((resource["resourceType"], resource))
    return resources


def timed(extractor: Extractor, chunk: list[tuple[str, dict[str, Any]]]) -> float:
    clear_caches()  # a chunk is about one patient's Bundle: no values cached from before
    start = time.perf_counter()
    for rtype, resource in chunk:
        extractor(rtype, resource)
    return time.perf_counter() - start


def check_same(resources: list[tuple[str, dict[str, Any]]]) -> int:
    """Rows of both extractors, compared resource by resource; returns the number of rows."""
    rows = 0
    for rtype, resource in resources:
        old, new = extract_reference(rtype, resource), extract(rtype, resource)
        if repr(old) != repr(new):
            raise AssertionError(f"{rtype}/{resource.get('id')}: rows differ")
        rows += sum(len(getattr(old, kind)) for kind in ("token", "string", "date"))
        rows += len(old.reference) + len(old.quantity)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=60, help="Synthea Bundles to time")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the resources")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    parser.add_argument("--by-type", action="store_true", help="also print each resource type")
    args = parser.parse_args()
    folder = args.data / "synthea-r4"
    paths = sorted(folder.glob("*.json.gz"))
    if len(paths) < 2:
        print(f"skipped: no Synthea Bundles in {folder} (the shared data is absent)")
        return 0
    warm, measured = load(paths[:1]), load(paths[1 : 1 + args.bundles])
    check_same(warm)
    rows = check_same(measured)
    names: dict[str, Extractor] = {
        "interpreter (extract_reference)": extract_reference,
        "compiled (extract)": extract,
    }
    totals = dict.fromkeys(names, 0.0)
    for _ in range(args.rounds):
        for i, start in enumerate(range(0, len(measured), CHUNK)):
            chunk = measured[start : start + CHUNK]
            order = list(names.items())
            for name, extractor in order if i % 2 == 0 else reversed(order):
                totals[name] += timed(extractor, chunk)
    n = len(measured) * args.rounds
    print(
        f"{len(measured)} Synthea resources from {min(args.bundles, len(paths) - 1)} Bundles, "
        f"{args.rounds} passes, {rows / len(measured):.1f} index rows per resource, same rows"
    )
    for name, seconds in totals.items():
        print(f"  {name:34s} {seconds / n * 1e6:7.1f} µs per resource")
    ratio = totals["interpreter (extract_reference)"] / totals["compiled (extract)"]
    print(f"  speed-up                           {ratio:7.1f}x")
    if args.by_type:
        by_type(measured, names)
    return 0


def by_type(resources: list[tuple[str, dict[str, Any]]], names: dict[str, Extractor]) -> None:
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = collections.defaultdict(list)
    for item in resources:
        groups[item[0]].append(item)
    print(f"  {'type':28s} {'count':>6s} " + " ".join(f"{n.split()[0]:>12s}" for n in names))
    for rtype, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        cells = [timed(extractor, items) / len(items) * 1e6 for extractor in names.values()]
        print(f"  {rtype:28s} {len(items):6d} " + " ".join(f"{c:10.1f}µs" for c in cells))


if __name__ == "__main__":
    sys.exit(main())
