-- Jobs: one row per job (its current state, written by its job entity only)
-- and its event log, gap-free per job by seq: the source of replay for
-- `GET /jobs/{id}/events`, SSE `Last-Event-ID` and `job:subscribe`. Both
-- under tenant row-level security. Depends only on 0001.

CREATE TABLE jobs (
  id               uuid        PRIMARY KEY,
  tenant_id        uuid        NOT NULL,
  kind             text        NOT NULL,
  status           text        NOT NULL CHECK (status IN ('queued', 'running', 'retrying',
                     'succeeded', 'failed', 'cancelled', 'timed_out')),
  input            jsonb       NOT NULL,
  created_by       uuid        NOT NULL,  -- a user (later also a service account)
  -- With an Idempotency-Key the job id is derived from (tenant, creator, key);
  -- the hash tells a retry (same body) from a reuse of the key (another body).
  idempotency_key  text,
  request_hash     bytea       NOT NULL,
  progress         double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
  step             text,
  done             bigint,
  total            bigint,
  result           jsonb,
  error            jsonb,
  attempts         integer     NOT NULL DEFAULT 0,
  cancel_requested boolean     NOT NULL DEFAULT false,
  last_seq         bigint      NOT NULL,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  started_at       timestamptz,
  finished_at      timestamptz
);
CREATE INDEX jobs_by_creation ON jobs (tenant_id, created_at DESC, id DESC);
CREATE INDEX jobs_by_kind_status ON jobs (tenant_id, kind, status);
SELECT hubbub_enable_tenant_rls('jobs');

CREATE TABLE job_events (
  tenant_id  uuid        NOT NULL,
  job_id     uuid        NOT NULL REFERENCES jobs (id),
  seq        bigint      NOT NULL,
  type       text        NOT NULL CHECK (type IN ('status', 'progress', 'step', 'log', 'output')),
  data       jsonb       NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (job_id, seq)
);
SELECT hubbub_enable_tenant_rls('job_events');
