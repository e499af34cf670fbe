-- Ingest storage (see docs/adr/0006-ingest-storage.md).
--
-- The current version of a resource is stored once, in `resource`; `resource_history` keeps only
-- the versions that have been superseded.
--
-- A create used to write its content twice, which made the history row, its content and its three
-- index entries about a seventh of what PostgreSQL spent on ingest. Now a version moves into history
-- when the next one replaces it; history and vread read both tables.
--
-- resource.method        how the current version was written (POST, PUT, PATCH or DELETE), which
--                        history reports; a row written without it is a create.
-- resource_recent        system-level history of current versions (newest first, all types);
--                        type-level history uses resource_lastupdated.

ALTER TABLE resource ADD COLUMN method text NOT NULL DEFAULT 'POST';

UPDATE resource r SET method = h.method
FROM resource_history h
WHERE h.tenant = r.tenant AND h.type = r.type AND h.id = r.id AND h.version = r.version
  AND h.method <> 'POST';

DELETE FROM resource_history h
USING resource r
WHERE h.tenant = r.tenant AND h.type = r.type AND h.id = r.id AND h.version = r.version;

CREATE INDEX resource_recent ON resource (tenant, last_updated);

-- One index over reference rows instead of two. Every reference search names the target id
-- (search by reference, chains, _has, _revinclude, the compartment), so (tenant, target_id,
-- target_type, type, param) serves them all with equality on each column, and the reverse
-- lookup (tenant, target_type, target_id) with its prefix. References kept as written (absolute
-- URLs, canonicals) are searched by url; only those rows carry one, so a partial index is small.
DROP INDEX idx_reference_target;
DROP INDEX idx_reference_reverse;
CREATE INDEX idx_reference_target ON idx_reference (tenant, target_id, target_type, type, param);
CREATE INDEX idx_reference_url ON idx_reference (tenant, type, param, url) WHERE url IS NOT NULL;
