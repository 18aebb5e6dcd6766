"""Broadcasts: one message sent into many conversations by a ``broadcast.send`` job,
with a status per recipient (Plixa's mass messages, issue 5)."""

__all__: list[str] = []
