"""Broadcasts as a gateway plugin: their routes, and the ``broadcast.send``
job kind (declared when :mod:`hubbub.broadcasts.sending` is imported)."""

from __future__ import annotations

from hubbub.broadcasts import sending
from hubbub.broadcasts.api import api
from hubbub.plugin import Plugin

__all__ = ["KIND_MODULES", "plugin"]

#: Modules whose import declares this plugin's job kinds.
KIND_MODULES = (sending,)

plugin = Plugin("broadcasts", apis=(api,))
