"""A bare python-socketio relay: the baseline of ``bench/fanout_bench.py``.

aiohttp + ``socketio.AsyncServer`` with default settings (default json, default
event loop, event handlers in their own tasks), no auth, no persistence. It
speaks the subset of hubbub's events the benchmark uses, so one load generator
drives both: ``join {room}`` enters a room; ``message:send {conversation_id,
body, client_msg_id}`` takes the room's next seq, emits ``message:new
{conversation_id, seq, message: {body, client_msg_id, seq}}`` to the room
(sender included, as hubbub does) and acks ``{ok: true, data: {seq}}``.
``GET /ready`` answers once it serves. Run from the repository root::

    python -m bench.relay --port 8765
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import socketio
from aiohttp import web

__all__ = ["create_app", "main"]


def create_app() -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    seqs: defaultdict[str, int] = defaultdict(int)  # room -> last seq; one event loop owns it

    @sio.on("join")
    async def join(sid: str, data: Any) -> dict[str, Any]:
        room = str(data["room"])
        await sio.enter_room(sid, room)
        return {"ok": True, "data": {"room": room, "last_seq": seqs[room]}}

    @sio.on("message:send")
    async def send(sid: str, data: Any) -> dict[str, Any]:
        room = str(data["conversation_id"])
        seqs[room] += 1
        seq = seqs[room]  # taken before any await, so seq order is arrival order
        message = {"body": data["body"], "client_msg_id": data["client_msg_id"], "seq": seq}
        await sio.emit(
            "message:new", {"conversation_id": room, "seq": seq, "message": message}, room=room
        )
        return {"ok": True, "data": {"seq": seq}}

    app = web.Application()
    sio.attach(app)
    app.router.add_get("/ready", _ready)
    return app


async def _ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address")
    parser.add_argument("--port", type=int, default=8765, help="listen port")
    args = parser.parse_args(argv)
    web.run_app(create_app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
