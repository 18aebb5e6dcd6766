-- Conversations: the conversation row, its members with read marks, its
-- messages and its event log (the source of replay by seq). All under tenant
-- row-level security; every row is written by the conversation entity only.
-- Depends only on 0001 (tenant RLS helper) and 0002 (users).

CREATE TABLE conversations (
  id               uuid        PRIMARY KEY,
  tenant_id        uuid        NOT NULL,
  kind             text        NOT NULL CHECK (kind IN ('direct', 'group', 'channel')),
  visibility       text        NOT NULL CHECK (visibility IN ('public', 'private')),
  title            text,
  subject_type     text,
  subject_id       text,
  created_by       uuid        NOT NULL,
  last_seq         bigint      NOT NULL,  -- the seq of the last event
  last_message_seq bigint,                -- the seq of the last message, for previews
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  last_activity_at timestamptz NOT NULL
);
CREATE INDEX conversations_by_kind ON conversations (tenant_id, kind);
SELECT hubbub_enable_tenant_rls('conversations');

CREATE TABLE conversation_members (
  tenant_id       uuid        NOT NULL,
  conversation_id uuid        NOT NULL REFERENCES conversations (id),
  user_id         uuid        NOT NULL REFERENCES users (id),
  role            text        NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  joined_at       timestamptz NOT NULL,
  last_read_seq   bigint      NOT NULL DEFAULT 0,
  PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_by_user ON conversation_members (tenant_id, user_id);
SELECT hubbub_enable_tenant_rls('conversation_members');

-- A message's seq is the seq of the event that created it. A deleted message
-- keeps its row as a tombstone (body emptied, deleted_at set).
CREATE TABLE conversation_messages (
  id              uuid        PRIMARY KEY,
  tenant_id       uuid        NOT NULL,
  conversation_id uuid        NOT NULL REFERENCES conversations (id),
  seq             bigint      NOT NULL,
  author_id       uuid        NOT NULL,
  body            text        NOT NULL,
  client_msg_id   text        NOT NULL,
  reply_to        uuid,
  created_at      timestamptz NOT NULL,
  edited_at       timestamptz,
  deleted_at      timestamptz,
  UNIQUE (conversation_id, seq),
  UNIQUE (conversation_id, author_id, client_msg_id)
);
SELECT hubbub_enable_tenant_rls('conversation_messages');

-- Every change, in seq order without gaps: what a client that missed some
-- reads back (`after_seq`), and what a socket's join replays.
CREATE TABLE conversation_events (
  tenant_id       uuid        NOT NULL,
  conversation_id uuid        NOT NULL REFERENCES conversations (id),
  seq             bigint      NOT NULL,
  event           text        NOT NULL,
  data            jsonb       NOT NULL,
  created_at      timestamptz NOT NULL,
  PRIMARY KEY (conversation_id, seq)
);
SELECT hubbub_enable_tenant_rls('conversation_events');
