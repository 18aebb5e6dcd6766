-- API keys: each key is a service account of one tenant, acting with the
-- role its scopes give (read: viewer, write: member, admin: admin). The
-- tenant entity owns the rows (creates and revokes them); gateways read a
-- key by its hash inside the key's own tenant scope (the tenant id is part
-- of the key) and stamp last_used_at at most once a minute. Depends only on
-- 0001 and 0005.
CREATE TABLE api_keys (
  id           uuid        PRIMARY KEY,
  tenant_id    uuid        NOT NULL REFERENCES tenants (id),
  name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
  scopes       text[]      NOT NULL
               CHECK (cardinality(scopes) >= 1 AND scopes <@ ARRAY['read', 'write', 'admin']),
  prefix       text        NOT NULL,  -- the key's first characters, shown in lists
  key_hash     bytea       NOT NULL UNIQUE,  -- SHA-256 of the key; the key is never stored
  created_by   uuid        NOT NULL,
  created_at   timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL,
  last_used_at timestamptz,
  revoked_at   timestamptz
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, id);
SELECT hubbub_enable_tenant_rls('api_keys');

-- Keys are revoked, never deleted: a revoked key keeps answering
-- api_key_revoked rather than invalid_api_key.
INSERT INTO app_role_revocations (table_name, privilege) VALUES ('api_keys', 'DELETE');
