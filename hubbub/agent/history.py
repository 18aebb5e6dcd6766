"""The conversation so far, as the ``agent.reply`` handler sends it to the model.

Read from Postgres in the job's tenant scope (row-level security), up to the
user message being answered — a retried run sees the same history. The job's
own row says who asked: only a member of the conversation may have its
assistant answer there, so a job submitted through ``POST /jobs`` cannot reach
another user's conversation.
"""

from __future__ import annotations

import asyncpg

from hubbub.agent.provider import Turn
from hubbub.chat.state import ASSISTANT_ID
from hubbub.errors import AppError

__all__ = ["history"]

_ASKED = """SELECT c.kind, m.seq FROM jobs j
JOIN conversations c ON c.id = $2 AND c.deleted_at IS NULL
JOIN conversation_members cm ON cm.conversation_id = c.id AND cm.user_id = j.created_by
JOIN conversation_messages m ON m.conversation_id = c.id AND m.id = $3
WHERE j.id = $1"""
_LATEST = """SELECT author_id, body FROM (
  SELECT author_id, body, seq FROM conversation_messages
  WHERE conversation_id = $1 AND seq <= $2 AND deleted_at IS NULL
  ORDER BY seq DESC LIMIT $3) latest
ORDER BY seq"""


async def history(
    conn: asyncpg.Connection, job_id: str, conversation_id: str, reply_to: str, limit: int
) -> list[Turn]:
    """The latest ``limit`` messages up to ``reply_to``, oldest first.

    404 if the job's creator is not in the conversation or ``reply_to`` is
    not one of its messages; 409 ``not_agent_conversation`` for another kind.
    """
    asked = await conn.fetchrow(_ASKED, job_id, conversation_id, reply_to)
    if asked is None:
        raise AppError.not_found("the message to reply to")
    if asked["kind"] != "agent":
        raise AppError(
            "not_agent_conversation",
            f"expected an agent conversation, got kind {asked['kind']!r}",
            status=409,
        )
    rows = await conn.fetch(_LATEST, conversation_id, asked["seq"], limit)
    return [
        Turn("assistant" if str(r["author_id"]) == ASSISTANT_ID else "user", r["body"])
        for r in rows
    ]
