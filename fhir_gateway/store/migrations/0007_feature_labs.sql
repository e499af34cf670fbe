-- The lab rows the readmission model reads, indexed on their own.
--
-- idx_token_feature_lab  the code rows of Observations whose code is one of the labs the model's
--                        features read (haemoglobin 718-7; sodium 2951-2, 2947-0; HbA1c 4548-4;
--                        glucose 2345-7, 2339-0: risk_model.features.FEATURE_OBSERVATION_CODES).
--                        The feature fetch asks "which of this patient's Observations are such a
--                        lab" once per scoring; through this index that is an index-only look-up
--                        in a few pages instead of reading every token row of every Observation
--                        of the patient. PostgreSQL maintains it on every idx_token write; rows
--                        with other codes never enter it. If the model reads other codes, the
--                        fetch stays correct (it falls back to idx_token_rid) until a migration
--                        replaces this index with one for the new list.

CREATE INDEX idx_token_feature_lab ON idx_token (rid)
    WHERE type = 'Observation' AND param = 'code'
      AND code IN ('2339-0', '2345-7', '2947-0', '2951-2', '4548-4', '718-7');
