-- Foundation: tenant isolation scaffold, shard ownership leases and the
-- idempotency record every entity kind shares.

-- The tenant of the current transaction, set by Database.tenant(); NULL when
-- none is set, so that a tenant-scoped table shows nothing by default.
CREATE FUNCTION hubbub_current_tenant() RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('hubbub.tenant_id', true), '')::uuid
$$;

-- Puts a table with a tenant_id column under row-level security: rows are
-- visible and writable only when their tenant is the transaction's tenant.
-- Rows with a NULL tenant_id (platform rows) are visible only when no tenant
-- is set. FORCE makes the policy bind the table's owner too.
CREATE FUNCTION hubbub_enable_tenant_rls(target regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);
  EXECUTE format(
    'CREATE POLICY tenant_isolation ON %s '
    'USING (tenant_id IS NOT DISTINCT FROM hubbub_current_tenant()) '
    'WITH CHECK (tenant_id IS NOT DISTINCT FROM hubbub_current_tenant())',
    target);
END
$$;

-- One row per shard actor: the epoch of its current owner. A shard bumps the
-- epoch when it starts and checks it inside every commit, so a shard that
-- lost ownership (a zombie after a restart elsewhere) cannot write.
CREATE TABLE shard_leases (
  kind        text        NOT NULL,
  shard       integer     NOT NULL,
  epoch       bigint      NOT NULL,
  owner       text        NOT NULL,
  acquired_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, shard)
);

-- The reply of every command that carried an idempotency key, committed in
-- the same transaction as the command's effects.
CREATE TABLE entity_commands (
  kind            text        NOT NULL,
  entity_key      text        NOT NULL,
  idempotency_key text        NOT NULL,
  tenant_id       uuid,
  reply           jsonb       NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, entity_key, idempotency_key)
);
CREATE INDEX entity_commands_created_at ON entity_commands (kind, created_at);
SELECT hubbub_enable_tenant_rls('entity_commands');
-- Expired receipts may be pruned without a tenant scope: the window is at
-- least an hour, and a receipt past it protects nothing.
CREATE POLICY prune_expired ON entity_commands FOR DELETE
  USING (created_at < now() - interval '1 hour');
