-- Job policies and scheduling: attempts with backoff, timeouts, priority,
-- conflict keys, run_at, the launch a job is waiting on, and recurring
-- schedules. Every jobs row is still written by its job entity only; the
-- job sweep (hubbub.jobs.sweep) reads across tenants to launch, supervise
-- and fire schedules. Depends on 0011 (jobs) and 0005 (tenants).

ALTER TABLE jobs
  ADD COLUMN priority            integer NOT NULL DEFAULT 0,
  ADD COLUMN conflict_key        text,
  ADD COLUMN run_at              timestamptz,           -- not launched before
  ADD COLUMN max_attempts        integer NOT NULL DEFAULT 1 CHECK (max_attempts >= 1),
  -- Attempts this job may reach: max_attempts, raised by each manual retry.
  ADD COLUMN attempt_budget      integer NOT NULL DEFAULT 1,
  ADD COLUMN backoff_seconds     double precision NOT NULL DEFAULT 1,
  ADD COLUMN timeout_seconds     double precision,      -- per attempt; null: none
  ADD COLUMN concurrency         integer,               -- of its kind per tenant; null: none
  ADD COLUMN launch_id           text,                  -- the launch it waits on or runs in
  ADD COLUMN launched_at         timestamptz,
  ADD COLUMN retry_at            timestamptz,           -- a retrying job's next attempt
  ADD COLUMN deadline            timestamptz,           -- the running attempt's timeout
  ADD COLUMN cancel_requested_at timestamptz,
  ADD COLUMN schedule_id         uuid,                  -- fired by this recurring schedule
  -- A private job is seen only by its creator and the tenant's owners and admins.
  ADD COLUMN private             boolean NOT NULL DEFAULT false;

-- What the sweep launches next, and what counts against a concurrency limit.
CREATE INDEX jobs_waiting ON jobs (priority DESC, created_at)
  WHERE status IN ('queued', 'retrying') AND launch_id IS NULL;
CREATE INDEX jobs_active ON jobs (tenant_id, kind)
  WHERE status = 'running' OR (status IN ('queued', 'retrying') AND launch_id IS NOT NULL);
-- One active job per conflict key (checked under an advisory lock at submit).
CREATE INDEX jobs_conflicts ON jobs (tenant_id, conflict_key)
  WHERE conflict_key IS NOT NULL AND status IN ('queued', 'running', 'retrying');

-- Recurring schedules: a cron expression evaluated in the tenant's
-- timezone; next_run_at is in Postgres, so a schedule due while every
-- gateway was down fires at the first sweep after start-up (once: missed
-- occurrences are not replayed).
CREATE TABLE job_schedules (
  id          uuid        PRIMARY KEY,
  tenant_id   uuid        NOT NULL,
  kind        text        NOT NULL,
  input       jsonb       NOT NULL,
  cron        text        NOT NULL,
  created_by  uuid        NOT NULL,
  next_run_at timestamptz NOT NULL,
  last_run_at timestamptz,
  last_job_id uuid,
  created_at  timestamptz NOT NULL
);
CREATE INDEX job_schedules_due ON job_schedules (next_run_at);
CREATE INDEX job_schedules_by_tenant ON job_schedules (tenant_id, created_at DESC, id DESC);
SELECT hubbub_enable_tenant_rls('job_schedules');

-- The job sweep sees, with hubbub.job_sweep set in its own transaction,
-- the jobs it launches or supervises, the schedules to fire and the
-- tenants' timezones; it writes only job_schedules' firing columns. Job
-- changes go through each job's entity, in its tenant's scope.
CREATE FUNCTION hubbub_job_sweep() RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT coalesce(current_setting('hubbub.job_sweep', true), '') = 'on'
$$;
CREATE POLICY job_sweep ON jobs FOR SELECT
  USING (hubbub_job_sweep() AND status IN ('queued', 'running', 'retrying'));
CREATE POLICY job_sweep ON job_schedules FOR ALL
  USING (hubbub_job_sweep()) WITH CHECK (hubbub_job_sweep());
CREATE POLICY job_sweep ON tenants FOR SELECT USING (hubbub_job_sweep());
