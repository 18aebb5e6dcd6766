"""Workflows as a gateway plugin: their routes, and hubbub's own workflows
(imported: their declarations register their job kinds). The jobs plugin
hosts the job entities and streams their runs run on."""

from __future__ import annotations

from hubbub.plugin import Plugin
from hubbub.workflows import builtin
from hubbub.workflows.api import api

__all__ = ["BUILTIN_WORKFLOWS", "plugin"]

#: Modules of hubbub's own workflows.
BUILTIN_WORKFLOWS = (builtin,)

plugin = Plugin("workflows", apis=(api,))
