"""Feature contributions in words, for RiskAssessment.rationale and CDS cards."""

from collections.abc import Callable, Mapping

_Describe = Callable[[float], str]


def _plural(n: float, word: str) -> str:
    k = int(n)
    return f"{k} {word}{'' if k == 1 else 's'}"


_DESCRIPTIONS: dict[str, _Describe] = {
    "age_years": lambda v: f"Age {int(v)} years",
    "sex_male": lambda v: "Male sex" if v else "Female sex",
    "length_of_stay_days": lambda v: f"Length of stay {_plural(v, 'day')}",
    "los_ge_5": lambda v: "Stay of 5 days or more" if v else "Stay shorter than 5 days",
    "acute_admission": lambda v: "Emergency admission" if v else "Non-emergency admission",
    "nonelective_admission": lambda v: (
        "Urgent or emergency admission" if v else "Elective admission"
    ),
    "charlson_index": lambda v: f"Charlson comorbidity index {int(v)}",
    "charlson_quan": lambda v: f"Charlson index (Quan 2011 weights) {int(v)}",
    "chf": lambda v: "Congestive heart failure" if v else "No heart failure recorded",
    "renal": lambda v: "Renal disease" if v else "No renal disease recorded",
    "copd": lambda v: "Chronic pulmonary disease" if v else "No chronic pulmonary disease",
    "malignancy": lambda v: "Malignancy" if v else "No malignancy recorded",
    "ed_visits_6m": lambda v: (
        f"{_plural(v, 'emergency department visit')} in the previous 6 months"
    ),
    "ed_visits_12m": lambda v: (
        f"{_plural(v, 'emergency department visit')} in the previous 12 months"
    ),
    "admissions_12m": lambda v: f"{_plural(v, 'inpatient admission')} in the previous 12 months",
    "outpatient_visits_12m": lambda v: (
        f"{_plural(v, 'outpatient visit')} in the previous 12 months"
    ),
    "hemoglobin_low": lambda v: (
        "Haemoglobin below 12 g/dL at discharge" if v else "No low haemoglobin at discharge"
    ),
    "sodium_low": lambda v: (
        "Sodium below 135 mmol/L at discharge" if v else "No low sodium at discharge"
    ),
    "hba1c_measured": lambda v: "HbA1c measured during the stay" if v else "HbA1c not measured",
    "hba1c_high": lambda v: "HbA1c 7% or higher" if v else "HbA1c not raised",
    "glucose_high": lambda v: "Glucose above 200 mg/dL" if v else "Glucose not above 200 mg/dL",
    "oncology_discharge": lambda v: (
        "Discharged from an oncology service" if v else "Not discharged from oncology"
    ),
    "procedure_during_stay": lambda v: (
        "Procedure during the stay" if v else "No procedure during the stay"
    ),
    "procedures_during_stay": lambda v: f"{_plural(v, 'procedure')} during the stay",
    "active_medications": lambda v: f"{_plural(v, 'active medication')}",
    "condition_count": lambda v: f"{_plural(v, 'recorded condition')}",
    "discharged_to_facility": lambda v: (
        "Discharged to another care facility" if v else "Not discharged to another facility"
    ),
    "discharged_home_health": lambda v: (
        "Discharged home with home health care" if v else "No home health care after discharge"
    ),
    "left_against_advice": lambda v: (
        "Left hospital against medical advice" if v else "Did not leave against advice"
    ),
}


def describe(feature: str, value: float) -> str:
    """A feature's value in words, e.g. "3 inpatient admissions in the previous 12 months"."""
    describe_fn = _DESCRIPTIONS.get(feature)
    return describe_fn(value) if describe_fn else f"{feature} = {value:g}"


def top_factors(
    values: Mapping[str, float], contributions: Mapping[str, float], limit: int = 5
) -> list[tuple[str, str, float]]:
    """(feature, description, contribution) of the strongest contributions, largest |c| first."""
    ranked = sorted(
        (item for item in contributions.items() if abs(item[1]) > 1e-6),
        key=lambda item: abs(item[1]),
        reverse=True,
    )
    return [(name, describe(name, values[name]), c) for name, c in ranked[:limit]]
