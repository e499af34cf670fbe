-- SMART Backend Services: registered clients, used client-assertion ids, the server's signing keys.
--
-- auth_client      a client registered with its public JWKS (inline) or a JWKS URL, the tenant
--                  its tokens act for and the scopes it may be granted.
-- auth_jti         every accepted client-assertion jti until the assertion expires, so a
--                  replayed assertion is refused even across workers and restarts.
-- auth_signing_key the built-in authorization server's private keys (PEM); the newest active key
--                  signs, every unretired key still verifies, which makes rotation by kid work.

CREATE TABLE auth_client (
    client_id   text PRIMARY KEY,
    tenant      text NOT NULL REFERENCES tenant(name),
    jwks        jsonb,
    jwks_url    text,
    scopes      text NOT NULL,
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK (jwks IS NOT NULL OR jwks_url IS NOT NULL)
);

CREATE TABLE auth_jti (
    client_id   text NOT NULL,
    jti         text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX auth_jti_expiry ON auth_jti (expires_at);

CREATE TABLE auth_signing_key (
    kid         text PRIMARY KEY,
    alg         text NOT NULL,
    private_pem text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);

-- AuditEvent (R4) records, kept apart from the resource store: ordinary reads, searches and
-- history never see them, no FHIR interaction can change or delete them, and erasure of a
-- patient leaves the trail (which holds references only, no patient data) in place.
CREATE TABLE audit_event (
    seq         bigserial PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    tenant      text NOT NULL,
    recorded    timestamptz NOT NULL,
    patient     text,                      -- "Patient/<id>" when the access concerned a patient
    agent       text NOT NULL,             -- the client id
    entities    text[] NOT NULL DEFAULT '{}',
    action      text NOT NULL,
    outcome     text NOT NULL,
    content     text NOT NULL
);
CREATE INDEX audit_event_time ON audit_event (tenant, recorded);
CREATE INDEX audit_event_patient ON audit_event (tenant, patient, recorded);
CREATE INDEX audit_event_agent ON audit_event (tenant, agent, recorded);
CREATE INDEX audit_event_entities ON audit_event USING gin (entities);
