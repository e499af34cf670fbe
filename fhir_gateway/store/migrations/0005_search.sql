-- Indexes search needs beyond the store's own (0001).
--
-- resource_search_order  the default search order and keyset paging walk (tenant, type, rid) of
--                        live rows; without it an unfiltered page sorts the whole type.
-- idx_string_exact       string :exact compares the value as written.

CREATE INDEX resource_search_order ON resource (tenant, type, rid) WHERE NOT deleted;
CREATE INDEX idx_string_exact ON idx_string (tenant, type, param, exact);
