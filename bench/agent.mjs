#!/usr/bin/env node
// bench/agent.mjs — the agent benchmarks' load generator (`make bench`, bench/run.sh).
//
//   node bench/agent.mjs MODE --goosed http://127.0.0.1:P --fake http://127.0.0.1:F [options]
//
// goosed must be running with OPENAI_HOST pointing at the fake provider (tests/fakes/
// fake-provider.mjs, started with --no-log); this script scripts the fake itself (POST /_fake/...).
//
// Modes:
//   replies      --replies N --tokens T --interval-ms I --warmup W (500, 50, 20, 50): N sessions are
//                created first; then one message to each at the same moment (POST
//                /api/sessions/{id}/messages/stream), the fake streaming T tokens I ms apart to each.
//                Before that, for comparison, the same N streams are asked of the fake directly; and
//                before both, W replies each way at once as a warm-up (not counted, but checked).
//                Per reply: the time from sending the request to its message_complete, over the
//                provider's own time T x I ms.
//   first-token  --samples S --warmup W (500, 50), the fake sending --tokens T --interval-ms I (2, 2):
//                sequential, on keep-alive connections, alternating: the fake directly (POST
//                /v1/chat/completions, stream: true, the very body goosed sends it) and goosed (a new
//                session per sample, created before timing); time from sending the request to the
//                first text delta (fake) / first message_chunk (goosed).
//   throughput   --tokens T --runs R (100000, 3): one reply of T tokens at the fake's full speed,
//                from the fake directly and through goosed, R times each; tokens received per
//                second, from sending the request to receiving the last one; and whether goosed
//                stored the whole reply (GET /api/sessions/{id}/messages).
//   memory       --replies N --tokens T --interval-ms I --warmup W (500, 50, 20, N): goosed's memory
//                per concurrent reply, on a goosed of its own (start a new one for each N). N + 1
//                sessions are created and one short reply asked (not counted); then the same N
//                streams from the fake directly (after a warm-up of W, for its JIT; for comparison);
//                then goosed's VmRSS ("base"), N new connections to goosed, VmHWM reset (writing 5
//                to /proc/PID/clear_refs), and one message on each at the same moment, as in
//                `replies` but with no warm-up through goosed (a warm-up would leave its memory in
//                the base): goosed opens its provider connections inside the batch. Peak: VmHWM
//                after the batch (and VmRSS sampled every 10 ms, as a check). Per reply: (peak -
//                base) / N, the reply's client connection included. Then a second batch of N on the
//                same connections to N other sessions (goosed's provider connections open by then,
//                as in `replies` after its warm-up), for its reply times. Every reply must end
//                within --batch-timeout-s (default 60) of its batch's start or counts as failed.
//                Each batch's reply times against the fake's (paired by rank: wd_* for the second
//                batch, gd_* for the first; *_over: how many over 1.2), and goosed's CPU per token
//                relayed (g_/w_cpu_us_per_token: utime + stime over the batch ÷ tokens delivered;
//                g_/w_sys_us_per_token: stime alone, the kernel's part).
//   watchers     --sessions S --per-session P --samples Q --warmup W (50, 100, 1000, 50): goosed's
//                memory per idle watcher. S sessions are created; Q sequential GET /status (after W
//                not counted) on one keep-alive connection; goosed's VmRSS ("base"); then S x P
//                clients, each on its own connection, GET /api/sessions/{id}/events (P per
//                session) and wait, idle; once every one has its 200 head (within
//                --connect-timeout-s, default 60) and --settle-ms (1000) have passed, VmRSS again;
//                then Q GET /status again on a new connection while they stay connected. Per
//                watcher: (connected - base) / (S x P).
//   --local-addresses K (memory, watchers; default 1): the connections to goosed come from
//                127.0.0.1 .. 127.0.0.K in turn, when one address has too few ephemeral ports.
//
// Every reply is checked: status 200, exactly the text `w0 w1 ... w{T-1}`, one message_complete
// (fake: [DONE]), no error event. Output: one line `AGENT_RESULT {json}` on stdout (flat JSON, for
// bench/run.sh); progress on stderr. Exit 0 when every reply was complete and right, 1 otherwise
// (the result line is still printed, with `ok: false`, `errors` and `first_error`), 2 on a usage
// error, a failure to set up, or the --timeout-s deadline (no result line then).
// --goosed-pid / --fake-pid (optional): CPU time (utime + stime from /proc/PID/stat) used by each
// process during the measured part, and goosed's VmHWM right after it.
// Raw node:net sockets with a small HTTP/1.1 client (keep-alive, chunked), timed with
// process.hrtime.bigint() when the bytes arrive, so nothing but the sockets sits between the clock
// and the wire.
import net from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

const USAGE = 'usage: node bench/agent.mjs replies|first-token|throughput|memory|watchers --goosed URL --fake URL\n'
  + '  [--replies N] [--tokens N] [--interval-ms N] [--samples N] [--warmup N] [--runs N]\n'
  + '  [--sessions N] [--per-session N] [--local-addresses N] [--batch-timeout-s N]\n'
  + '  [--connect-timeout-s N] [--settle-ms N] [--timeout-s N] [--goosed-pid PID] [--fake-pid PID]';

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

function usage(msg) {
  process.stderr.write(`agent: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const mode = argv[0];
  if (!['replies', 'first-token', 'throughput', 'memory', 'watchers'].includes(mode)) usage(`unknown mode ${mode ?? '(none)'}`);
  const o = { mode, timeoutS: 120, localAddresses: 1, batchTimeoutS: 60, connectTimeoutS: 60, settleMs: 1000 };
  const ints = {
    '--replies': 'replies', '--tokens': 'tokens', '--interval-ms': 'intervalMs', '--samples': 'samples',
    '--warmup': 'warmup', '--runs': 'runs', '--timeout-s': 'timeoutS', '--goosed-pid': 'goosedPid',
    '--fake-pid': 'fakePid', '--sessions': 'sessions', '--per-session': 'perSession',
    '--local-addresses': 'localAddresses', '--batch-timeout-s': 'batchTimeoutS',
    '--connect-timeout-s': 'connectTimeoutS', '--settle-ms': 'settleMs',
  };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (i + 1 >= argv.length) usage(`missing value for ${a}`);
    const v = argv[++i];
    if (a === '--goosed' || a === '--fake') {
      let u;
      try { u = new URL(v); } catch { usage(`${a}: not a URL: ${v}`); }
      if (u.protocol !== 'http:') usage(`${a}: only http:// URLs`);
      o[a.slice(2)] = { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80), hostHeader: u.host };
    } else if (ints[a]) {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) usage(`${a}: a non-negative integer, got ${v}`);
      o[ints[a]] = n;
    } else usage(`unknown option ${a}`);
  }
  if (!o.goosed || (!o.fake && mode !== 'watchers')) usage(mode === 'watchers' ? '--goosed is required' : '--goosed and --fake are required');
  const defaults = {
    replies: { replies: 500, tokens: 50, intervalMs: 20, warmup: 50 },
    'first-token': { samples: 500, warmup: 50, tokens: 2, intervalMs: 2 },
    throughput: { tokens: 100000, intervalMs: 0, runs: 3 },
    memory: { replies: 500, tokens: 50, intervalMs: 20, warmup: o.replies ?? 500 },
    watchers: { sessions: 50, perSession: 100, samples: 1000, warmup: 50, tokens: 1 },
  }[mode];
  for (const [k, v] of Object.entries(defaults)) o[k] ??= v;
  if (o.tokens < 1) usage('--tokens: at least 1');
  if (o.localAddresses < 1 || o.localAddresses > 254) usage('--local-addresses: 1..254');
  if (mode === 'watchers' && (o.sessions < 1 || o.perSession < 1)) usage('--sessions, --per-session: at least 1');
  return o;
}

const O = parseArgs(process.argv.slice(2));

function log(msg) { process.stderr.write(`agent: ${msg}\n`); }

// The whole run is bounded: past the deadline, say so and exit (the sockets die with us).
setTimeout(() => {
  log(`FAIL: ${O.mode} did not finish within ${O.timeoutS} s (--timeout-s)`);
  process.exit(2);
}, O.timeoutS * 1000);

const now = () => process.hrtime.bigint();
const ms = (a, b) => Number(b - a) / 1e6; // b - a, in milliseconds

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client on one keep-alive socket: one request at a time; the body is handed
// to onBody(buffer, time) as it arrives (chunked framing removed), or collected.
// ---------------------------------------------------------------------------------------------

class Conn {
  constructor(target, localAddress = undefined) {
    this.target = target;
    this.localAddress = localAddress;
    this.sock = null;
    this.cur = null; // the response being read
    this.dead = false;
  }

  open() {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: this.target.host, port: this.target.port, localAddress: this.localAddress });
      s.setNoDelay(true);
      const onErr = (e) => reject(new Error(`connect ${this.target.hostHeader}${this.localAddress ? ` from ${this.localAddress}` : ''}: ${e.message}`));
      s.once('error', onErr);
      s.once('connect', () => {
        s.off('error', onErr);
        this.sock = s;
        s.on('data', (b) => this.onData(b, now()));
        s.on('error', (e) => this.fail(new Error(`socket error: ${e.message}`)));
        s.on('close', () => {
          this.dead = true;
          const r = this.cur;
          if (r && r.phase === 'body' && r.mode === 'close') this.finish(now());
          else this.fail(new Error(r && r.phase === 'body' ? 'connection closed mid-body' : 'connection closed before the response'));
        });
        resolve(this);
      });
    });
  }

  close() { this.sock?.destroy(); this.dead = true; }

  /** Sends prebuilt request bytes; resolves with {status, headers, body?, tSend, tHead, tEnd}. */
  send(bytes, onBody = null) {
    if (this.cur) throw new Error('Conn.send: a request is already in flight');
    if (this.dead) return Promise.reject(new Error('connection is closed'));
    return new Promise((resolve, reject) => {
      this.cur = {
        phase: 'head', head: null, onBody, resolve, reject, parts: onBody ? null : [],
        mode: null, left: 0, cs: 'size', line: '', status: 0, headers: {}, tSend: 0n, tHead: 0n,
      };
      this.cur.tSend = now();
      this.sock.write(bytes);
    });
  }

  fail(err) {
    const r = this.cur;
    if (!r) return;
    this.cur = null;
    this.close();
    r.reject(err);
  }

  finish(t) {
    const r = this.cur;
    this.cur = null;
    if (r.headers.connection?.toLowerCase() === 'close') this.close();
    r.resolve({
      status: r.status, headers: r.headers, body: r.parts ? Buffer.concat(r.parts) : null,
      tSend: r.tSend, tHead: r.tHead, tEnd: t,
    });
  }

  emit(r, b, t) {
    if (b.length === 0) return;
    if (r.onBody) r.onBody(b, t);
    else r.parts.push(b);
  }

  onData(buf, t) {
    let off = 0;
    while (off < buf.length) {
      const r = this.cur;
      if (!r) { this.fail(new Error('bytes arrived with no request in flight')); return; }
      if (r.phase === 'head') {
        r.head = r.head ? Buffer.concat([r.head, buf.subarray(off)]) : buf.subarray(off);
        const i = r.head.indexOf('\r\n\r\n');
        if (i < 0) return;
        const lines = r.head.toString('latin1', 0, i).split('\r\n');
        buf = r.head.subarray(i + 4);
        off = 0;
        r.head = null;
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
        if (!m) { this.fail(new Error(`bad status line: ${lines[0]}`)); return; }
        r.status = Number(m[1]);
        if (r.status >= 100 && r.status < 200) continue; // an interim response: read the next head
        for (const l of lines.slice(1)) {
          const c = l.indexOf(':');
          if (c > 0) r.headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
        }
        r.tHead = t;
        r.phase = 'body';
        if (r.status === 204 || r.status === 304) r.mode = 'none';
        else if (/chunked/i.test(r.headers['transfer-encoding'] ?? '')) r.mode = 'chunked';
        else if (r.headers['content-length'] !== undefined) { r.mode = 'length'; r.left = Number(r.headers['content-length']); }
        else r.mode = 'close';
        if (r.mode === 'none' || (r.mode === 'length' && r.left === 0)) {
          this.finish(t);
          if (buf.length) { this.fail(new Error('unexpected bytes after a response')); return; }
        }
        continue;
      }
      if (r.mode === 'length' || r.mode === 'close') {
        const n = r.mode === 'close' ? buf.length - off : Math.min(r.left, buf.length - off);
        this.emit(r, buf.subarray(off, off + n), t);
        off += n;
        if (r.mode === 'length') {
          r.left -= n;
          if (r.left === 0) this.finish(t);
        }
        continue;
      }
      // chunked
      if (r.cs === 'size' || r.cs === 'trailer') {
        const nl = buf.indexOf(10, off);
        if (nl < 0) { r.line += buf.toString('latin1', off); return; }
        const line = (r.line + buf.toString('latin1', off, nl)).replace(/\r$/, '');
        r.line = '';
        off = nl + 1;
        if (r.cs === 'trailer') {
          if (line === '') this.finish(t);
          continue;
        }
        const size = parseInt(line.split(';')[0], 16);
        if (!Number.isFinite(size)) { this.fail(new Error(`bad chunk size line: ${line}`)); return; }
        if (size === 0) r.cs = 'trailer';
        else { r.cs = 'data'; r.left = size; }
      } else if (r.cs === 'data') {
        const n = Math.min(r.left, buf.length - off);
        this.emit(r, buf.subarray(off, off + n), t);
        off += n;
        r.left -= n;
        if (r.left === 0) { r.cs = 'crlf'; r.line = ''; }
      } else { // the CRLF after a chunk's data
        const nl = buf.indexOf(10, off);
        if (nl < 0) return;
        off = nl + 1;
        r.cs = 'size';
      }
    }
  }
}

function requestBytes(target, method, path, body, extra = {}) {
  const b = body === undefined ? null : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  let h = `${method} ${path} HTTP/1.1\r\nHost: ${target.hostHeader}\r\n`;
  if (b) h += `Content-Type: application/json\r\nContent-Length: ${b.length}\r\n`;
  for (const [k, v] of Object.entries(extra)) h += `${k}: ${v}\r\n`;
  h += '\r\n';
  return b ? Buffer.concat([Buffer.from(h, 'latin1'), b]) : Buffer.from(h, 'latin1');
}

/** The local address of the i-th connection to goosed: 127.0.0.1 .. 127.0.0.K in turn (--local-addresses K),
 *  or the system's choice when K is 1. */
function localAddress(i) {
  return O.localAddresses > 1 ? `127.0.0.${1 + (i % O.localAddresses)}` : undefined;
}

async function openConns(target, n, spread = false) {
  const out = [];
  for (let i = 0; i < n; i += 64) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 64); j++) batch.push(new Conn(target, spread ? localAddress(j) : undefined).open());
    out.push(...await Promise.all(batch));
  }
  return out;
}

/** One JSON request; throws unless the status is `want`. */
async function call(conn, method, path, body, want = 200) {
  const res = await conn.send(requestBytes(conn.target, method, path, body));
  const text = res.body.toString('utf8');
  if (res.status !== want) throw new Error(`${method} ${path}: expected ${want}, got ${res.status}: ${text.slice(0, 300)}`);
  return text === '' ? null : JSON.parse(text);
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events: blocks separated by a blank line; `event:`, `data:` lines; comments skipped.
// ---------------------------------------------------------------------------------------------

class SSE {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.dec = new StringDecoder('utf8');
    this.buf = '';
  }

  feed(chunk, t) {
    let s = this.dec.write(chunk);
    if (s.includes('\r')) s = s.replace(/\r\n?/g, '\n');
    this.buf += s;
    let start = 0;
    for (;;) {
      const end = this.buf.indexOf('\n\n', start);
      if (end < 0) break;
      let event = 'message';
      let data = null;
      for (const line of this.buf.slice(start, end).split('\n')) {
        if (line.startsWith('data:')) {
          const v = line.slice(line[5] === ' ' ? 6 : 5);
          data = data === null ? v : `${data}\n${v}`;
        } else if (line.startsWith('event:')) event = line.slice(line[6] === ' ' ? 7 : 6);
      }
      start = end + 2;
      if (data !== null) this.onEvent(event, data, t);
    }
    this.buf = start === this.buf.length ? '' : this.buf.slice(start);
  }
}

// ---------------------------------------------------------------------------------------------
// One streamed reply, through goosed or from the fake directly
// ---------------------------------------------------------------------------------------------

function newReply() {
  return { status: 0, text: '', chunks: 0, complete: 0, done: 0, errors: [], tSend: 0n, tFirst: 0n, tLast: 0n, tComplete: 0n, tEnd: 0n };
}

function firstText(r, t) {
  r.chunks++;
  if (r.tFirst === 0n) r.tFirst = t;
  r.tLast = t;
}

/** goosed's SSE: message_chunk {type, text}, message_complete, error. */
function goosedSink(r) {
  return new SSE((event, data, t) => {
    if (event === 'message_chunk') {
      const d = JSON.parse(data);
      if (d.type === 'text') { r.text += d.text; firstText(r, t); }
    } else if (event === 'message_complete') {
      r.complete++;
      r.tComplete = t;
    } else if (event === 'error') r.errors.push(`error event: ${data}`);
  });
}

/** The fake's OpenAI stream: data: chunk JSON ... data: [DONE]. */
function directSink(r) {
  return new SSE((event, data, t) => {
    if (data === '[DONE]') { r.done++; r.tComplete = t; return; }
    const d = JSON.parse(data);
    if (d.error) { r.errors.push(`error chunk: ${data}`); return; }
    const c = d.choices?.[0]?.delta?.content;
    if (typeof c === 'string' && c !== '') { r.text += c; firstText(r, t); }
  });
}

/** Sends `bytes` on `conn` and reads the streamed reply into `r` (never rejects: errors go to r.errors). */
async function streamReply(conn, bytes, r, direct) {
  const sink = direct ? directSink(r) : goosedSink(r);
  let bad = null; // a non-200 answer: keep its body for the message
  try {
    const res = await conn.send(bytes, (b, t) => {
      if (bad) { bad.push(b); return; }
      if (conn.cur.status !== 200) { bad = [b]; return; }
      try { sink.feed(b, t); } catch (e) { r.errors.push(`unparseable event: ${e.message}`); }
    });
    r.status = res.status;
    r.tSend = res.tSend;
    r.tEnd = res.tEnd;
    if (res.status !== 200) r.errors.push(`HTTP ${res.status}: ${Buffer.concat(bad ?? []).toString('utf8').slice(0, 200)}`);
  } catch (e) {
    r.errors.push(e.message);
  }
  return r;
}

const expectedCache = new Map();
function expectedText(n) {
  if (!expectedCache.has(n)) {
    const parts = new Array(n);
    for (let i = 0; i < n; i++) parts[i] = i === 0 ? 'w0' : ` w${i}`;
    expectedCache.set(n, parts.join(''));
  }
  return expectedCache.get(n);
}

/** The problems with one finished reply (empty when it is complete and right). */
function check(r, tokens, direct) {
  const seen = new Map(); // identical errors (e.g. several events_lost) counted, not repeated
  for (const e of r.errors) seen.set(e, (seen.get(e) ?? 0) + 1);
  const p = [...seen].map(([e, n]) => (n > 1 ? `${n} x ${e}` : e));
  if (r.status === 200) {
    const want = expectedText(tokens);
    if (r.text !== want) {
      p.push(`text: ${r.text.length} characters, want ${want.length} (${r.chunks} text chunks; ends "${r.text.slice(-24)}")`);
    }
    if (direct && r.done !== 1) p.push(`[DONE] seen ${r.done} times`);
    if (!direct && r.complete !== 1) p.push(`message_complete seen ${r.complete} times`);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Statistics, the fake's control routes, /proc
// ---------------------------------------------------------------------------------------------

function pct(sorted, q) { // nearest rank
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((q / 100) * sorted.length) - 1))];
}
const r3 = (x) => Number(x.toFixed(3));

function summary(values, prefix) {
  const s = [...values].sort((a, b) => a - b);
  return {
    [`${prefix}_p50`]: r3(pct(s, 50)), [`${prefix}_p99`]: r3(pct(s, 99)), [`${prefix}_max`]: r3(s.at(-1) ?? NaN),
    [`${prefix}_min`]: r3(s[0] ?? NaN), [`${prefix}_mean`]: r3(s.reduce((a, b) => a + b, 0) / (s.length || 1)),
  };
}

/** A new control connection to the fake in place of `fc`: the fake closes a keep-alive connection
 *  after 30 s idle, as a batch that runs into its deadline leaves this one. */
async function freshFake(fc) {
  fc.close();
  const [c] = await openConns(O.fake, 1);
  return c;
}

async function fakeSetup(conn, response) {
  await call(conn, 'POST', '/_fake/reset', {});
  await call(conn, 'POST', '/_fake/config', { log: false });
  await call(conn, 'POST', '/_fake/script', { default: response });
}

const TICKS = 100; // USER_HZ on Linux
function cpuSeconds(pid, kernelOnly = false) {
  if (!pid) return null;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // utime, stime (fields 14 and 15); stime alone: the kernel's share (system calls, the
    // loopback network stack run on the sender's behalf)
    return ((kernelOnly ? 0 : Number(f[11])) + Number(f[12])) / TICKS;
  } catch { return null; }
}
function statusKb(pid, key) {
  if (!pid) return null;
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch { return null; }
}
function cpuMark() {
  return { g: cpuSeconds(O.goosedPid), gk: cpuSeconds(O.goosedPid, true), f: cpuSeconds(O.fakePid), c: process.cpuUsage(), t: now() };
}
function cpuSince(m, prefix) {
  const g = cpuSeconds(O.goosedPid);
  const f = cpuSeconds(O.fakePid);
  const c = process.cpuUsage(m.c);
  const o = { [`${prefix}_wall_s`]: r3(ms(m.t, now()) / 1000), [`${prefix}_client_cpu_s`]: r3((c.user + c.system) / 1e6) };
  if (g !== null && m.g !== null) o[`${prefix}_goosed_cpu_s`] = r3(g - m.g);
  const gk = cpuSeconds(O.goosedPid, true);
  if (gk !== null && m.gk !== null) o[`${prefix}_goosed_sys_s`] = r3(gk - m.gk);
  if (f !== null && m.f !== null) o[`${prefix}_fake_cpu_s`] = r3(f - m.f);
  return o;
}

async function createSessions(conns, n) {
  const ids = new Array(n);
  let next = 0;
  const body = { working_directory: '/tmp' };
  await Promise.all(conns.map(async (c) => {
    while (next < n) {
      const i = next++;
      ids[i] = (await call(c, 'POST', '/api/sessions', body, 201)).id;
    }
  }));
  return ids;
}

const streamPath = (id) => `/api/sessions/${id}/messages/stream`;
const MESSAGE = { content: 'hi' };
let DIRECT_PATH = '/v1/chat/completions';
let DIRECT_BODY = JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] });

/** Asks goosed for one short reply (the warm-up) with the fake's request log on, and keeps the body
 *  goosed sent, so the direct calls send the fake exactly what goosed sends it. */
async function captureProviderRequest(fakeConn, goosedConn, id) {
  await call(fakeConn, 'POST', '/_fake/config', { log: true });
  await call(fakeConn, 'DELETE', '/_fake/requests');
  await call(fakeConn, 'POST', '/_fake/script?append=1', { responses: [{ tokens: 3 }] });
  const r = await streamReply(goosedConn, requestBytes(goosedConn.target, 'POST', streamPath(id), MESSAGE), newReply(), false);
  const p = check(r, 3, false);
  if (p.length) throw new Error(`warm-up reply through goosed failed: ${p.join('; ')}`);
  const reqs = await call(fakeConn, 'GET', '/_fake/requests?provider=openai');
  await call(fakeConn, 'POST', '/_fake/config', { log: false });
  await call(fakeConn, 'DELETE', '/_fake/requests');
  const last = reqs.at(-1);
  if (!last || !last.body || last.body.stream !== true) throw new Error('goosed sent the fake no streamed OpenAI request');
  DIRECT_PATH = last.path + (Object.keys(last.query ?? {}).length ? `?${new URLSearchParams(last.query)}` : '');
  DIRECT_BODY = JSON.stringify(last.body);
}

function directBytes(target) {
  return requestBytes(target, 'POST', DIRECT_PATH, DIRECT_BODY, { Authorization: 'Bearer sk-bench', Accept: 'text/event-stream' });
}

// ---------------------------------------------------------------------------------------------
// Modes
// ---------------------------------------------------------------------------------------------

/** Sends every request in one synchronous loop ("at the same moment") and waits for all replies.
 *  With deadlineS, a reply not finished that many seconds after the first request is failed and
 *  its connection closed. */
async function batch(conns, bytesList, direct, tokens, deadlineS = 0) {
  const replies = conns.map(() => newReply());
  const finished = conns.map(() => false);
  const tFirst = now();
  const waits = conns.map((c, i) => streamReply(c, bytesList[i], replies[i], direct).then(() => { finished[i] = true; }));
  const tLastSent = now();
  const timer = deadlineS > 0 ? setTimeout(() => {
    let n = 0;
    conns.forEach((c, i) => {
      if (finished[i]) return;
      n++;
      replies[i].errors.push(`no complete reply within ${deadlineS} s of the batch's first request`);
      c.close();
    });
    log(`${n} of ${conns.length} replies not finished within ${deadlineS} s: closed their connections`);
  }, deadlineS * 1000) : null;
  await Promise.all(waits);
  if (timer) clearTimeout(timer);
  const tAll = replies.reduce((a, r) => (r.tComplete > a ? r.tComplete : a), 0n);
  const problems = replies.map((r) => check(r, tokens, direct));
  return { replies, problems, tFirst, tLastSent, tAll };
}

function batchFigures(b, prefix, providerMs) {
  const ok = b.replies.filter((r, i) => b.problems[i].length === 0);
  const dur = ok.map((r) => ms(r.tSend, r.tComplete));
  const first = ok.map((r) => ms(r.tSend, r.tFirst));
  const stream = ok.map((r) => ms(r.tFirst, r.tLast));
  const tail = ok.map((r) => ms(r.tLast, r.tComplete));
  const bad = b.problems.filter((p) => p.length);
  const chunks = ok.map((r) => r.chunks);
  return {
    [`${prefix}_ok`]: ok.length,
    [`${prefix}_errors`]: bad.length,
    [`${prefix}_first_error`]: bad.length ? bad[0].join('; ').slice(0, 300) : '',
    ...summary(dur, `${prefix}_dur_ms`),
    ...summary(dur.map((d) => d / providerMs), `${prefix}_ratio`),
    ...summary(first, `${prefix}_first_ms`),
    ...summary(stream, `${prefix}_stream_ms`),
    ...summary(tail, `${prefix}_tail_ms`),
    [`${prefix}_over_limit`]: dur.filter((d) => d > 1.2 * providerMs).length,
    [`${prefix}_batch_wall_ms`]: r3(ms(b.tFirst, b.tAll)),
    [`${prefix}_send_spread_ms`]: r3(ms(b.tFirst, b.tLastSent)),
    [`${prefix}_chunks_min`]: Math.min(...chunks),
    [`${prefix}_chunks_max`]: Math.max(...chunks),
  };
}

/** Each reply of batch `b` against the same load sent straight to the fake (batch `base`, same N),
 *  paired by rank: the k-th fastest through goosed over the reply at the same rank fraction from the
 *  fake (the fastest with the fastest, the median with the median, the slowest with the slowest).
 *  prefix_min / _p50 / _p99 / _max / _mean of those ratios, prefix_over: how many exceed 1.2, and
 *  prefix_n: how many were paired (every reply of `b` that completed). */
function pairedRatios(b, base, prefix) {
  const dur = (x) => x.replies.filter((r, i) => x.problems[i].length === 0).map((r) => ms(r.tSend, r.tComplete)).sort((p, q) => p - q);
  const g = dur(b);
  const d = dur(base);
  if (!g.length || !d.length) return { [`${prefix}_n`]: 0, [`${prefix}_over`]: b.replies.length };
  const ratios = g.map((t, k) => t / d[Math.round((g.length > 1 ? k / (g.length - 1) : 0) * (d.length - 1))]);
  // A reply that failed or did not end counts as over.
  return { ...summary(ratios, prefix), [`${prefix}_n`]: ratios.length, [`${prefix}_over`]: ratios.filter((x) => x > 1.2).length + (b.replies.length - g.length) };
}

async function modeReplies() {
  const { replies: n, tokens, intervalMs } = O;
  const providerMs = tokens * intervalMs;
  let [fc] = await openConns(O.fake, 1);
  const response = { tokens, interval_ms: intervalMs };
  await fakeSetup(fc, response);
  const res = { mode: 'replies', replies: n, tokens, interval_ms: intervalMs, provider_ms: providerMs };

  // Sessions first (not timed), then one warm-up reply, which also gives the body goosed sends.
  const nw = Math.min(O.warmup, n);
  const gconns = await openConns(O.goosed, n);
  log(`creating ${n + 1 + nw} sessions`);
  const ids = await createSessions(gconns.slice(0, 32), n + 1 + nw);
  await captureProviderRequest(fc, gconns[0], ids[n]);
  res.body_bytes = Buffer.byteLength(DIRECT_BODY);

  // Warm-up (the fake's JIT, goosed's first large batch): W replies each way at once, not counted.
  const warmProblems = [];
  if (nw > 0) {
    log(`warm-up: ${nw} replies from the fake directly, then ${nw} through goosed`);
    fc = await freshFake(fc);
    await fakeSetup(fc, response);
    const wconns = await openConns(O.fake, nw);
    const wd = await batch(wconns, wconns.map((c) => directBytes(c.target)), true, tokens);
    for (const c of wconns) c.close();
    const wg = await batch(gconns.slice(0, nw), gconns.slice(0, nw).map((c, i) => requestBytes(c.target, 'POST', streamPath(ids[n + 1 + i]), MESSAGE)), false, tokens);
    for (const p of [...wd.problems, ...wg.problems]) if (p.length) warmProblems.push(`warm-up: ${p.join('; ')}`);
  }
  res.warmup = nw;
  res.warmup_errors = warmProblems.length;

  // The fake on its own: the same N streams, asked of it directly at the same moment.
  log(`${n} replies from the fake directly`);
  const dconns = await openConns(O.fake, n);
  fc = await freshFake(fc);
  await fakeSetup(fc, response);
  const dBytes = dconns.map((c) => directBytes(c.target));
  let mark = cpuMark();
  const d = await batch(dconns, dBytes, true, tokens);
  Object.assign(res, batchFigures(d, 'd', providerMs), cpuSince(mark, 'd'));
  fc = await freshFake(fc);
  let st = await call(fc, 'GET', '/_fake/stats');
  Object.assign(res, { d_fake_late_mean_ms: st.late_mean_ms, d_fake_late_max_ms: st.late_max_ms, d_fake_peak: st.peak });
  for (const c of dconns) c.close();

  // Through goosed.
  log(`${n} replies through goosed`);
  fc = await freshFake(fc);
  await fakeSetup(fc, response);
  res.hwm_before_kb = statusKb(O.goosedPid, 'VmHWM');
  res.rss_before_kb = statusKb(O.goosedPid, 'VmRSS');
  const gBytes = gconns.map((c, i) => requestBytes(c.target, 'POST', streamPath(ids[i]), MESSAGE));
  mark = cpuMark();
  const g = await batch(gconns, gBytes, false, tokens);
  Object.assign(res, batchFigures(g, 'g', providerMs), cpuSince(mark, 'g'));
  res.hwm_kb = statusKb(O.goosedPid, 'VmHWM');
  res.rss_after_kb = statusKb(O.goosedPid, 'VmRSS');
  fc = await freshFake(fc);
  st = await call(fc, 'GET', '/_fake/stats');
  Object.assign(res, { g_fake_late_mean_ms: st.late_mean_ms, g_fake_late_max_ms: st.late_max_ms, g_fake_peak: st.peak, g_fake_served: st.served });
  for (const c of gconns) c.close();
  fc.close();
  res.errors = res.g_errors + res.d_errors + res.warmup_errors;
  res.first_error = res.g_first_error || res.d_first_error || (warmProblems[0] ?? '').slice(0, 300);
  return res;
}

async function modeFirstToken() {
  const { samples, warmup, tokens, intervalMs } = O;
  const [fc] = await openConns(O.fake, 1);
  const response = { tokens, interval_ms: intervalMs };
  await fakeSetup(fc, response);
  const [gc, sc] = await openConns(O.goosed, 2);
  const [dc] = await openConns(O.fake, 1);
  const total = samples + warmup;
  log(`creating ${total + 1} sessions`);
  const ids = await createSessions([sc], total + 1);
  sc.close();
  await captureProviderRequest(fc, gc, ids[total]);
  await fakeSetup(fc, response);
  const dBytes = directBytes(dc.target);

  const g = [];
  const d = [];
  const problems = [];
  let mark = cpuMark();
  log(`${warmup} + ${samples} samples each, alternating the fake directly and goosed`);
  for (let i = 0; i < total; i++) {
    if (i === warmup) mark = cpuMark();
    const gb = requestBytes(gc.target, 'POST', streamPath(ids[i]), MESSAGE);
    const order = i % 2 === 0 ? [true, false] : [false, true]; // which goes first alternates
    for (const direct of order) {
      const r = await streamReply(direct ? dc : gc, direct ? dBytes : gb, newReply(), direct);
      const p = check(r, tokens, direct);
      if (p.length) { problems.push(`${direct ? 'fake' : 'goosed'} sample ${i}: ${p.join('; ')}`); continue; }
      if (i >= warmup) (direct ? d : g).push(ms(r.tSend, r.tFirst));
    }
  }
  const gs = summary(g, 'g_first_ms');
  const ds = summary(d, 'd_first_ms');
  return {
    mode: 'first-token', samples, warmup, tokens, interval_ms: intervalMs,
    body_bytes: Buffer.byteLength(DIRECT_BODY), direct_path: DIRECT_PATH,
    ...gs, ...ds,
    added_p50_ms: r3(gs.g_first_ms_p50 - ds.d_first_ms_p50),
    added_p99_ms: r3(gs.g_first_ms_p99 - ds.d_first_ms_p99),
    g_samples: g.length, d_samples: d.length,
    ...cpuSince(mark, 'm'),
    errors: problems.length, first_error: problems[0]?.slice(0, 300) ?? '',
  };
}

async function modeThroughput() {
  const { tokens, runs } = O;
  const [fc] = await openConns(O.fake, 1);
  const response = { tokens, interval_ms: 0 };
  await fakeSetup(fc, response);
  const [gc] = await openConns(O.goosed, 1);
  const [dc] = await openConns(O.fake, 1);
  const ids = await createSessions([gc], runs + 1);
  await captureProviderRequest(fc, gc, ids[runs]);
  await fakeSetup(fc, response);
  const res = { mode: 'throughput', tokens, runs, body_bytes: Buffer.byteLength(DIRECT_BODY), g_complete_runs: 0, d_complete_runs: 0 };
  const problems = [];
  const tps = { g: [], d: [] };
  for (let i = 0; i < runs; i++) {
    for (const direct of [true, false]) {
      const k = `${direct ? 'd' : 'g'}${i + 1}`;
      const who = direct ? 'the fake directly' : 'through goosed';
      const bytes = direct ? directBytes(dc.target) : requestBytes(gc.target, 'POST', streamPath(ids[i]), MESSAGE);
      const mark = cpuMark();
      const r = await streamReply(direct ? dc : gc, bytes, newReply(), direct);
      Object.assign(res, cpuSince(mark, k));
      const p = check(r, tokens, direct);
      // The rate counts the tokens (words w0 w1 ...) that arrived, so a run that lost some still has
      // a figure. goosed may deliver several tokens in one chunk (a client that falls behind gets
      // the pending text merged rather than lost), so chunks are not tokens.
      const arrived = (r.text.match(/w\d+/g) ?? []).length;
      const rate = arrived && r.tLast ? arrived / (ms(r.tSend, r.tLast) / 1000) : 0;
      Object.assign(res, {
        [`${k}_tps`]: Math.round(rate),
        [`${k}_tokens`]: arrived,
        [`${k}_chunks`]: r.chunks,
        [`${k}_lost_events`]: r.errors.filter((e) => e.includes('events_lost')).length,
        [`${k}_first_ms`]: r.tFirst ? r3(ms(r.tSend, r.tFirst)) : null,
        [`${k}_last_ms`]: r.tLast ? r3(ms(r.tSend, r.tLast)) : null,
        [`${k}_ok`]: p.length === 0,
      });
      if (!direct && r.status === 200) {
        // What goosed stored: tells a relay that dropped events from a reply that lost tokens.
          const msgs = await call(gc, 'GET', `/api/sessions/${ids[i]}/messages`);
        const last = msgs.at(-1);
        res[`${k}_stored_ok`] = last?.role === 'assistant' && last.content?.[0]?.text === expectedText(tokens);
      }
      if (p.length) problems.push(`${who}, run ${i + 1}: ${p.join('; ')}`);
      if (r.status === 200) tps[direct ? 'd' : 'g'].push(rate);
      if (p.length === 0) res[`${direct ? 'd' : 'g'}_complete_runs`]++;
      log(`${who}, run ${i + 1}: ${Math.round(rate)} tokens/s, ${arrived} of ${tokens} tokens in ${r.chunks} text chunks${p.length ? ` (${p.join('; ')})` : ''}`);
    }
  }
  // Best of the runs (a run that lost events counts the chunks that did arrive; see *_complete_runs).
  res.g_tps_best = Math.round(Math.max(0, ...tps.g));
  res.d_tps_best = Math.round(Math.max(0, ...tps.d));
  res.errors = problems.length;
  res.first_error = problems[0]?.slice(0, 300) ?? '';
  return res;
}


// ---------------------------------------------------------------------------------------------
// Memory: per concurrent reply, per idle watcher
// ---------------------------------------------------------------------------------------------

const sleep = (msec) => new Promise((resolve) => setTimeout(resolve, msec));

/** Resets the process's VmHWM to its VmRSS now (Linux: 5 into /proc/PID/clear_refs); false when
 *  it could not (then VmHWM is the peak since the process started). */
function resetHwm(pid) {
  if (!pid) return false;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch (e) {
    log(`could not reset goosed's VmHWM (/proc/${pid}/clear_refs: ${e.code ?? e.message}); its peak is since start-up`);
    return false;
  }
}

/** Samples the process's VmRSS every `everyMs` until stopped; stop() returns the largest seen. */
function rssSampler(pid, everyMs) {
  let max = statusKb(pid, 'VmRSS') ?? 0;
  const t = setInterval(() => { max = Math.max(max, statusKb(pid, 'VmRSS') ?? 0); }, everyMs);
  return { stop() { clearInterval(t); return Math.max(max, statusKb(pid, 'VmRSS') ?? 0); } };
}

async function modeMemory() {
  const { replies: n, tokens, intervalMs } = O;
  const pid = O.goosedPid;
  if (!pid) usage('memory: --goosed-pid is required (the figures are its /proc/PID/status)');
  const providerMs = tokens * intervalMs;
  let [fc] = await openConns(O.fake, 1);
  const response = { tokens, interval_ms: intervalMs };
  await fakeSetup(fc, response);
  const res = { mode: 'memory', replies: n, tokens, interval_ms: intervalMs, provider_ms: providerMs, local_addresses: O.localAddresses };

  // Sessions and one short reply first, on a few connections closed before the base is read.
  const sconns = await openConns(O.goosed, 8);
  log(`creating ${2 * n + 1} sessions`);
  const ids = await createSessions(sconns, 2 * n + 1);
  await captureProviderRequest(fc, sconns[0], ids[2 * n]);
  for (const c of sconns) c.close();
  res.body_bytes = Buffer.byteLength(DIRECT_BODY);

  // The fake on its own, for comparison: a warm-up of W (its JIT), then the same N streams.
  const warmProblems = [];
  if (O.warmup > 0) {
    log(`warm-up: ${O.warmup} replies from the fake directly`);
    fc = await freshFake(fc);
    await fakeSetup(fc, response);
    const wconns = await openConns(O.fake, O.warmup);
    const wd = await batch(wconns, wconns.map((c) => directBytes(c.target)), true, tokens, O.batchTimeoutS);
    for (const c of wconns) c.close();
    for (const p of wd.problems) if (p.length) warmProblems.push(`warm-up (the fake directly): ${p.join('; ')}`);
  }
  res.warmup = O.warmup;
  res.warmup_errors = warmProblems.length;
  log(`${n} replies from the fake directly`);
  const dconns = await openConns(O.fake, n);
  fc = await freshFake(fc);
  await fakeSetup(fc, response);
  let mark = cpuMark();
  const d = await batch(dconns, dconns.map((c) => directBytes(c.target)), true, tokens, O.batchTimeoutS);
  Object.assign(res, batchFigures(d, 'd', providerMs), cpuSince(mark, 'd'));
  fc = await freshFake(fc);
  let st = await call(fc, 'GET', '/_fake/stats');
  Object.assign(res, { d_fake_late_mean_ms: st.late_mean_ms, d_fake_late_max_ms: st.late_max_ms });
  for (const c of dconns) c.close();

  // goosed: the base, then N connections, then the batch with the peak around it.
  await sleep(O.settleMs);
  res.rss_base_kb = statusKb(pid, 'VmRSS');
  res.hwm_base_kb = statusKb(pid, 'VmHWM');
  const gconns = await openConns(O.goosed, n, true);
  res.rss_conns_kb = statusKb(pid, 'VmRSS');
  fc = await freshFake(fc);
  await fakeSetup(fc, response);
  res.hwm_reset = resetHwm(pid);
  res.rss_before_kb = statusKb(pid, 'VmRSS');
  res.hwm_before_kb = statusKb(pid, 'VmHWM');
  log(`${n} replies through goosed (RSS ${res.rss_base_kb} kB before its ${n} connections, ${res.rss_before_kb} kB with them)`);
  const gBytes = gconns.map((c, i) => requestBytes(c.target, 'POST', streamPath(ids[i]), MESSAGE));
  const sampler = rssSampler(pid, 10);
  mark = cpuMark();
  const g = await batch(gconns, gBytes, false, tokens, O.batchTimeoutS);
  Object.assign(res, batchFigures(g, 'g', providerMs), cpuSince(mark, 'g'));
  res.rss_sampled_max_kb = sampler.stop();
  res.hwm_peak_kb = statusKb(pid, 'VmHWM');
  res.rss_end_kb = statusKb(pid, 'VmRSS');
  fc = await freshFake(fc);
  st = await call(fc, 'GET', '/_fake/stats');
  Object.assign(res, { g_fake_late_mean_ms: st.late_mean_ms, g_fake_late_max_ms: st.late_max_ms, g_fake_served: st.served });

  // A second batch right after, on the same connections, to N other sessions: goosed's provider
  // connections are open by now, as in `replies` after its warm-up. Its times compare with those.
  fc = await freshFake(fc);
  await fakeSetup(fc, response);
  res.w_hwm_reset = resetHwm(pid);
  log(`a second batch of ${n} replies through goosed`);
  const wBytes = gconns.map((c, i) => requestBytes(c.target, 'POST', streamPath(ids[n + i]), MESSAGE));
  mark = cpuMark();
  const w = await batch(gconns, wBytes, false, tokens, O.batchTimeoutS);
  Object.assign(res, batchFigures(w, 'w', providerMs), cpuSince(mark, 'w'));
  res.w_hwm_peak_kb = statusKb(pid, 'VmHWM');
  res.w_rss_end_kb = statusKb(pid, 'VmRSS');
  // Against the same load straight to the fake, and goosed's CPU per token relayed.
  Object.assign(res, pairedRatios(w, d, 'wd'), pairedRatios(g, d, 'gd'));
  for (const p of ['g', 'w']) {
    const cpu = res[`${p}_goosed_cpu_s`];
    const relayed = res[`${p}_ok`] * tokens;
    res[`${p}_cpu_us_per_token`] = cpu === undefined || !relayed ? null : r3((cpu * 1e6) / relayed);
    const sys = res[`${p}_goosed_sys_s`];
    res[`${p}_sys_us_per_token`] = sys === undefined || !relayed ? null : r3((sys * 1e6) / relayed);
  }
  for (const c of gconns) c.close();
  fc.close();
  await sleep(O.settleMs);
  res.rss_closed_kb = statusKb(pid, 'VmRSS');

  const peak = Math.max(res.hwm_peak_kb ?? 0, res.rss_sampled_max_kb ?? 0);
  res.peak_kb = peak;
  res.delta_kb = peak - res.rss_base_kb;
  res.per_reply_kb = r3(res.delta_kb / n);
  res.conns_delta_kb = res.rss_conns_kb - res.rss_base_kb;
  res.per_conn_kb = r3(res.conns_delta_kb / n);
  res.errors = res.g_errors + res.w_errors + res.d_errors + res.warmup_errors;
  res.first_error = res.g_first_error || res.w_first_error || res.d_first_error || (warmProblems[0] ?? '').slice(0, 300);
  log(`peak ${peak} kB, base ${res.rss_base_kb} kB: ${res.per_reply_kb} kB per reply; worst reply ${res.g_ratio_max} x the provider's ${providerMs} ms`);
  return res;
}

/** One idle SSE client on a connection of its own: `opened` resolves once its response head has
 *  arrived, or it failed (status stays 0, error says why); bytes after the head are counted. */
class Watcher {
  constructor(target, path, local) {
    this.target = target;
    this.path = path;
    this.local = local;
    this.status = 0;
    this.error = '';
    this.closed = false;
    this.bytes = 0; // body bytes received after the head (pings, if any)
    this.sock = null;
  }

  open() {
    return new Promise((resolve) => {
      let head = Buffer.alloc(0);
      const s = net.connect({ host: this.target.host, port: this.target.port, localAddress: this.local });
      this.sock = s;
      this.resolve = resolve;
      s.setNoDelay(true);
      s.on('connect', () => s.write(requestBytes(this.target, 'GET', this.path, undefined, { Accept: 'text/event-stream' })));
      s.on('data', (b) => {
        if (this.status) { this.bytes += b.length; return; }
        head = Buffer.concat([head, b]);
        const i = head.indexOf('\r\n\r\n');
        if (i < 0) return;
        const line = head.toString('latin1', 0, head.indexOf('\r\n'));
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(line);
        this.status = m ? Number(m[1]) : 999;
        this.bytes = head.length - i - 4;
        if (this.status !== 200) this.error = `HTTP ${line.slice(9)}: ${head.toString('utf8', i + 4).slice(0, 200)}`;
        resolve();
      });
      s.on('error', (e) => { this.error ||= `${e.message}${this.local ? ` (from ${this.local})` : ''}`; });
      s.on('close', () => {
        this.closed = true;
        if (!this.status) { this.error ||= 'connection closed before the response head'; resolve(); }
      });
    });
  }

  fail(msg) {
    if (this.status) return;
    this.error ||= msg;
    this.close();
    this.resolve?.();
  }

  close() { this.sock?.destroy(); }
}

/** Opens every watcher, at most `parallel` connecting at once; gives up on the rest after deadlineS. */
async function openWatchers(ws, parallel, deadlineS) {
  let next = 0;
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    for (const w of ws) if (!w.status) w.fail(`no response head within ${deadlineS} s`);
  }, deadlineS * 1000);
  await Promise.all(Array.from({ length: Math.min(parallel, ws.length) }, async () => {
    while (next < ws.length && !late) await ws[next++].open();
  }));
  clearTimeout(timer);
  for (const w of ws) if (!w.status && !w.error) w.error = `not opened: no response head within ${deadlineS} s`;
}

/** `n` sequential GET /status on `conn` after `warmup` not counted: latency figures, prefix_*. A
 *  request unanswered within 10 s ends the sampling (the rest count as errors). */
async function statusSamples(conn, warmup, n, prefix) {
  const t = [];
  let bad = 0;
  let firstBad = '';
  const bytes = requestBytes(conn.target, 'GET', '/status');
  for (let i = 0; i < warmup + n; i++) {
    let timer;
    const late = new Promise((resolve) => { timer = setTimeout(resolve, 10000); });
    let r;
    try {
      r = await Promise.race([conn.send(bytes), late]);
    } catch (e) {
      r = { status: 0, body: Buffer.from(e.message) };
    }
    clearTimeout(timer);
    if (r === undefined) {
      bad += warmup + n - i;
      firstBad ||= 'GET /status: no answer within 10 s';
      conn.close();
      break;
    }
    if (r.status !== 200) {
      bad++;
      firstBad ||= `GET /status: HTTP ${r.status}: ${r.body.toString('utf8').slice(0, 200)}`;
      continue;
    }
    if (i >= warmup) t.push(ms(r.tSend, r.tEnd));
  }
  return { ...summary(t, `${prefix}_ms`), [`${prefix}_samples`]: t.length, [`${prefix}_errors`]: bad, [`${prefix}_first_error`]: firstBad };
}

async function modeWatchers() {
  const { sessions: ns, perSession: per, samples, warmup } = O;
  const pid = O.goosedPid;
  if (!pid) usage('watchers: --goosed-pid is required (the figures are its /proc/PID/status)');
  const total = ns * per;
  const res = { mode: 'watchers', sessions: ns, per_session: per, watchers: total, samples, warmup, local_addresses: O.localAddresses };
  const sconns = await openConns(O.goosed, 4);
  log(`creating ${ns} sessions`);
  const ids = await createSessions(sconns, ns);
  for (const c of sconns) c.close();

  let [sc] = await openConns(O.goosed, 1);
  Object.assign(res, await statusSamples(sc, warmup, samples, 'idle_status'));
  sc.close();
  await sleep(O.settleMs);
  res.rss_base_kb = statusKb(pid, 'VmRSS');
  res.hwm_reset = resetHwm(pid);
  res.hwm_base_kb = statusKb(pid, 'VmHWM');

  log(`connecting ${total} watchers (${per} on each of ${ns} sessions)`);
  const ws = Array.from({ length: total }, (_, i) => new Watcher(O.goosed, `/api/sessions/${ids[i % ns]}/events`, localAddress(i)));
  const mark = cpuMark();
  // half of them first: the memory at half the load too, to see how it grows
  const half = Math.floor(total / 2);
  await openWatchers(ws.slice(0, half), 128, O.connectTimeoutS);
  await sleep(O.settleMs);
  res.half = half;
  res.half_connected = ws.slice(0, half).filter((w) => w.status === 200).length;
  res.rss_half_kb = statusKb(pid, 'VmRSS');
  res.per_watcher_kb_half = half ? r3((res.rss_half_kb - res.rss_base_kb) / half) : 0;
  await openWatchers(ws.slice(half), 128, O.connectTimeoutS);
  Object.assign(res, cpuSince(mark, 'connect'));
  const failed = ws.filter((w) => w.status !== 200);
  res.connected = total - failed.length;
  res.connect_errors = failed.length;
  res.connect_first_error = failed.length ? failed[0].error.slice(0, 300) : '';
  if (failed.length) log(`${failed.length} of ${total} watchers not connected; the first: ${res.connect_first_error}`);

  await sleep(O.settleMs);
  res.rss_connected_kb = statusKb(pid, 'VmRSS');
  res.hwm_connected_kb = statusKb(pid, 'VmHWM');
  [sc] = await openConns(O.goosed, 1);
  const cpu = cpuMark();
  Object.assign(res, await statusSamples(sc, warmup, samples, 'status'), cpuSince(cpu, 'status'));
  sc.close();
  res.rss_after_status_kb = statusKb(pid, 'VmRSS');
  res.hwm_after_status_kb = statusKb(pid, 'VmHWM');
  const dropped = ws.filter((w) => w.status === 200 && w.closed);
  res.dropped = dropped.length; // connected, then closed by goosed while idle
  res.idle_bytes = ws.reduce((a, w) => a + w.bytes, 0);
  for (const w of ws) w.close();
  await sleep(O.settleMs);
  res.rss_closed_kb = statusKb(pid, 'VmRSS');

  res.delta_kb = res.rss_connected_kb - res.rss_base_kb;
  res.per_watcher_kb = r3(res.delta_kb / total);
  res.errors = res.connect_errors + res.dropped + res.idle_status_errors + res.status_errors;
  res.first_error = res.connect_first_error || (res.dropped ? `${res.dropped} watchers were closed by goosed while idle` : '')
    || res.idle_status_first_error || res.status_first_error;
  log(`${res.connected} of ${total} watchers: ${res.per_watcher_kb} kB each; GET /status p50 ${res.status_ms_p50} ms, p99 ${res.status_ms_p99} ms while connected`);
  return res;
}

// ---------------------------------------------------------------------------------------------

const MODES = { replies: modeReplies, 'first-token': modeFirstToken, throughput: modeThroughput, memory: modeMemory, watchers: modeWatchers };
let result;
try {
  result = await MODES[O.mode]();
} catch (e) {
  log(`FAIL: ${O.mode}: could not run: ${e.message}`);
  process.exit(2);
}
result.ok = result.errors === 0;
process.stdout.write(`AGENT_RESULT ${JSON.stringify(result)}\n`);
if (!result.ok) {
  log(`FAIL: ${O.mode}: ${result.errors} replies failed or were incomplete; the first: ${result.first_error}`);
  process.exit(1);
}
process.exit(0);
