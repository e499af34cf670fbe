"""Charlson comorbidity categories from ICD-10-CM, ICD-9-CM and SNOMED CT codes, and the index.

ICD tables follow Quan et al. 2005 (prefix ranges); the SNOMED CT table is our own map. Weights are
either the original (Charlson 1987) or the updated ones (Quan 2011). Hierarchy rules keep only the
more severe of mild/severe liver disease, uncomplicated/complicated diabetes and
malignancy/metastatic tumour, so a patient is never counted twice for one disease.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Literal

from terminology._data import read_rows
from terminology.codesystems import ICD9CM, ICD10CM, SNOMED_CT
from terminology.errors import UnknownCode

Weights = Literal["charlson_1987", "quan_2011"]
_NONE = "none"
_ICD10_SHAPE = re.compile(r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")
_ICD9_SHAPE = re.compile(r"^([0-9]{3}|V[0-9]{2}|E[0-9]{3})(\.?[0-9]{1,2})?$")


@dataclass(frozen=True)
class Category:
    """One Charlson category with both weightings and the milder category it supersedes."""

    code: str
    label: str
    charlson_1987: int
    quan_2011: int
    supersedes: str | None

    def weight(self, weights: Weights) -> int:
        return self.charlson_1987 if weights == "charlson_1987" else self.quan_2011


@cache
def categories() -> dict[str, Category]:
    """All Charlson categories by code, in the published order."""
    return {
        row["category"]: Category(
            code=row["category"],
            label=row["label"],
            charlson_1987=int(row["charlson_1987"]),
            quan_2011=int(row["quan_2011"]),
            supersedes=row["supersedes"] or None,
        )
        for row in read_rows("charlson_categories.csv")
    }


@cache
def _ranges(name: str) -> tuple[tuple[str, str, str], ...]:
    return tuple((r["from"], r["to"], r["category"]) for r in read_rows(name))


@cache
def snomed_map() -> dict[str, tuple[str | None, str]]:
    """SNOMED CT code → (category or None when reviewed as no comorbidity, our own label)."""
    out: dict[str, tuple[str | None, str]] = {}
    for row in read_rows("charlson_snomed.csv"):
        cat = row["category"]
        out[row["code"]] = (None if cat == _NONE else cat, row["label"])
    return out


def _match(table: str, code: str) -> str | None:
    key = code.replace(".", "").upper()
    for low, high, category in _ranges(table):
        if key[: len(low)] >= low and key[: len(high)] <= high:
            return category
    return None


def normalize_icd9(code: str) -> str:
    """Restore the leading zeros data sets often strip (``8`` → ``008``, ``38.2`` → ``038.2``)."""
    head, dot, tail = code.strip().partition(".")
    if head.isdigit() and len(head) < 3:
        head = head.zfill(3)
    return f"{head}{dot}{tail}"


@lru_cache(maxsize=65536)
def category_of(system: str, code: str) -> str | None:
    """The Charlson category of one code, None when the code is known but not a comorbidity.

    Raises UnknownCode for a code system we do not map, a malformed ICD code, or a SNOMED CT code
    that nobody has reviewed yet: guessing "no comorbidity" there would understate risk silently.
    """
    if system == ICD10CM:
        if not _ICD10_SHAPE.match(code.upper()):
            raise UnknownCode(system, code, "not a well-formed ICD-10-CM code")
        return _match("charlson_icd10cm.csv", code)
    if system == ICD9CM:
        norm = normalize_icd9(code).upper()
        if not _ICD9_SHAPE.match(norm):
            raise UnknownCode(system, code, "not a well-formed ICD-9-CM code")
        return _match("charlson_icd9cm.csv", norm)
    if system == SNOMED_CT:
        entry = snomed_map().get(code)
        if entry is None:
            raise UnknownCode(system, code, "SNOMED CT code not in the Charlson map")
        return entry[0]
    raise UnknownCode(system, code, "code system has no Charlson map")


def apply_hierarchy(found: Iterable[str]) -> frozenset[str]:
    """Drop each milder category whose severe form is also present."""
    present = set(found)
    table = categories()
    for cat in list(present):
        superseded = table[cat].supersedes
        if superseded is not None:
            present.discard(superseded)
    return frozenset(present)


def charlson_index(found: Iterable[str], weights: Weights = "charlson_1987") -> int:
    """Sum of the weights of the categories present, after the hierarchy rules."""
    table = categories()
    return sum(table[c].weight(weights) for c in apply_hierarchy(found))
