"""Structured logs: one JSON object per line, with the request's id."""

from __future__ import annotations

import logging
import sys

import orjson

from hubbub.log import JsonFormatter, request_id_var


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("hubbub.test", logging.WARNING, __file__, 1, message, (), None)
    entry.__dict__.update(extra)
    return entry


def test_a_log_line_is_one_json_object_with_the_request_id_and_extras() -> None:
    token = request_id_var.set("req-1")
    try:
        line = JsonFormatter("gw-1").format(record("slow shard", shard=3, _ray_timestamp_ns=1))
    finally:
        request_id_var.reset(token)
    assert "\n" not in line
    entry = orjson.loads(line)
    assert entry.pop("at").endswith("+00:00")
    assert entry == {
        "level": "WARNING",
        "logger": "hubbub.test",
        "message": "slow shard",
        "gateway": "gw-1",
        "request_id": "req-1",
        "shard": 3,
    }


def test_an_exception_is_logged_as_text_inside_the_object() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        entry = record("failed")
        entry.exc_info = sys.exc_info()
    logged = orjson.loads(JsonFormatter("gw-1").format(entry))
    assert "ValueError: boom" in logged["exception"]
    assert "request_id" not in logged
