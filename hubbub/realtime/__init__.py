"""The realtime layer: Socket.IO server, handshake, and the fan-out of
committed events from the bus to local sockets."""
