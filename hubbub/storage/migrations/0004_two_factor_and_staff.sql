-- Two-factor authentication (TOTP, recovery codes, login challenges), platform
-- staff with account standing (ban, lock), and the staff audit log. Global
-- tables (no tenant_id), like users. Depends only on 0002_identity.

-- Platform staff, set by an operator (`hubbub staff grant EMAIL`). A banned or
-- staff-locked account can neither log in nor refresh; both are set by staff.
ALTER TABLE users
  ADD COLUMN is_staff        boolean     NOT NULL DEFAULT false,
  ADD COLUMN banned_at       timestamptz,
  ADD COLUMN staff_locked_at timestamptz;

-- One TOTP secret per account. enabled_at NULL: set up but not confirmed yet
-- (login does not ask for a code). secret is AES-256-GCM ciphertext when
-- HUBBUB_TWO_FACTOR_KEY is set, else the plain base32 secret (the first byte
-- says which, see hubbub/identity/totp.py). last_step is the newest TOTP time
-- step accepted, so a code cannot be used twice.
CREATE TABLE two_factor (
  user_id    uuid        PRIMARY KEY REFERENCES users (id),
  secret     bytea       NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  enabled_at timestamptz,
  last_step  bigint
);

-- One-time recovery codes, by SHA-256 hash (80-bit random codes: a hash is
-- enough). Used or revoked codes are kept until the set is regenerated.
CREATE TABLE recovery_codes (
  user_id    uuid        NOT NULL REFERENCES users (id),
  code_hash  bytea       NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  used_at    timestamptz,
  revoked_at timestamptz,
  PRIMARY KEY (user_id, code_hash)
);

-- The second step of a login with 2FA: a short-lived, single-use token (by
-- SHA-256 hash) handed out after the password, traded for tokens with a code.
CREATE TABLE login_challenges (
  token_hash bytea       PRIMARY KEY,
  user_id    uuid        NOT NULL REFERENCES users (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at    timestamptz,
  failures   integer     NOT NULL DEFAULT 0
);
CREATE INDEX login_challenges_user ON login_challenges (user_id);

-- Every staff action (and every operator grant), written in the transaction
-- of the change itself. actor_id NULL: an operator at the command line.
CREATE TABLE staff_audit_log (
  id        uuid        PRIMARY KEY,  -- UUIDv7: sorts by time
  actor_id  uuid        REFERENCES users (id),
  action    text        NOT NULL,
  target_id uuid        NOT NULL REFERENCES users (id),
  before    jsonb       NOT NULL,
  after     jsonb       NOT NULL,
  reason    text,
  at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staff_audit_log_target ON staff_audit_log (target_id, id);

-- A disabled 2FA leaves nothing behind (two_factor and recovery_codes rows are
-- deleted); challenges are kept as a record; the audit log is append-only.
INSERT INTO app_role_revocations (table_name, privilege) VALUES
  ('login_challenges', 'DELETE'),
  ('staff_audit_log', 'UPDATE'),
  ('staff_audit_log', 'DELETE');
