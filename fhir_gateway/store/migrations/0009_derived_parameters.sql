-- Search parameters answered from other parameters' rows (see
-- docs/adr/0008-derived-search-parameters.md and fhir_gateway.search.derived).
--
-- A search on Observation?patient=x now reads the 'subject' rows that point at a Patient, one on
-- Observation?combo-code=y the 'code' and 'component-code' rows; new writes no longer store rows
-- for 'patient', 'combo-code' and the like.
--
-- A reference row now records the type its Reference declares when the reference text names
-- none (an unresolved urn:uuid with "type": "Patient"); rows written before did not. Where such a
-- source row has a stored restricted row beside it (same resource, same reference), the reference
-- was to that type: record it, so the search that now reads the source row still finds it.
--
-- The rows stored for derived parameters stay: no query of this release reads them, each goes
-- when its resource is next written or deleted, and replicas of the previous release, which run
-- beside this one during a rolling upgrade, still search them. The list below is the one
-- fhir_gateway.search.derived computes from the R4 definitions (a test holds the two equal).

UPDATE idx_reference s SET target_type = v.target
FROM (VALUES
    ('CarePlan', 'patient', 'subject', 'Patient'),
    ('CareTeam', 'patient', 'subject', 'Patient'),
    ('Condition', 'patient', 'subject', 'Patient'),
    ('DiagnosticReport', 'patient', 'subject', 'Patient'),
    ('DocumentReference', 'patient', 'subject', 'Patient'),
    ('Encounter', 'patient', 'subject', 'Patient'),
    ('Encounter', 'practitioner', 'participant', 'Practitioner'),
    ('ImagingStudy', 'patient', 'subject', 'Patient'),
    ('MedicationAdministration', 'patient', 'subject', 'Patient'),
    ('MedicationRequest', 'patient', 'subject', 'Patient'),
    ('Observation', 'patient', 'subject', 'Patient'),
    ('Procedure', 'patient', 'subject', 'Patient'),
    ('Provenance', 'patient', 'target', 'Patient'),
    ('RiskAssessment', 'patient', 'subject', 'Patient')
) AS v (type, derived, source, target), idx_reference d
WHERE s.type = v.type AND s.param = v.source AND s.target_type IS NULL AND s.url IS NOT NULL
  AND d.rid = s.rid AND d.type = v.type AND d.param = v.derived AND d.url = s.url;
