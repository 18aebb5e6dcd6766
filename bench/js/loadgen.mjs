// Lean Socket.IO load generator for bench/fanout_bench.py.
//
//   node loadgen.mjs <config.json>     (or `-`, or nothing: the config on stdin)
//
// The official socket.io-client spends ~20 µs per received event, too much at
// 80,000 deliveries/s on one core, so this speaks Engine.IO 4 / Socket.IO 5
// text frames on raw `ws` websockets and parses only what it needs.
//
// Config (JSON): {url, adapter: "hubbub" | "relay", clients: [{token?,
// tenant_id?, conversation_id, sender}], steps: [{label, rate, seconds,
// warmup?}], drainSeconds, gapSeconds, settleSeconds, connectConcurrency,
// quietSeconds, giveUpMs, keepGoing}. Each client connects, joins its conversation, and the
// senders (one per conversation) send open loop: message i of a step is due at
// start + i / rate whatever the server answers, and latency counts from that
// due time, so a backed-up server (or generator) shows in it. The body carries
// the message's index and due time; every receiver is in this process. A step's
// result is taken drainSeconds after its last send; then the generator waits
// (up to quietSeconds) for any backlog, counted as late, before the next step.
//
// stdout: one JSON line per phase — {phase: "connected"}, {phase: "joined"},
// {phase: "step-start"}, {phase: "step-sent"}, then the step's result
// {phase: "step", ...}; {phase: "stopped"} when a step fails badly (unless
// keepGoing); {phase: "done"} last. Diagnostics go to stderr.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";

const config = JSON.parse(readFileSync(readFrom(process.argv[2]), "utf8"));
const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function readFrom(arg) {
  return arg === undefined || arg === "-" ? 0 : arg; // fd 0 is stdin
}

// The only differences between the two servers: handshake auth and the join event.
const ADAPTERS = {
  hubbub: {
    auth: (spec) => ({ token: spec.token, tenant_id: spec.tenant_id }),
    join: (spec) => ["conversation:join", { conversation_id: spec.conversation_id, since_seq: 0 }],
  },
  relay: {
    auth: () => ({}),
    join: (spec) => ["join", { room: spec.conversation_id }],
  },
};
const adapter = ADAPTERS[config.adapter];
if (adapter === undefined) throw new Error(`expected adapter hubbub or relay, got ${config.adapter}`);

// --- per-message bookkeeping, indexed by the global message number g ----------

const capacity = config.steps.reduce((n, s) => n + Math.ceil(s.rate * s.seconds) + 1, 0);
const due = new Float64Array(capacity); // performance.now() ms the send was scheduled for
const ackedAt = new Float64Array(capacity); // 0: no ack yet
const failed = new Uint8Array(capacity); // an error ack
const delivered = new Uint16Array(capacity);
const stepOf = new Uint16Array(capacity);
const expected = new Uint16Array(capacity); // members of the message's room
let sentCount = 0;
let lateDeliveries = 0; // deliveries after their step's result was printed
let disconnects = 0;
const runId = Math.random().toString(36).slice(2, 10);

const steps = config.steps.map((spec) => ({
  ...spec,
  first: 0,
  last: 0,
  start: 0,
  end: 0,
  closed: false,
  latencies: [],
  ackLatencies: [],
  lastDelivery: 0,
  deliveries: 0,
  violations: 0,
  errorCodes: {},
  sendLag: [],
}));
let current = null; // the step whose messages are being sent or drained

// --- one socket ---------------------------------------------------------------

class Client {
  constructor(spec) {
    this.spec = spec;
    this.ws = null;
    this.nextId = 0;
    this.pending = new Map(); // ack id -> g of a send, or a function
    this.lastSeq = 0;
    this.roomSize = 0;
    this.closing = false;
  }

  connect(url, timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("connect timed out")), timeoutMs);
      this.onConnect = (error) => {
        clearTimeout(timer);
        this.onConnect = null;
        error ? reject(error) : resolve();
      };
      this.ws = new WebSocket(url, { perMessageDeflate: false });
      this.ws.on("message", (data) => this.receive(data.toString()));
      this.ws.on("error", (error) => this.onConnect?.(error));
      this.ws.on("close", () => this.closed());
    });
  }

  emit(name, payload, onAck) {
    const id = this.nextId++;
    this.pending.set(id, onAck);
    this.ws.send(`42${id}${JSON.stringify([name, payload])}`);
  }

  request(name, payload) {
    return new Promise((resolve) => this.emit(name, payload, resolve));
  }

  receive(text) {
    const type = text.charCodeAt(0);
    if (type === 0x34) this.packet(text); // '4' Engine.IO message: a Socket.IO packet
    else if (type === 0x32) this.ws.send("3"); // '2' ping -> '3' pong
    else if (type === 0x30) this.ws.send(`40${JSON.stringify(adapter.auth(this.spec))}`); // open
  }

  packet(text) {
    const kind = text.charCodeAt(1);
    if (kind === 0x32) {
      const [name, payload] = JSON.parse(text.slice(2)); // '2' EVENT, no ack id from servers
      if (name === "message:new") this.delivery(payload);
    } else if (kind === 0x33) {
      const open = text.indexOf("["); // '3' ACK: 43<id>[data]
      const id = Number(text.slice(2, open));
      const handler = this.pending.get(id);
      this.pending.delete(id);
      const [data] = JSON.parse(text.slice(open));
      typeof handler === "number" ? sendAcked(handler, data) : handler?.(data);
    } else if (kind === 0x30) this.onConnect?.(); // '0' CONNECT
    else if (kind === 0x34) this.onConnect?.(new Error(`connect_error ${text.slice(2)}`));
    else if (kind === 0x31) this.ws.close(); // '1' DISCONNECT by the server
  }

  delivery(payload) {
    const now = performance.now();
    const body = payload.message.body;
    const g = Number(body.slice(0, body.indexOf(" ")));
    const step = steps[stepOf[g]];
    if (payload.seq <= this.lastSeq) step.violations++; // backwards or repeated
    else this.lastSeq = payload.seq;
    delivered[g]++;
    if (current !== null && now < current.end) current.deliveries++;
    if (step.closed) {
      lateDeliveries++;
      return;
    }
    step.latencies.push(now - due[g]);
    step.lastDelivery = now;
  }

  closed() {
    if (!this.closing) {
      disconnects++;
      console.error(`loadgen: socket of ${this.spec.conversation_id} closed by the server`);
    }
    this.onConnect?.(new Error("closed during the handshake"));
  }
}

function sendAcked(g, data) {
  const now = performance.now();
  ackedAt[g] = now;
  const step = steps[stepOf[g]];
  if (!data?.ok) {
    failed[g] = 1;
    const code = data?.error?.code ?? "malformed_ack";
    step.errorCodes[code] = (step.errorCodes[code] ?? 0) + 1;
  }
  if (!step.closed) step.ackLatencies.push(now - due[g]);
}

// --- phases -----------------------------------------------------------------------

async function pool(items, limit, work) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

async function connectAll(clients) {
  const started = performance.now();
  await pool(clients, config.connectConcurrency, (c) => c.connect(config.url, 60_000));
  return (performance.now() - started) / 1000;
}

async function joinAll(clients) {
  const started = performance.now();
  await pool(clients, config.connectConcurrency, async (client) => {
    const [name, payload] = adapter.join(client.spec);
    const ack = await client.request(name, payload);
    if (!ack?.ok) throw new Error(`${name} refused: ${JSON.stringify(ack)}`);
    client.lastSeq = ack.data.last_seq;
  });
  return (performance.now() - started) / 1000;
}

function sendOne(step, senders, i) {
  const g = sentCount++;
  const client = senders[g % senders.length];
  due[g] = step.start + (i * 1000) / step.rate;
  stepOf[g] = step.index;
  expected[g] = client.roomSize;
  const body = `${g} ${due[g].toFixed(3)}`;
  const payload = { conversation_id: client.spec.conversation_id, body, client_msg_id: `${runId}-${g}` };
  client.emit("message:send", payload, g);
}

// Open loop: every millisecond, send whatever has come due since the last tick.
function sendSchedule(step, senders) {
  const total = Math.round(step.rate * step.seconds);
  let i = 0;
  return new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      const lagFrom = i;
      while (i < total && step.start + (i * 1000) / step.rate <= now) sendOne(step, senders, i++);
      if (i > lagFrom) step.sendLag.push(now - (step.start + (lagFrom * 1000) / step.rate));
      if (i >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
}

function settled(step) {
  for (let g = step.first; g < step.last; g++) {
    if (ackedAt[g] === 0 || (!failed[g] && delivered[g] < expected[g])) return false;
  }
  return true;
}

async function drain(step, seconds) {
  const deadline = performance.now() + seconds * 1000;
  while (performance.now() < deadline && !settled(step)) await sleep(20);
}

async function runStep(step, senders) {
  step.first = sentCount;
  step.start = performance.now() + 2;
  step.end = step.start + step.seconds * 1000;
  print({ phase: "step-start", label: step.label, rate: step.rate });
  const cpu = process.cpuUsage();
  current = step;
  await sendSchedule(step, senders);
  step.last = sentCount;
  await sleep(Math.max(0, step.end - performance.now()));
  const cpuUsed = process.cpuUsage(cpu);
  print({ phase: "step-sent", label: step.label });
  const drainStart = performance.now();
  await drain(step, config.drainSeconds);
  step.closed = true;
  current = null;
  const drainMs = performance.now() - drainStart;
  return summary(step, (cpuUsed.user + cpuUsed.system) / 1e4 / step.seconds, drainMs);
}

// --- results --------------------------------------------------------------------

function percentiles(values) {
  if (values.length === 0) return { p50: null, p99: null, max: null };
  const sorted = Float64Array.from(values).sort();
  const at = (q) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
  return { p50: at(0.5), p99: at(0.99), max: round(sorted[sorted.length - 1]) };
}

const round = (x) => Math.round(x * 100) / 100;

function countOutcomes(step) {
  const counts = { sent: step.last - step.first, acked: 0, errors: 0, unacked: 0 };
  Object.assign(counts, { lost: 0, missing: 0, deliveries: 0 });
  for (let g = step.first; g < step.last; g++) {
    counts.deliveries += delivered[g];
    if (ackedAt[g] === 0) counts.unacked++;
    else if (failed[g]) counts.errors++;
    else {
      counts.acked++;
      if (delivered[g] < expected[g]) {
        counts.lost++;
        counts.missing += expected[g] - delivered[g];
      }
    }
  }
  return counts;
}

function summary(step, cpuPct, drainMs) {
  const counts = countOutcomes(step);
  const span = Math.max(step.lastDelivery, step.end) - step.start; // sending + any backlog
  const meanRoom = counts.sent ? (counts.deliveries + counts.missing) / counts.sent : 0;
  return {
    phase: "step",
    label: step.label,
    warmup: Boolean(step.warmup),
    rate: step.rate,
    seconds: step.seconds,
    ...counts,
    error_codes: step.errorCodes,
    violations: step.violations,
    disconnects,
    deliveries_per_s: round((counts.deliveries * 1000) / span),
    messages_per_s: round(meanRoom ? (counts.deliveries * 1000) / span / meanRoom : 0),
    in_window_deliveries_per_s: round(step.deliveries / step.seconds),
    latency_ms: percentiles(step.latencies),
    ack_ms: percentiles(step.ackLatencies),
    send_lag_ms: percentiles(step.sendLag),
    loadgen_cpu_pct: round(cpuPct),
    drain_ms: round(drainMs),
  };
}

function failedBadly(result) {
  const bad = result.lost || result.unacked || result.errors || result.violations;
  return bad || result.latency_ms.p99 === null || result.latency_ms.p99 > config.giveUpMs;
}

// --- main -------------------------------------------------------------------------

async function main() {
  const clients = config.clients.map((spec) => new Client(spec));
  const rooms = new Map();
  for (const c of clients) rooms.set(c.spec.conversation_id, (rooms.get(c.spec.conversation_id) ?? 0) + 1);
  for (const c of clients) c.roomSize = rooms.get(c.spec.conversation_id);
  const senders = clients.filter((c) => c.spec.sender);
  steps.forEach((step, index) => (step.index = index));

  print({ phase: "connected", clients: clients.length, seconds: round(await connectAll(clients)) });
  await sleep(config.settleSeconds * 1000); // the driver measures the server's memory now
  print({ phase: "joined", rooms: rooms.size, senders: senders.length, seconds: round(await joinAll(clients)) });
  for (const step of steps) {
    const result = await runStep(step, senders);
    print(result);
    await drain(step, config.quietSeconds); // a backlog must not spill into the next step
    if (!step.warmup && !config.keepGoing && failedBadly(result)) {
      print({ phase: "stopped", label: step.label });
      break;
    }
    await sleep(config.gapSeconds * 1000);
  }
  print({ phase: "done", late_deliveries: lateDeliveries, disconnects });
  for (const c of clients) {
    c.closing = true;
    c.ws.close();
  }
  await sleep(500);
  process.exit(0);
}

main().catch((error) => {
  console.error(`loadgen: ${error.stack ?? error}`);
  process.exit(1);
});
