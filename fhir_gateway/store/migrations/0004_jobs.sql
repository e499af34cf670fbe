-- Discharges waiting to be scored, written in the same transaction as the Encounter, so a
-- discharge is never lost between the write and the model, even across restarts.
CREATE TABLE scoring_queue (
    tenant        text NOT NULL,
    encounter_id  text NOT NULL,
    patient_id    text NOT NULL,
    enqueued_at   timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    PRIMARY KEY (tenant, encounter_id)
);
CREATE INDEX scoring_queue_age ON scoring_queue (enqueued_at);

-- Asynchronous operation jobs (FHIR asynchronous request pattern); any worker can answer a poll.
CREATE TABLE async_job (
    id          text PRIMARY KEY,
    tenant      text NOT NULL,
    kind        text NOT NULL,
    status      text NOT NULL,              -- queued | running | done | failed | cancelled
    done        integer NOT NULL DEFAULT 0,
    total       integer,
    request     text NOT NULL,
    result      text,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX async_job_tenant ON async_job (tenant, created_at);
