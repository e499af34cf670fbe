"""$lookup / $validate-code backing functions and the published data files."""

from importlib import resources

import pytest

from terminology import UnknownCode, UnknownValueSet, lookup, validate_code
from terminology.api import CODE_SYSTEMS, lab_concepts, loinc_codes_for
from terminology.codesystems import (
    ACT_CODE,
    CANONICAL_BASE,
    CHARLSON,
    ICD10CM,
    LOINC,
    MEDICAL_SPECIALTY,
    RXNORM,
    SNOMED_CT,
)
from terminology.valuesets import (
    EMERGENCY_ENCOUNTER_CLASS,
    INPATIENT_ENCOUNTER_CLASS,
    ONCOLOGY_SERVICE,
    value_sets,
)


def test_lookup_returns_display_and_category() -> None:
    concept = lookup(SNOMED_CT, "88805009")
    assert concept.category == "chf"
    assert concept.display
    icd = lookup(ICD10CM, "I50.9")
    assert icd.category == "chf"
    assert icd.properties["charlson-category"] == "chf"


def test_lookup_of_a_charlson_category_gives_both_weights() -> None:
    concept = lookup(CHARLSON, "metastatic")
    assert concept.display == "Metastatic solid tumour"
    assert concept.properties["weight-charlson-1987"] == "6"
    assert concept.properties["supersedes"] == "malignancy"


@pytest.mark.parametrize(
    ("system", "code", "concept"),
    [(LOINC, "718-7", "hemoglobin"), (LOINC, "2947-0", "sodium"), (LOINC, "2951-2", "sodium")],
)
def test_lab_concepts_by_loinc(system: str, code: str, concept: str) -> None:
    assert lookup(system, code).properties["concept"] == concept


def test_lab_concept_groups() -> None:
    assert set(loinc_codes_for("sodium")) == {"2951-2", "2947-0"}
    assert set(loinc_codes_for("glucose")) == {"2345-7", "2339-0"}
    assert {"718-7", "4548-4"} <= set(lab_concepts())


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (LOINC, "0000-0"),
        (RXNORM, "1"),
        (SNOMED_CT, "42"),
        (CHARLSON, "gout"),
        (MEDICAL_SPECIALTY, "cardiology"),
        ("http://example.org/unknown", "x"),
    ],
)
def test_lookup_unknown_raises(system: str, code: str) -> None:
    with pytest.raises(UnknownCode):
        lookup(system, code)


def test_rxnorm_subset() -> None:
    assert lookup(RXNORM, "6809").display == "metformin"


def test_validate_code_membership() -> None:
    assert validate_code(INPATIENT_ENCOUNTER_CLASS, ACT_CODE, "IMP").result
    assert validate_code(INPATIENT_ENCOUNTER_CLASS, ACT_CODE, "NONAC").result
    outcome = validate_code(INPATIENT_ENCOUNTER_CLASS, ACT_CODE, "AMB")
    assert not outcome.result
    assert outcome.message and "AMB" in outcome.message
    assert validate_code(EMERGENCY_ENCOUNTER_CLASS, ACT_CODE, "EMER").result
    assert validate_code(ONCOLOGY_SERVICE, MEDICAL_SPECIALTY, "hematology-oncology").result
    assert validate_code(INPATIENT_ENCOUNTER_CLASS + "|1.0", ACT_CODE, "ACUTE").result


def test_validate_code_unknown_value_set() -> None:
    with pytest.raises(UnknownValueSet):
        validate_code("http://example.org/ValueSet/nope", ACT_CODE, "IMP")


def test_canonical_urls_are_ours_and_unique() -> None:
    urls = [vs.url for vs in value_sets().values()] + [cs.url for cs in CODE_SYSTEMS]
    assert len(urls) == len(set(urls))
    ours = [u for u in urls if u.startswith(CANONICAL_BASE)]
    assert len(ours) >= len(value_sets()) + 2


def test_every_data_file_cites_its_source() -> None:
    folder = resources.files("terminology").joinpath("data")
    names = [p.name for p in folder.iterdir() if p.name.endswith(".csv")]
    assert len(names) >= 6
    for name in names:
        first = folder.joinpath(name).read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("#"), f"{name} lacks a citation comment"


def test_validate_code_reports_a_differing_display() -> None:
    outcome = validate_code(INPATIENT_ENCOUNTER_CLASS, ACT_CODE, "IMP", display="Hospital stay")
    assert outcome.result
    assert outcome.message and "differs" in outcome.message
    assert (
        validate_code(
            INPATIENT_ENCOUNTER_CLASS, ACT_CODE, "IMP", display="Inpatient encounter"
        ).message
        is None
    )


def test_code_system_registry() -> None:
    from terminology import code_system

    assert code_system(LOINC).content == "fragment"
    assert code_system(CHARLSON).content == "complete"
    with pytest.raises(UnknownCode):
        code_system("http://example.org/cs")
