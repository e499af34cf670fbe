"""The compiled extractors give exactly the rows of the reference FHIRPath interpreter.

``extract`` (generated code per type) must agree with ``extract_reference`` (the step interpreter)
row for row, in order, on real Synthea data, on the search tests' own clinical data set, and on
resources generated from every parameter path of every type with odd and malformed value shapes.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from fhir_gateway.search.compile_extract import extractor, extractor_source
from fhir_gateway.search.definitions import COLUMN_PARAMS, search_parameters, searchable_types
from fhir_gateway.search.fhirpath import (
    CHOICE_TYPES,
    Extension,
    Field,
    WhereEquals,
    WhereResolveIs,
    paths_for_type,
)
from fhir_gateway.search.fhirpath import (
    Path as FhirPath,
)
from fhir_gateway.search.index import extract, extract_reference
from tests.conftest import SHARED_DATA
from tests.search.dataset import resources as dataset_resources


def _outcome(function: Any, rtype: str, resource: Mapping[str, Any]) -> str:
    """The rows as text (types, tzinfo and order included), or the exception raised."""
    try:
        return repr(function(rtype, resource))
    except Exception as exc:  # both sides must fail alike on values they cannot convert
        return f"raised {type(exc).__name__}"


def assert_same(rtype: str, resource: Mapping[str, Any]) -> None:
    expected = _outcome(extract_reference, rtype, resource)
    actual = _outcome(extract, rtype, resource)
    assert actual == expected, f"{rtype}: {json.dumps(resource, default=str)[:2000]}"


@pytest.mark.shared_data
def test_same_rows_on_every_synthea_resource() -> None:
    folder = SHARED_DATA / "synthea-r4"
    paths = sorted(folder.glob("*.json.gz")) if folder.is_dir() else []
    if not paths:
        pytest.skip("shared data not available (synthea-r4): the clone has no ../shared")
    count = 0
    for path in paths:
        bundle = json.loads(gzip.decompress(path.read_bytes()))
        for entry in bundle["entry"]:
            resource = entry["resource"]
            assert_same(resource["resourceType"], resource)
            count += 1
    assert count > 10_000


def test_same_rows_on_the_search_data_set() -> None:
    items = dataset_resources()
    assert items
    for resource in items.values():
        assert_same(resource["resourceType"], resource)


def test_rows_of_hand_written_edge_cases() -> None:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1-8", "display": "  A  b "}]},
        "effectiveDateTime": "2020-02-28T10:15:30.25+02:00",
        "effectivePeriod": {"start": "2020"},
        "valueQuantity": {"value": 3, "unit": "mg", "code": "mg"},
        "value": {"text": "plain value without a choice suffix"},
        "component": [
            {"code": {"text": "Ünïcode"}, "valueCodeableConcept": {"coding": [None, "x"]}},
            {"code": {"text": "\u0301"}, "valueQuantity": {"value": 1.5}},
            "not an object",
            None,
        ],
        "subject": {"reference": "Patient/p1/_history/2"},
        "performer": [{"reference": "#c"}, {"reference": ""}, {"type": "Patient"}, "Patient/x"],
        "meta": {"tag": [{"code": "t"}, {"code": "t"}], "profile": ["http://p", "http://p"]},
    }
    for resource in (
        obs,
        {**obs, "effectiveDateTime": "2020-13-01"},
        {"resourceType": "X"},
        MappingProxyType(obs),  # any Mapping, not only dict
    ):
        assert_same("Observation", resource)
    rows = extract("Observation", obs)
    # Plain ``effective`` is a choice element; both keys count, in the resource's order.
    assert [d[0] for d in rows.date] == ["date", "date"]
    assert rows.token.count(("_tag", None, "t", None)) == 1
    patient = {
        "resourceType": "Patient",
        "deceasedDateTime": "2001-05",
        "telecom": [{"system": "phone", "value": 5551000}, {"system": "email", "value": "a@b"}],
        "name": [{"given": "Ann", "family": "Lee"}, {"text": "   "}],
        "extension": [{"url": "http://x", "valueString": "ignored"}],
    }
    assert_same("Patient", patient)
    assert ("phone", "phone", "5551000", None) in extract("Patient", patient).token


def test_unknown_types_share_one_empty_extractor() -> None:
    assert extractor("NoSuchType") is extractor("AnotherUnknownType")
    assert extractor("Observation") is extractor("Observation")
    assert extractor("Observation") is not extractor("NoSuchType")


def test_generated_source_reads_top_level_elements_once() -> None:
    source = extractor_source("Observation")
    assert source.count("r.get('component', M)") == 1
    assert "valueQuantity" in source


# --------------------------------------------------------------------------- generated resources

ROUNDS = 60
_LEAVES: tuple[Any, ...] = (
    "2019-02-16T01:23:45-05:00",
    "2019-02-16T01:23:45.123Z",
    "2019-02",
    "1990-01-01",
    "2019-02-30",
    "  ",
    "Straße Ñ",
    "Patient/123",
    "urn:uuid:0f2c",
    "http://example.org/fhir/Practitioner/9/_history/1",
    0,
    17,
    2.5,
    True,
    False,
    None,
    {"coding": [{"system": "urn:s", "code": "c", "display": "Dïsplay"}], "text": "Text"},
    {"text": "only text"},
    {"system": "urn:s", "code": "c2"},
    {"system": "urn:id", "value": "v1", "type": {"text": "MRN"}},
    {"system": "phone", "value": "555"},
    {"family": "Núñez", "given": ["José", 3], "prefix": "Dr", "text": "J N"},
    {"line": ["1 Main St", ""], "city": "Heidelberg", "postalCode": 69120},
    {"value": 7.25, "unit": "mmol/l", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
    {"value": "7", "unit": "u"},
    {"start": "2010", "end": "2011-05-06T10:00:00+01:00"},
    {"end": "not a date"},
    {"event": ["2020-01-01", 5, "bad"]},
    {"reference": "Patient/p1"},
    {"reference": "Group/g1/_history/4"},
    {"reference": "#contained"},
    {"type": "Practitioner", "display": "no reference"},
    {"url": "http://x", "valueCode": "ext"},
)


def _leaf(rng: random.Random) -> Any:
    if rng.random() < 0.2:
        return [rng.choice(_LEAVES) for _ in range(rng.randint(0, 3))]
    return rng.choice(_LEAVES)


def _key(rng: random.Random, step: Field) -> str:
    """The JSON key a value for ``step`` goes under: sometimes a choice or cast variant."""
    roll = rng.random()
    if step.as_type is not None:
        return step.name + step.as_type if roll < 0.7 else step.name
    if roll < 0.2:
        return step.name + rng.choice(sorted(CHOICE_TYPES))
    return step.name


def _insert(rng: random.Random, node: dict[str, Any], steps: list[Any]) -> None:
    """Puts a value where ``steps`` lead, building (or reusing) the objects on the way."""
    if not steps:
        return
    step, rest = steps[0], steps[1:]
    if isinstance(step, WhereEquals):
        node[step.key] = step.literal if rng.random() < 0.7 else "other"
        _insert(rng, node, rest)
    elif isinstance(step, WhereResolveIs):
        target = step.resource_type if rng.random() < 0.7 else "Device"
        node["reference"] = f"{target}/r{rng.randint(1, 3)}"
        _insert(rng, node, rest)
    elif isinstance(step, Extension):
        ext = {"url": step.url if rng.random() < 0.8 else "http://other"}
        ext["value" + rng.choice(["String", "Coding", "Reference"])] = _leaf(rng)
        node.setdefault("extension", []).append(ext)
    else:
        key = _key(rng, step)
        if not rest:
            node[key] = _leaf(rng)
            return
        existing = node.get(key)
        if isinstance(existing, list) and existing and isinstance(existing[-1], dict):
            child = existing[-1]
        elif isinstance(existing, dict):
            child = existing
        else:
            child = {}
            node[key] = [child, rng.choice(_LEAVES)] if rng.random() < 0.3 else child
        _insert(rng, child, rest)


def _paths(rtype: str) -> list[FhirPath]:
    return [
        path
        for code, definition in search_parameters(rtype).items()
        if code not in COLUMN_PARAMS
        for path in paths_for_type(definition.expression, rtype)
    ]


def _generated(rtype: str, rng: random.Random) -> Iterator[dict[str, Any]]:
    paths = _paths(rtype)
    for _ in range(ROUNDS):
        resource: dict[str, Any] = {"resourceType": rtype}
        for path in rng.sample(paths, k=min(len(paths), rng.randint(1, 12))):
            _insert(rng, resource, list(path.steps))
        yield resource


def test_same_rows_on_generated_resources_of_every_type() -> None:
    rng = random.Random(20261123)
    types = sorted(searchable_types())
    assert len(types) > 20
    checked = 0
    for rtype in types:
        for resource in _generated(rtype, rng):
            assert_same(rtype, resource)
            checked += 1
    assert checked == ROUNDS * len(types)


def test_every_type_compiles(tmp_path: Path) -> None:
    for rtype in sorted(searchable_types()):
        source = extractor_source(rtype)
        compile(source, rtype, "exec")
        (tmp_path / f"{rtype}.py").write_text(source, encoding="utf-8")


# --------------------------------------------------------------------------- dates


def _date_texts(rng: random.Random) -> Iterator[str]:
    """Instants and dates near every validity edge, in the shapes the fast parser takes."""
    years = ["0001", "1970", "2020", "2024", "9999", "20a0", "٢٠٢٠"]
    months = ["01", "02", "12", "00", "13"]
    days = ["01", "28", "29", "30", "31", "00", "32"]
    hours = ["00", "09", "23", "24", "25"]
    minutes = ["00", "59", "60"]
    seconds = ["00", "59", "60"]
    fractions = ["", ".1", ".25", ".123", ".123456", ".1234567", "."]
    zones = [
        "Z",
        "+00:00",
        "-00:00",
        "+02:00",
        "-05:00",
        "+14:00",
        "+23:59",
        "+24:00",
        "+05:99",
        "",
    ]
    for _ in range(4000):
        date = f"{rng.choice(years)}-{rng.choice(months)}-{rng.choice(days)}"
        yield date
        yield (
            f"{date}T{rng.choice(hours)}:{rng.choice(minutes)}:{rng.choice(seconds)}"
            f"{rng.choice(fractions)}{rng.choice(zones)}"
        )
    yield from ["2020", "2020-02", " 2020-02-28 ", "2020-02-28T10:15", "2020-02-28T10:15:30z"]


def _parsed(parse: Any, text: str) -> str:
    try:
        return repr(parse(text))
    except (ValueError, OverflowError) as exc:
        return f"raised {type(exc).__name__}"


def test_date_fast_paths_agree_with_the_general_parser() -> None:
    from fhir_gateway.search.values import _general_date_range, date_range

    texts = sorted(set(_date_texts(random.Random(7))))
    assert len(texts) > 2000
    valid = 0
    for text in texts:
        expected = _parsed(_general_date_range, text)
        assert _parsed(date_range, text) == expected, text
        valid += not expected.startswith("raised")
    assert 300 < valid < len(texts)
