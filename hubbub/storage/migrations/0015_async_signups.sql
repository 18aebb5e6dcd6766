-- Async signups (POST /api/v1/auth/signup/async, job kind tenant.provision).
-- Platform rows: tenant_id is always NULL (the tenant does not exist when
-- the signup is filed), so under the tenant policy no tenant's scope sees
-- them, only the no-tenant scope of the gateway and the job's handler.
-- Depends on 0001, 0011.

-- What the provisioning job needs that must not sit in the job row: the
-- password's hash (cleared once the account exists) and the device the
-- first session is opened for. The job's own input names the ids only.
CREATE TABLE account_signups (
  job_id          uuid        PRIMARY KEY,
  tenant_id       uuid        CHECK (tenant_id IS NULL),
  user_id         uuid        NOT NULL,   -- chosen up front: a retried run finds its account
  new_tenant_id   uuid        NOT NULL,   -- likewise its tenant
  email           text        NOT NULL,
  password_hash   text,
  device          text        NOT NULL,
  ip              text,
  -- With an Idempotency-Key a retried POST finds its signup by (email, key).
  idempotency_key text,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX account_signups_by_key ON account_signups (lower(email), idempotency_key)
  WHERE idempotency_key IS NOT NULL;
SELECT hubbub_enable_tenant_rls('account_signups');

-- The tokens that open a signup job's stream without a bearer token: only
-- their SHA-256 is kept, and each expires.
CREATE TABLE signup_streams (
  token_hash bytea       PRIMARY KEY,
  tenant_id  uuid        CHECK (tenant_id IS NULL),
  job_id     uuid        NOT NULL REFERENCES account_signups (job_id),
  expires_at timestamptz NOT NULL
);
CREATE INDEX signup_streams_expiry ON signup_streams (expires_at);
SELECT hubbub_enable_tenant_rls('signup_streams');

-- The latest migration applied of a stream, for the application role (which
-- may not read schema_migrations): provisioning checks that the schema a new
-- tenant lives in is the one its code expects.
CREATE FUNCTION hubbub_schema_version(target text) RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT coalesce(max(version), 0) FROM schema_migrations WHERE stream = target $$;
