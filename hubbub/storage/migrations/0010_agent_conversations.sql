-- `agent` conversations: one user with the AI assistant. The assistant is no
-- member (conversation_members holds users of the tenant); its messages carry
-- the fixed author id of hubbub.chat.state.ASSISTANT_ID. Depends on 0009.
ALTER TABLE conversations DROP CONSTRAINT conversations_kind_check;
ALTER TABLE conversations ADD CONSTRAINT conversations_kind_check
  CHECK (kind IN ('direct', 'group', 'channel', 'support', 'agent'));
