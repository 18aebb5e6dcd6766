"""Async signup as a gateway plugin: its routes. Its job kind is one of the
jobs plugin's ``BUILTIN_KINDS``; this plugin is installed after the jobs
plugin, whose job feeds its stream uses."""

from __future__ import annotations

from hubbub.plugin import Plugin
from hubbub.provisioning.api import api

__all__ = ["plugin"]

plugin = Plugin("provisioning", apis=(api,))
