"""Conversations and realtime chat: a built-in plugin (``plugin.py``).

The conversation entity (``hubbub/actors/conversation.py``) owns each
conversation's seq, members, read marks and messages; ``state.py`` holds its
pure rules; ``api.py`` and ``sockets.py`` are its HTTP and Socket.IO edges;
``reads.py`` what the gateway reads straight from Postgres; ``rooms.py``
which local sockets get which conversation's events; ``search.py`` and
``search_api.py`` full-text search and the public channel directory;
``snooze.py`` the sweep that wakes snoozed support conversations.
"""
