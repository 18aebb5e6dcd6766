-- Support inboxes, soft deletion, per-member mute/star, reactions and
-- full-text search of conversations. Every row is still written by the
-- conversation entity only; depends on 0008 (conversations) and 0007
-- (the sweep pattern of hubbub_purge_sweep).

-- A `support` conversation is a customer thread of a shared inbox: a status
-- (open / pending / resolved / snoozed, null for other kinds), the time a
-- snoozed one wakes (back to open), an assignee and labels.
ALTER TABLE conversations DROP CONSTRAINT conversations_kind_check;
ALTER TABLE conversations ADD CONSTRAINT conversations_kind_check
  CHECK (kind IN ('direct', 'group', 'channel', 'support'));
ALTER TABLE conversations
  ADD COLUMN status       text CHECK (status IN ('open', 'pending', 'resolved', 'snoozed')),
  ADD COLUMN snooze_until timestamptz,
  ADD COLUMN assignee_id  uuid,
  ADD COLUMN labels       text[] NOT NULL DEFAULT '{}',
  ADD COLUMN deleted_at   timestamptz,  -- soft deletion: hidden from everyone, events stop
  ADD COLUMN search       tsvector GENERATED ALWAYS AS
    (to_tsvector('simple', coalesce(title, ''))) STORED,
  ADD CONSTRAINT conversations_snooze_needs_status
    CHECK (snooze_until IS NULL OR status = 'snoozed');
CREATE INDEX conversations_by_status ON conversations (tenant_id, status)
  WHERE deleted_at IS NULL;
CREATE INDEX conversations_snoozed ON conversations (snooze_until)
  WHERE status = 'snoozed' AND deleted_at IS NULL;
CREATE INDEX conversations_by_label ON conversations USING gin (labels);
CREATE INDEX conversations_search ON conversations USING gin (search);

-- The gateways' wake sweep (hubbub.chat.snooze) finds snoozed conversations
-- whose time came across tenants: with hubbub.snooze_sweep set in its own
-- transaction it sees exactly those rows, and nothing else. The wake itself
-- is decided by each conversation's entity, in its tenant's scope.
CREATE FUNCTION hubbub_snooze_sweep() RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT coalesce(current_setting('hubbub.snooze_sweep', true), '') = 'on'
$$;
CREATE POLICY due_for_wake ON conversations FOR SELECT
  USING (hubbub_snooze_sweep() AND status = 'snoozed' AND snooze_until <= now()
         AND deleted_at IS NULL);

ALTER TABLE conversation_members
  ADD COLUMN muted   boolean NOT NULL DEFAULT false,
  ADD COLUMN starred boolean NOT NULL DEFAULT false;

ALTER TABLE conversation_messages
  ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED;
CREATE INDEX conversation_messages_search ON conversation_messages USING gin (search);

-- One reaction per (message, user, emoji).
CREATE TABLE conversation_reactions (
  tenant_id       uuid        NOT NULL,
  conversation_id uuid        NOT NULL REFERENCES conversations (id),
  message_id      uuid        NOT NULL REFERENCES conversation_messages (id),
  user_id         uuid        NOT NULL,
  emoji           text        NOT NULL,
  created_at      timestamptz NOT NULL,
  PRIMARY KEY (message_id, user_id, emoji)
);
CREATE INDEX conversation_reactions_by_conversation ON conversation_reactions (conversation_id);
SELECT hubbub_enable_tenant_rls('conversation_reactions');
