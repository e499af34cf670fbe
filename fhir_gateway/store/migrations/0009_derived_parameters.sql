-- Search parameters answered from other parameters' rows are no longer stored
-- (see docs/adr/0008-derived-search-parameters.md and fhir_gateway.search.derived).
--
-- A search on Observation?patient=x reads the 'subject' rows that point at a Patient, one on
-- Observation?combo-code=y the 'code' and 'component-code' rows. The rows below repeated those,
-- about a fifth of all index rows; new writes no longer produce them. The list is the one
-- fhir_gateway.search.derived computes from the R4 definitions (a test holds the two equal).

DELETE FROM idx_quantity WHERE (type, param) IN (VALUES
    ('Observation', 'combo-value-quantity'));

DELETE FROM idx_reference WHERE (type, param) IN (VALUES
    ('CarePlan', 'patient'),
    ('CareTeam', 'patient'),
    ('Condition', 'patient'),
    ('DiagnosticReport', 'patient'),
    ('DocumentReference', 'patient'),
    ('Encounter', 'patient'),
    ('Encounter', 'practitioner'),
    ('ImagingStudy', 'patient'),
    ('MedicationAdministration', 'patient'),
    ('MedicationRequest', 'patient'),
    ('Observation', 'patient'),
    ('Procedure', 'patient'),
    ('Provenance', 'patient'),
    ('RiskAssessment', 'patient'));

DELETE FROM idx_token WHERE (type, param) IN (VALUES
    ('Observation', 'combo-code'),
    ('Observation', 'combo-data-absent-reason'),
    ('Observation', 'combo-value-concept'));
