-- Identity: accounts, login sessions with their refresh tokens, and the keys
-- access tokens are signed with. These tables are global (no tenant_id): a
-- user exists before and across tenants.

-- Privileges the application role must NOT have, although the migration
-- runner grants it SELECT, INSERT, UPDATE, DELETE on every table: after that
-- grant the runner revokes each privilege listed here.
CREATE TABLE app_role_revocations (
  table_name text NOT NULL,
  privilege  text NOT NULL CHECK (privilege IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')),
  PRIMARY KEY (table_name, privilege)
);

CREATE TABLE users (
  id             uuid        PRIMARY KEY,
  email          text        NOT NULL,
  name           text        NOT NULL,
  password_hash  text        NOT NULL,
  email_verified boolean     NOT NULL DEFAULT false,
  created_at     timestamptz NOT NULL DEFAULT now()
);
-- One account per address, whatever its case.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- A login session: one refresh-token family. Revoking it ends the family
-- and refuses its access tokens at once.
CREATE TABLE sessions (
  id             uuid        PRIMARY KEY,
  user_id        uuid        NOT NULL REFERENCES users (id),
  device         text        NOT NULL,
  ip             text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  last_used_at   timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz NOT NULL,  -- refreshing later than this is refused
  revoked_at     timestamptz,
  revoked_reason text
);
CREATE INDEX sessions_live_by_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- Every refresh token a session was given, by SHA-256 hash (the token itself
-- is never stored). used_at is set when the token is rotated; presenting a
-- used token again is reuse, and revokes its session.
CREATE TABLE refresh_tokens (
  token_hash bytea       PRIMARY KEY,
  session_id uuid        NOT NULL REFERENCES sessions (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  used_at    timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Ed25519 keys that sign access tokens, shared by every gateway. The newest
-- unretired key signs; a retired key keeps verifying for one access-token
-- lifetime.
CREATE TABLE signing_keys (
  kid         text        PRIMARY KEY,
  private_key text        NOT NULL,  -- PKCS#8 PEM
  created_at  timestamptz NOT NULL DEFAULT now(),
  retired_at  timestamptz
);
-- At most one signing (unretired) key: the first gateway to start creates it.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE retired_at IS NULL;

-- Accounts, sessions, tokens and keys are never deleted by the application:
-- sessions and keys are revoked or retired, which keeps reuse detection and
-- an audit trail working.
INSERT INTO app_role_revocations (table_name, privilege) VALUES
  ('app_role_revocations', 'SELECT'), ('app_role_revocations', 'INSERT'),
  ('app_role_revocations', 'UPDATE'), ('app_role_revocations', 'DELETE'),
  ('users', 'DELETE'),
  ('sessions', 'DELETE'),
  ('refresh_tokens', 'DELETE'),
  ('signing_keys', 'DELETE');
