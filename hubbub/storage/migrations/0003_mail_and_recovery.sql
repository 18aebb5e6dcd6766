-- Mail and account recovery: the outbox mails are sent from, and the
-- single-use tokens those mails carry (email verification, password reset).
-- Both are global tables (no tenant_id), like users.

-- Mails to send. A row is inserted in the same transaction as the change
-- that causes it, so a mail exists if and only if its change committed. Each
-- gateway's delivery loop claims due rows (FOR UPDATE SKIP LOCKED), pushing
-- next_attempt_at ahead as a lease: a gateway that dies mid-send leaves the
-- row to be retried (at-least-once). A sent mail's body, which carries a
-- live token, is erased.
CREATE TABLE outbox (
  id              uuid        PRIMARY KEY,
  kind            text        NOT NULL,  -- e.g. verify_email, reset_password
  recipient       text        NOT NULL,
  subject         text        NOT NULL,
  body            text        NOT NULL,  -- text/plain
  created_at      timestamptz NOT NULL DEFAULT now(),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  attempts        integer     NOT NULL DEFAULT 0,
  sent_at         timestamptz,
  failed_at       timestamptz,           -- gave up after the last attempt
  last_error      text
);
CREATE INDEX outbox_due ON outbox (next_attempt_at)
  WHERE sent_at IS NULL AND failed_at IS NULL;

-- Tokens sent by mail, by SHA-256 hash (the token itself is only in the
-- mail). Single use: used_at is set when one is redeemed. A verification
-- token proves the address it was sent to, kept in email.
CREATE TABLE mail_tokens (
  token_hash bytea       PRIMARY KEY,
  user_id    uuid        NOT NULL REFERENCES users (id),
  purpose    text        NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
  email      text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at    timestamptz
);
CREATE INDEX mail_tokens_open_by_user ON mail_tokens (user_id, purpose) WHERE used_at IS NULL;

-- Mails and tokens are kept as a record; the application never deletes them.
INSERT INTO app_role_revocations (table_name, privilege) VALUES
  ('outbox', 'DELETE'),
  ('mail_tokens', 'DELETE');
