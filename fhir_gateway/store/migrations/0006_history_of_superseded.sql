-- The current version of a resource is stored once, in `resource`; `resource_history` keeps only
-- the versions that have been superseded (see docs/adr/0006-current-version-stored-once.md).
--
-- A create used to write its content twice, which made the history row, its content and its three
-- index entries a quarter of what PostgreSQL spends on ingest. Now a version moves into history
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
