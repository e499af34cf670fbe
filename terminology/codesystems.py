"""Code system URIs and the canonical URLs of the code systems and value sets we publish.

Every other module names a code system through these constants so a typo cannot silently create
a second, empty system.
"""

from typing import Final

ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
ICD9CM: Final = "http://hl7.org/fhir/sid/icd-9-cm"
SNOMED_CT: Final = "http://snomed.info/sct"
LOINC: Final = "http://loinc.org"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM: Final = "http://unitsofmeasure.org"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_PRIORITY: Final = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
ADMIT_SOURCE: Final = "http://terminology.hl7.org/CodeSystem/admit-source"
DISCHARGE_DISPOSITION: Final = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
NUBC_DISCHARGE: Final = "http://www.nubc.org/patient-discharge"
CONDITION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
OBSERVATION_INTERPRETATION: Final = (
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
)
RISK_PROBABILITY: Final = "http://terminology.hl7.org/CodeSystem/risk-probability"
US_CORE_RACE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
CDC_RACE_ETHNICITY: Final = "urn:oid:2.16.840.1.113883.6.238"

#: Base of the canonical URLs of the code systems and value sets this project defines.
CANONICAL_BASE: Final = "https://fhir-gateway.example.org/fhir"
CHARLSON: Final = f"{CANONICAL_BASE}/CodeSystem/charlson-comorbidity"
MEDICAL_SPECIALTY: Final = f"{CANONICAL_BASE}/CodeSystem/medical-specialty"
LAB_CONCEPT: Final = f"{CANONICAL_BASE}/CodeSystem/lab-concept"
