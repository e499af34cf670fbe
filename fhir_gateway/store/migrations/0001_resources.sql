-- Versioned resource storage, one row per version, every row scoped by tenant.
--
-- resource          the current version of each (tenant, type, id); a delete is a version with
--                   deleted = true and no content, so history and 410 Gone both work.
-- resource_history  every version ever written, including the current one.
-- content is the JSON text as stored (client's key order and values, server-set id/meta),
-- served without re-serialization.

CREATE TABLE tenant (
    name        text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_key (
    key_hash    text PRIMARY KEY,          -- sha256 hex of the key; the key itself is never stored
    tenant      text NOT NULL REFERENCES tenant(name),
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE SEQUENCE resource_rid_seq;

CREATE TABLE resource (
    tenant        text NOT NULL,
    type          text NOT NULL,
    id            text NOT NULL,
    rid           bigint NOT NULL,         -- surrogate key shared by every index row of the resource
    version       integer NOT NULL,
    last_updated  timestamptz NOT NULL,
    deleted       boolean NOT NULL DEFAULT false,
    content       text,
    PRIMARY KEY (tenant, type, id)
);
CREATE UNIQUE INDEX resource_rid ON resource (rid);
CREATE INDEX resource_lastupdated ON resource (tenant, type, last_updated);

CREATE TABLE resource_history (
    tenant        text NOT NULL,
    type          text NOT NULL,
    id            text NOT NULL,
    version       integer NOT NULL,
    last_updated  timestamptz NOT NULL,
    deleted       boolean NOT NULL DEFAULT false,
    method        text NOT NULL,           -- POST, PUT, PATCH or DELETE, for history entries
    content       text,
    PRIMARY KEY (tenant, type, id, version)
);
CREATE INDEX resource_history_time ON resource_history (tenant, last_updated);
CREATE INDEX resource_history_type_time ON resource_history (tenant, type, last_updated);

-- Search index tables: values extracted at write time from the current version only.
-- Rows are replaced whenever the resource changes and removed when it is deleted.

CREATE TABLE idx_token (
    rid     bigint NOT NULL,
    tenant  text NOT NULL,
    type    text NOT NULL,
    param   text NOT NULL,
    system  text,
    code    text,
    text    text                           -- display/text, normalised, for :text
);
CREATE INDEX idx_token_code ON idx_token (tenant, type, param, code, system);
CREATE INDEX idx_token_rid ON idx_token (rid);

CREATE TABLE idx_string (
    rid     bigint NOT NULL,
    tenant  text NOT NULL,
    type    text NOT NULL,
    param   text NOT NULL,
    value   text NOT NULL,                 -- normalised: lower case, accents removed
    exact   text NOT NULL                  -- as written, for :exact
);
CREATE INDEX idx_string_value ON idx_string (tenant, type, param, value text_pattern_ops);
CREATE INDEX idx_string_rid ON idx_string (rid);

CREATE TABLE idx_date (
    rid     bigint NOT NULL,
    tenant  text NOT NULL,
    type    text NOT NULL,
    param   text NOT NULL,
    low     timestamptz NOT NULL,          -- inclusive lower bound of the value's range
    high    timestamptz NOT NULL           -- exclusive upper bound
);
CREATE INDEX idx_date_low ON idx_date (tenant, type, param, low);
CREATE INDEX idx_date_high ON idx_date (tenant, type, param, high);
CREATE INDEX idx_date_rid ON idx_date (rid);

CREATE TABLE idx_reference (
    rid          bigint NOT NULL,
    tenant       text NOT NULL,
    type         text NOT NULL,
    param        text NOT NULL,
    target_type  text,
    target_id    text,
    url          text                      -- absolute or canonical references kept as written
);
CREATE INDEX idx_reference_target ON idx_reference (tenant, type, param, target_id, target_type);
CREATE INDEX idx_reference_reverse ON idx_reference (tenant, target_type, target_id);
CREATE INDEX idx_reference_rid ON idx_reference (rid);

CREATE TABLE idx_quantity (
    rid     bigint NOT NULL,
    tenant  text NOT NULL,
    type    text NOT NULL,
    param   text NOT NULL,
    value   numeric NOT NULL,
    system  text,
    code    text
);
CREATE INDEX idx_quantity_value ON idx_quantity (tenant, type, param, value);
CREATE INDEX idx_quantity_rid ON idx_quantity (rid);

-- Conditional creates take an advisory lock on (tenant, type, query) inside the transaction,
-- so concurrent identical creates serialise and exactly one resource results.
