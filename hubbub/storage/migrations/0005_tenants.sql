-- Tenants: the tenant row, its unique slug, its member roster, invites and
-- usage counters (all under tenant row-level security), and signup access
-- requests (platform rows, no tenant). Depends only on 0001 and 0002.

-- The user the current transaction acts for, set by the gateway after it
-- authenticated the request (hubbub.tenancy.directory.acting_as); NULL when
-- none is set. It widens exactly two reads, below: a user's own memberships
-- and the tenants they belong to, so "my tenants" can be listed across
-- tenants while every other read stays scoped to one tenant.
CREATE FUNCTION hubbub_acting_user() RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('hubbub.user_id', true), '')::uuid
$$;

-- One row per tenant; tenant_id is the tenant's own id, so the standard
-- policy applies. Soft-deleted tenants keep their row until purge_after.
CREATE TABLE tenants (
  id          uuid        PRIMARY KEY,
  tenant_id   uuid        NOT NULL CHECK (tenant_id = id),
  name        text        NOT NULL,
  slug        text        NOT NULL,
  plan        text        NOT NULL,
  timezone    text        NOT NULL,
  locale      text        NOT NULL,
  settings    jsonb       NOT NULL DEFAULT '{}',
  seq         bigint      NOT NULL DEFAULT 0,  -- the last tenant event published
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL,
  deleted_at  timestamptz,
  purge_after timestamptz
);
SELECT hubbub_enable_tenant_rls('tenants');

-- Slugs are unique across tenants. The unique index holds whatever the
-- policy hides: the gateway reserves a slug here (INSERT ... ON CONFLICT DO
-- NOTHING inside the tenant's scope) before the entity commits the change.
CREATE TABLE tenant_slugs (
  slug      text PRIMARY KEY,
  tenant_id uuid NOT NULL
);
CREATE INDEX tenant_slugs_by_tenant ON tenant_slugs (tenant_id);
SELECT hubbub_enable_tenant_rls('tenant_slugs');

CREATE TABLE tenant_members (
  tenant_id uuid        NOT NULL REFERENCES tenants (id),
  user_id   uuid        NOT NULL REFERENCES users (id),
  role      text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
  joined_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX tenant_members_by_user ON tenant_members (user_id);
SELECT hubbub_enable_tenant_rls('tenant_members');

-- The two cross-tenant reads, both SELECT only and both keyed by the acting
-- user: their own membership rows, and the tenants those rows name.
CREATE POLICY own_memberships ON tenant_members FOR SELECT
  USING (user_id = hubbub_acting_user());
CREATE POLICY member_of ON tenants FOR SELECT
  USING (EXISTS (SELECT 1 FROM tenant_members m
                 WHERE m.tenant_id = tenants.id AND m.user_id = hubbub_acting_user()));

-- Invites: the token itself is never stored, only its SHA-256.
CREATE TABLE tenant_invites (
  id          uuid        PRIMARY KEY,
  tenant_id   uuid        NOT NULL REFERENCES tenants (id),
  email       text        NOT NULL,
  role        text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
  token_hash  bytea       NOT NULL UNIQUE,
  invited_by  uuid        NOT NULL,
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  accepted_at timestamptz,
  accepted_by uuid,
  revoked_at  timestamptz
);
CREATE INDEX tenant_invites_by_tenant ON tenant_invites (tenant_id);
SELECT hubbub_enable_tenant_rls('tenant_invites');

-- Usage counters of metered features, owned by the tenant entity.
CREATE TABLE tenant_usage (
  tenant_id  uuid        NOT NULL REFERENCES tenants (id),
  metric     text        NOT NULL,
  value      bigint      NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, metric)
);
SELECT hubbub_enable_tenant_rls('tenant_usage');

-- Signup under the "approval" policy: a request waits here, with the
-- password already hashed, until it is approved (the account is created
-- then) or rejected. Platform rows: no tenant.
CREATE TABLE signup_requests (
  id            uuid        PRIMARY KEY,
  email         text        NOT NULL,
  name          text        NOT NULL,
  password_hash text        NOT NULL,
  status        text        NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'approved', 'rejected')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  decided_at    timestamptz,
  decided_by    uuid,
  user_id       uuid REFERENCES users (id)
);
-- One pending request per address, whatever its case.
CREATE UNIQUE INDEX signup_requests_pending_email ON signup_requests (lower(email))
  WHERE status = 'pending';

-- Tenants are soft-deleted; members, invites and requests change state
-- rather than disappear, except members, who are removed for real.
INSERT INTO app_role_revocations (table_name, privilege) VALUES
  ('tenants', 'DELETE'),
  ('tenant_invites', 'DELETE'),
  ('signup_requests', 'DELETE');
