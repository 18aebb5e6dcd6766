"""The realtime layer: Socket.IO server, handshake, frames, presence, the
gateway's one fan-out bus (``fanout.py``) and the seq streams that deliver
durable streams from it in order (``seq_stream.py``)."""
