"""LACE and HOSPITAL scores from the same feature vector the model reads.

They are the published baselines the model must beat, and are reported beside every prediction.

LACE: van Walraven C et al. CMAJ 2010;182(6):551-557. L (length of stay, days): <1 → 0, 1 → 1,
2 → 2, 3 → 3, 4-6 → 4, 7-13 → 5, ≥14 → 7; A (acute/emergent admission) → 3; C (Charlson index):
0-3 → same points, ≥4 → 5; E (ED visits in previous 6 months): 0-3 → same, ≥4 → 4. Total 0-19;
bands: 0-4 low, 5-9 moderate, ≥10 high.

HOSPITAL: Donzé J et al. JAMA Intern Med 2013;173(8):632-638 (bands: Donzé et al. J Gen Intern Med
2016;31(8):909-912 use 0-4 low, 5-6 intermediate, ≥7 high). H hemoglobin < 12 g/dL at discharge
→ 1; O discharge from oncology → 2; S sodium < 135 mmol/L at discharge → 1; P procedure during
stay → 1; I urgent/emergent index admission → 1; T admissions in previous 12 months: 0-1 → 0,
2-5 → 2, >5 → 5; L length of stay ≥ 5 days → 2. Total 0-13.
"""

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ScoreResult:
    """A clinical score's total, its own published band and the points of each component."""

    name: str
    total: int
    band: str
    components: Mapping[str, int]


def _lace_los_points(days: int) -> int:
    if days < 1:
        return 0
    if days <= 3:
        return days
    if days <= 6:
        return 4
    if days <= 13:
        return 5
    return 7


def lace(features: Mapping[str, float]) -> ScoreResult:
    """LACE index from length of stay, acute admission, Charlson index and ED visits."""
    charlson = int(features["charlson_index"])
    ed = int(features["ed_visits_6m"])
    components = {
        "L": _lace_los_points(int(features["length_of_stay_days"])),
        "A": 3 if features["acute_admission"] else 0,
        "C": charlson if charlson <= 3 else 5,
        "E": min(ed, 4),
    }
    total = sum(components.values())
    band = "low" if total <= 4 else "moderate" if total <= 9 else "high"
    return ScoreResult("LACE", total, band, components)


def hospital(features: Mapping[str, float]) -> ScoreResult:
    """HOSPITAL score from the HOSPITAL components of a feature vector."""
    admissions = int(features["admissions_12m"])
    components = {
        "H": 1 if features["hemoglobin_low"] else 0,
        "O": 2 if features["oncology_discharge"] else 0,
        "S": 1 if features["sodium_low"] else 0,
        "P": 1 if features["procedure_during_stay"] else 0,
        "I": 1 if features["nonelective_admission"] else 0,
        "T": 0 if admissions <= 1 else 2 if admissions <= 5 else 5,
        "L": 2 if features["length_of_stay_days"] >= 5 else 0,
    }
    total = sum(components.values())
    band = "low" if total <= 4 else "moderate" if total <= 6 else "high"
    return ScoreResult("HOSPITAL", total, band, components)
