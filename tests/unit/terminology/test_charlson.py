"""Charlson categories from each code system, hierarchy rules and unknown-code reporting."""

import pytest

from terminology import UnknownCode
from terminology.charlson import apply_hierarchy, categories, category_of, charlson_index
from terminology.codesystems import ICD9CM, ICD10CM, LOINC, SNOMED_CT


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("I21.4", "mi"),
        ("I25.2", "mi"),
        ("I50.9", "chf"),
        ("I42.7", "chf"),
        ("I63.9", "cvd"),
        ("G30.9", "dementia"),
        ("J44.1", "copd"),
        ("M05.79", "rheumatic"),
        ("K25.4", "pud"),
        ("B18.2", "mild_liver"),
        ("E11.9", "diabetes"),
        ("E11.65", "diabetes"),
        ("E11.22", "diabetes_complicated"),
        ("G81.91", "hemiplegia"),
        ("N18.6", "renal"),
        ("C50.911", "malignancy"),
        ("K70.4", "severe_liver"),
        ("C78.00", "metastatic"),
        ("B20", "hiv"),
        ("J18.9", None),
        ("C44.91", None),  # non-melanoma skin cancer is outside "any malignancy"
    ],
)
def test_icd10cm_categories_follow_quan_2005(code: str, expected: str | None) -> None:
    assert category_of(ICD10CM, code) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("410.71", "mi"),
        ("428", "chf"),
        ("428.0", "chf"),
        ("402.01", "chf"),
        ("434.91", "cvd"),
        ("496", "copd"),
        ("250.01", "diabetes"),
        ("250.83", "diabetes"),
        ("250.4", "diabetes_complicated"),
        ("250.61", "diabetes_complicated"),
        ("585.9", "renal"),
        ("V42.0", "renal"),
        ("174.9", "malignancy"),
        ("196.0", "metastatic"),
        ("572.3", "severe_liver"),
        ("42", "hiv"),  # leading zero restored: 042
        ("8", None),  # 008, intestinal infection
        ("276", None),
        ("V57", None),
    ],
)
def test_icd9cm_categories_follow_deyo_quan(code: str, expected: str | None) -> None:
    assert category_of(ICD9CM, code) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("88805009", "chf"),
        ("44054006", "diabetes"),
        ("368581000119106", "diabetes_complicated"),
        ("26929004", "dementia"),
        ("94260004", "metastatic"),
        ("38341003", None),
    ],
)
def test_snomed_map_assigns_categories(code: str, expected: str | None) -> None:
    assert category_of(SNOMED_CT, code) == expected


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (SNOMED_CT, "1234567"),  # not reviewed: must not be read as "no comorbidity"
        (ICD10CM, "not-a-code"),
        (ICD9CM, "25x.1"),
        (LOINC, "718-7"),  # a system without a Charlson map
    ],
)
def test_unknown_codes_are_reported(system: str, code: str) -> None:
    with pytest.raises(UnknownCode) as info:
        category_of(system, code)
    assert info.value.system == system
    assert info.value.code == code


def test_hierarchy_keeps_only_the_severe_form() -> None:
    assert apply_hierarchy({"diabetes", "diabetes_complicated"}) == {"diabetes_complicated"}
    assert apply_hierarchy({"mild_liver", "severe_liver", "chf"}) == {"severe_liver", "chf"}
    assert apply_hierarchy({"malignancy", "metastatic"}) == {"metastatic"}
    assert apply_hierarchy({"malignancy"}) == {"malignancy"}


@pytest.mark.parametrize(
    ("found", "original", "quan"),
    [
        ({"diabetes", "diabetes_complicated"}, 2, 1),
        ({"mild_liver", "severe_liver"}, 3, 4),
        ({"malignancy", "metastatic"}, 6, 6),
        ({"mi", "chf", "pvd", "cvd"}, 4, 2),
        ({"dementia", "hiv", "renal"}, 9, 7),
        (set(), 0, 0),
    ],
)
def test_index_with_original_and_updated_weights(found: set[str], original: int, quan: int) -> None:
    assert charlson_index(found, "charlson_1987") == original
    assert charlson_index(found, "quan_2011") == quan


def test_all_seventeen_categories_are_defined() -> None:
    assert len(categories()) == 17
