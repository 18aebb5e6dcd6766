"""Agent chat as a gateway plugin: the ``/api/v1/chat`` routes; importing it
declares the ``agent.reply`` job kind (the jobs plugin runs it)."""

from __future__ import annotations

from hubbub.agent import reply
from hubbub.agent.api import api
from hubbub.plugin import Plugin

__all__ = ["KINDS", "plugin"]

#: The job kinds this plugin declares.
KINDS = (reply.KIND,)

plugin = Plugin("agent", apis=(api,))
