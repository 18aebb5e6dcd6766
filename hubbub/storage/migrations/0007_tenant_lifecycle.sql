-- Tenant lifecycle: purging tenants whose deletion grace period ended,
-- idempotent tenant creation, and audit rows about more than accounts.
-- Depends only on 0001, 0004 and 0005.

-- The gateways' purge sweep (hubbub.tenancy.purge) finds the tenants due
-- for purging across tenants: with hubbub.purge_sweep set in its own
-- transaction it sees the ids of deleted tenants past purge_after, and
-- nothing else. The purge itself is decided by each tenant's entity.
CREATE FUNCTION hubbub_purge_sweep() RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT coalesce(current_setting('hubbub.purge_sweep', true), '') = 'on'
$$;
CREATE POLICY due_for_purge ON tenants FOR SELECT
  USING (hubbub_purge_sweep() AND deleted_at IS NOT NULL AND purge_after <= now());

-- Deletes every row of tenant `target` from every tenant-scoped table (any
-- table of this schema with a tenant_id column under row-level security,
-- including those added later by other migrations and plugins), children
-- before the tables they reference, the tenants row last. The application
-- role may not DELETE tenants, invites or API keys, so this runs as the
-- migration owner (SECURITY DEFINER), and refuses unless `target` is the
-- transaction's own tenant (hubbub.tenant_id) and is deleted: the tenant
-- entity, which owns the lifecycle, calls it in its own scope once the grace
-- period is over. Returns how many rows it removed.
CREATE FUNCTION hubbub_purge_tenant(target uuid) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
  remaining regclass[];
  tbl regclass;
  removed bigint := 0;
  n bigint;
  progressed boolean;
BEGIN
  IF target IS NULL OR target IS DISTINCT FROM hubbub_current_tenant() THEN
    RAISE EXCEPTION 'hubbub_purge_tenant: expected the transaction''s tenant %, got %',
      hubbub_current_tenant(), target;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM tenants WHERE id = target AND deleted_at IS NOT NULL) THEN
    RAISE EXCEPTION 'hubbub_purge_tenant: expected a deleted tenant, % is not', target;
  END IF;
  SELECT coalesce(array_agg(c.oid::regclass), '{}') INTO remaining
    FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
   WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity
     AND c.relnamespace = current_schema()::regnamespace;
  WHILE cardinality(remaining) > 0 LOOP
    progressed := false;
    FOREACH tbl IN ARRAY remaining LOOP
      -- a table still referenced by another remaining table waits its turn
      CONTINUE WHEN EXISTS (
        SELECT 1 FROM pg_constraint f
         WHERE f.contype = 'f' AND f.confrelid = tbl AND f.conrelid <> tbl
           AND f.conrelid = ANY (remaining));
      EXECUTE format('DELETE FROM %s WHERE tenant_id = $1', tbl) USING target;
      GET DIAGNOSTICS n = ROW_COUNT;
      removed := removed + n;
      remaining := array_remove(remaining, tbl);
      progressed := true;
    END LOOP;
    IF NOT progressed THEN
      RAISE EXCEPTION 'hubbub_purge_tenant: foreign keys form a cycle among %', remaining;
    END IF;
  END LOOP;
  RETURN removed;
END
$$;

-- POST /api/v1/tenants with an Idempotency-Key: the tenant id a user's key
-- stands for, and a hash of the request body it came with. Rows past the
-- idempotency window are ignored and pruned by the purge sweep.
CREATE TABLE tenant_creations (
  user_id         uuid        NOT NULL REFERENCES users (id),
  idempotency_key text        NOT NULL,
  request_hash    bytea       NOT NULL,
  new_tenant_id   uuid        NOT NULL,  -- not "tenant_id": a platform row, not a tenant's
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, idempotency_key)
);
CREATE INDEX tenant_creations_created_at ON tenant_creations (created_at);

-- The audit log records staff actions on tenants and signup requests too,
-- so its target is no longer always an account.
ALTER TABLE staff_audit_log DROP CONSTRAINT staff_audit_log_target_id_fkey;
ALTER TABLE staff_audit_log ADD COLUMN target_kind text NOT NULL DEFAULT 'user'
  CHECK (target_kind IN ('user', 'tenant', 'signup_request'));
