// Drives the official socket.io-client for tests/test_js_client.py.
//
//   node client.mjs <url> <auth as JSON>
//
// Connects over websocket with that `auth` (no reconnection), then reads
// commands from stdin, one JSON line each: {"emit": <event>, "data": <payload>},
// emitted in order, each waiting for its ack. Everything that happens is
// printed to stdout as one JSON line: {type: "connect"}, {type: "connect_error",
// message, data}, {type: "event", event, data} for every server event,
// {type: "ack", event, ack} (or {type: "ack", event, error}) and {type:
// "disconnect", reason}. When stdin closes the socket disconnects and the
// script exits.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const [url, auth] = process.argv.slice(2);
const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

const socket = io(url, {
  auth: JSON.parse(auth),
  transports: ["websocket"],
  reconnection: false,
});
socket.on("connect", () => print({ type: "connect" }));
socket.on("connect_error", (err) =>
  print({ type: "connect_error", message: err.message, data: err.data ?? null }),
);
socket.on("disconnect", (reason) => print({ type: "disconnect", reason }));
socket.onAny((event, data) => print({ type: "event", event, data }));

for await (const line of createInterface({ input: process.stdin })) {
  const { emit, data } = JSON.parse(line);
  try {
    print({ type: "ack", event: emit, ack: await socket.timeout(10000).emitWithAck(emit, data) });
  } catch (err) {
    print({ type: "ack", event: emit, error: String(err) });
  }
}
socket.disconnect();
