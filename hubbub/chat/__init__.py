"""Conversations and realtime chat: a built-in plugin (``plugin.py``).

The conversation entity (``hubbub/actors/conversation.py``) owns each
conversation's seq, members, read marks and messages; ``state.py`` holds its
pure rules; ``api.py`` and ``sockets.py`` are its HTTP and Socket.IO edges;
``reads.py`` what the gateway reads straight from Postgres; ``rooms.py``
which local sockets get which conversation's events.
"""
