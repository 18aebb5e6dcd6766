"""Conversations and realtime chat: a built-in plugin (``plugin.py``).

The conversation entity (``entity.py``) owns each conversation's seq,
members, read marks and messages. Its pure parts: ``commands.py`` the typed
commands (and the calls both edges and other capabilities make),
``rules.py`` the deciders, ``events.py`` the events with their wire views,
``state.py`` the state and ``apply``, ``messages.py`` the message window;
``rows.py`` its tables and writes. ``api.py`` and ``sockets.py`` are its
HTTP and Socket.IO edges; ``reads.py`` what the gateway reads straight from
Postgres; ``rooms.py`` which local sockets get which conversation's events;
``search.py`` and ``search_api.py`` full-text search and the public channel
directory; ``snooze.py`` the sweep that wakes snoozed support conversations.
"""
