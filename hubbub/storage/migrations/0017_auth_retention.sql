-- Retention of identity rows that are over (hubbub/identity/retention.py).
-- The application role may not delete sessions, refresh tokens, mail tokens
-- or mails (0002, 0003): while they can matter they are what reuse detection
-- and the audit trail read. Once they have been over for the retention
-- period (HUBBUB_AUTH_RETENTION_DAYS) they serve neither, and this function,
-- run as the migration owner, deletes them: at most `batch` rows of each
-- table per call, so a large backlog goes in short transactions. Returns the
-- most rows it deleted from any one table (below `batch`: nothing is left).
-- Depends on 0002, 0003, 0004.
CREATE FUNCTION hubbub_prune_auth(retention interval, batch integer) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
  cutoff timestamptz := now() - retention;
  most bigint := 0;
  n bigint;
BEGIN
  IF retention IS NULL OR retention < interval '1 day' THEN
    RAISE EXCEPTION 'hubbub_prune_auth: expected a retention of a day or more, got %', retention;
  END IF;
  -- Tokens rotated long ago (a reuse shows within minutes), and every token
  -- of a session that ended long ago.
  DELETE FROM refresh_tokens WHERE token_hash IN (
    SELECT t.token_hash FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
     WHERE t.used_at < cutoff OR s.revoked_at < cutoff OR s.expires_at < cutoff
     LIMIT batch);
  GET DIAGNOSTICS n = ROW_COUNT;
  most := greatest(most, n);
  -- Sessions that ended long ago, once they have no tokens left.
  DELETE FROM sessions WHERE id IN (
    SELECT s.id FROM sessions s
     WHERE (s.revoked_at < cutoff OR s.expires_at < cutoff)
       AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id)
     LIMIT batch);
  GET DIAGNOSTICS n = ROW_COUNT;
  most := greatest(most, n);
  DELETE FROM mail_tokens WHERE token_hash IN (
    SELECT token_hash FROM mail_tokens WHERE used_at < cutoff OR expires_at < cutoff LIMIT batch);
  GET DIAGNOSTICS n = ROW_COUNT;
  most := greatest(most, n);
  DELETE FROM login_challenges WHERE token_hash IN (
    SELECT token_hash FROM login_challenges WHERE expires_at < cutoff LIMIT batch);
  GET DIAGNOSTICS n = ROW_COUNT;
  most := greatest(most, n);
  DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox WHERE sent_at < cutoff OR failed_at < cutoff LIMIT batch);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN greatest(most, n);
END
$$;
