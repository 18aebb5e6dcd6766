-- Broadcasts (issue 5, `broadcast.send`): one message to many conversations,
-- sent by a job. A broadcast row holds the message and the job that sends
-- it; each recipient row the delivery into one conversation. Recipients are
-- written at creation (pending), by the sending job (sent / failed) and by a
-- cancel (pending → cancelled). Both under tenant row-level security.
-- Depends on 0008 (conversations) and 0011 (jobs).

CREATE TABLE broadcasts (
  id           uuid        PRIMARY KEY,
  tenant_id    uuid        NOT NULL,
  job_id       uuid        NOT NULL,
  body         text        NOT NULL,
  label        text,        -- the label the recipients were chosen by, if any
  status       text        NOT NULL CHECK (status IN ('queued', 'sending', 'completed',
                 'cancelled')),
  start_at     timestamptz,  -- asked-for start; null: at once
  -- With an Idempotency-Key the id is derived from (tenant, creator, key); the
  -- hash tells a retry (same body) from a reuse of the key (another body).
  idempotency_key text,
  request_hash bytea       NOT NULL,
  created_by   uuid        NOT NULL,
  created_at   timestamptz NOT NULL,
  started_at   timestamptz,
  finished_at  timestamptz
);
CREATE INDEX broadcasts_by_creation ON broadcasts (tenant_id, created_at DESC, id DESC);
SELECT hubbub_enable_tenant_rls('broadcasts');

-- A recipient is a conversation; its message's id and seq once sent.
CREATE TABLE broadcast_recipients (
  tenant_id       uuid        NOT NULL,
  broadcast_id    uuid        NOT NULL REFERENCES broadcasts (id),
  conversation_id uuid        NOT NULL,
  status          text        NOT NULL CHECK (status IN ('pending', 'sent', 'failed',
                    'cancelled')),
  error           jsonb,       -- {code, message} when failed
  message_id      uuid,
  message_seq     bigint,
  created_at      timestamptz NOT NULL,  -- the broadcast's: pages go by (created_at, id)
  updated_at      timestamptz NOT NULL,
  PRIMARY KEY (broadcast_id, conversation_id)
);
CREATE INDEX broadcast_recipients_pending ON broadcast_recipients (broadcast_id, conversation_id)
  WHERE status = 'pending';
SELECT hubbub_enable_tenant_rls('broadcast_recipients');
