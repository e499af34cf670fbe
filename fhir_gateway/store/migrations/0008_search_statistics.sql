-- Planner statistics for the index tables.
--
-- A search that combines conditions (Observation?patient=..&code=..&date=..) is fast only if
-- PostgreSQL starts from the rarer one. With default statistics it could not tell: a LOINC code
-- outside the 100 most common values was estimated from the column's distinct count, and that
-- estimate was multiplied by the selectivities of type, param and system as if they were
-- independent of the code (a code implies its param and system). At 1.5 million resources it
-- estimated 183 rows for a code that has 1,287 and started there instead of at the patient's 104.
--
-- Functional-dependency statistics tell the planner which columns follow from which, and larger
-- samples keep every common code, and a patient's share of the reference rows, in the
-- most-common-value lists. Dependencies rather than multi-column MCV lists: those gave the same
-- estimates but made every plan over these tables several times slower to make.

ALTER TABLE idx_token ALTER COLUMN code SET STATISTICS 1000;
CREATE STATISTICS idx_token_dependencies (dependencies) ON type, param, system, code
    FROM idx_token;

ALTER TABLE idx_reference ALTER COLUMN target_id SET STATISTICS 1000;
CREATE STATISTICS idx_reference_dependencies (dependencies) ON type, param, target_type
    FROM idx_reference;

CREATE STATISTICS idx_quantity_dependencies (dependencies) ON type, param, system, code
    FROM idx_quantity;
