"""Plugins: how capabilities join a gateway.

A plugin bundles entity kinds (hosted on shards), HTTP APIs, Socket.IO
event handlers, start hooks (resources with a lifecycle, run in order after
every service of the gateway is up, each given the
:class:`~hubbub.services.Services`) and optionally the Socket.IO
authenticator. hubbub's own capabilities are plugins whose modules are
listed in ``BUILTIN``; ``HUBBUB_PLUGINS`` names more modules, each defining
a module attribute ``plugin = Plugin(...)``. Shard processes import entity kinds by
module path, so a plugin's module must be importable on every Ray node.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hubbub.actors.entity import Entity
from hubbub.config import ConfigError
from hubbub.http.routing import Api, RequestAuthenticator
from hubbub.realtime.handshake import Authenticator
from hubbub.realtime.server import SocketHandler
from hubbub.services import StartHook
from hubbub.storage.migrate import HUBBUB_STREAM

__all__ = ["BUILTIN", "Plugin", "load_plugins", "migration_streams"]


@dataclass(frozen=True)
class Plugin:
    name: str
    entity_kinds: tuple[type[Entity], ...] = ()
    apis: tuple[Api, ...] = ()
    socket_events: Mapping[str, SocketHandler] = field(default_factory=dict)
    migrations: Path | None = None  # NNNN_name.sql files, applied after hubbub's own
    start: tuple[StartHook, ...] = ()
    #: Who a socket is; the gateway uses the first plugin that provides one.
    authenticator: Authenticator | None = None
    #: Who a request to a route that declares a security scheme is (likewise).
    request_authenticator: RequestAuthenticator | None = None


def migration_streams(plugins: Iterable[Plugin]) -> list[tuple[str, Path]]:
    """hubbub's migrations, then each plugin's, as ``(stream, directory)``."""
    return [HUBBUB_STREAM] + [(p.name, p.migrations) for p in plugins if p.migrations]


#: Modules of hubbub's own capabilities, in the order they are installed. Named,
#: not imported here: a plugin module imports this one for :class:`Plugin`.
BUILTIN: tuple[str, ...] = (
    "hubbub.identity.plugin",
    "hubbub.tenancy.plugin",
    "hubbub.chat.plugin",
    "hubbub.jobs.plugin",
    "hubbub.provisioning.plugin",
    "hubbub.workflows.plugin",
    "hubbub.broadcasts.plugin",
    "hubbub.exports.plugin",
    "hubbub.agent.plugin",
)


def load_plugins(modules: Iterable[str]) -> list[Plugin]:
    """The built-in plugins, then those of ``modules`` (``HUBBUB_PLUGINS``)."""
    plugins = []
    for name in (*BUILTIN, *modules):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"HUBBUB_PLUGINS: cannot import {name!r}: {exc}") from None
        plugin = getattr(module, "plugin", None)
        if not isinstance(plugin, Plugin):
            raise ConfigError(
                f"HUBBUB_PLUGINS: expected module {name!r} to define `plugin = Plugin(...)`"
            )
        plugins.append(plugin)
    kinds = [kind.kind for p in plugins for kind in p.entity_kinds]
    if len(set(kinds)) != len(kinds):
        raise ConfigError(f"HUBBUB_PLUGINS: two plugins define the same entity kind: {kinds}")
    return plugins
