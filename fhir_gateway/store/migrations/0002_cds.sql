-- CDS Hooks service state. Independent of the resource tables: no foreign keys into them.
--
-- cds_jti           replay cache of client JWT ids; a row lives until the token expires, so every
--                   worker process refuses a token that any other worker has already accepted.
-- cds_issued_card   every card handed out, so feedback can refuse card ids we never issued.
-- cds_feedback      what clinicians did with a card (accepted / overridden, with reasons).

CREATE TABLE cds_jti (
    iss         text NOT NULL,
    jti         text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (iss, jti)
);
CREATE INDEX cds_jti_expires ON cds_jti (expires_at);

CREATE TABLE cds_issued_card (
    uuid              uuid PRIMARY KEY,
    tenant            text NOT NULL,
    patient_id        text NOT NULL,
    encounter_id      text,
    hook_instance     text NOT NULL,
    indicator         text NOT NULL,
    model_version     text NOT NULL,
    suggestion_uuids  text[] NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cds_issued_card_tenant_time ON cds_issued_card (tenant, created_at);

CREATE TABLE cds_feedback (
    id                    bigserial PRIMARY KEY,
    tenant                text NOT NULL,
    card_uuid             uuid NOT NULL REFERENCES cds_issued_card (uuid),
    outcome               text NOT NULL CHECK (outcome IN ('accepted', 'overridden')),
    accepted_suggestions  text[] NOT NULL DEFAULT '{}',
    reason_system         text,
    reason_code           text,
    reason_display        text,
    user_comment          text,
    outcome_timestamp     timestamptz NOT NULL,
    client_iss            text NOT NULL,
    received_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cds_feedback_tenant_time ON cds_feedback (tenant, received_at);
CREATE INDEX cds_feedback_card ON cds_feedback (card_uuid);
