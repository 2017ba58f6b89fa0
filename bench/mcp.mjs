#!/usr/bin/env node
// bench/mcp.mjs — the MCP benchmarks' client (`BENCH_ONLY=mcp make bench`, bench/run.sh).
//
//   node bench/mcp.mjs direct   --server PATH [--calls N] [--warmup W]
//   node bench/mcp.mjs latency  --goosed URL --fake URL [--calls-per-reply K] [--replies R] [--goosed-pid P]
//   node bench/mcp.mjs sessions --goosed URL --fake URL --goosed-pid P --sessions N [--calls-per-reply K]
//
// goosed must run with OPENAI_HOST pointing at the fake provider (tests/fakes/fake-provider.mjs,
// --no-log), GOOSE_MAX_TURNS=1, and a config.yaml whose enabled stdio extension `everything` is
// @modelcontextprotocol/server-everything. This script sets the fake's default response itself:
// K calls of `everything__echo` in one assistant message; with GOOSE_MAX_TURNS=1 every reply is
// then exactly one provider request and its K tool calls, which goosed runs one after the other.
//
// Modes:
//   direct    spawns the server (`node PATH stdio`) and speaks newline-delimited JSON-RPC to it
//             over its stdin/stdout: initialize, notifications/initialized, tools/list, then W
//             + N sequential tools/call echo (W not counted). Per call: the time from writing the
//             request line to parsing its answer. Also the server's start-up (spawn to the
//             initialize answer, and to the tools/list answer) and its memory after the calls.
//   latency   one session; W replies first (not counted: the server starts and its JIT warms
//             up, as the direct client's warm-up does), then R replies of K echo calls each, on
//             POST /api/sessions/{id}/messages/stream. Per call: the time between the arrival of
//             consecutive tool_result events of one reply (K - 1 per reply): goosed publishing
//             one result, starting the next call, its JSON-RPC round trip to the server over the
//             pipes, and publishing its result. The first call of a reply is not counted (its
//             interval would include the provider's stream and storing the assistant message).
//   sessions  N sessions with the extension and N with it disabled (a per-session override),
//             all created first. Start-up: the first reply (a one-word text answer) of the N
//             without it at once, then of the N with it at once; per reply, the time from
//             sending the request to the first message_chunk (the server is started, initialized
//             and its tools listed before the provider is asked); --start-batch B: B first replies
//             at a time, each batch after the previous one ended. Memory after: goosed's VmRSS
//             and the sum of VmRSS and of Pss (smaps_rollup) over goosed's descendants. Then, with
//             K > 0, the N sessions with the extension each send one message at the same moment
//             (K echo calls each): wall time, per-call times as in `latency`, and the peak of
//             goosed's RSS + its descendants' RSS sampled every 50 ms.
//
// Output: one line `MCP_RESULT {json}` (flat JSON, for bench/run.sh); progress on stderr. Exit 0
// when every call and reply succeeded, 1 otherwise (the result line still printed, with errors and
// first_error), 2 on a usage error, a failure to set up or the --timeout-s deadline.
import http from 'node:http';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { parseSSE } from '../tests/fakes/lib.mjs';

const USAGE = 'usage: node bench/mcp.mjs direct|latency|sessions [--server PATH] [--goosed URL] [--fake URL]\n'
  + '  [--goosed-pid PID] [--calls N] [--warmup N] [--calls-per-reply K] [--replies R] [--sessions N]\n'
  + '  [--start-batch B] [--timeout-s S]';

function usage(msg) {
  process.stderr.write(`mcp: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const mode = argv[0];
  if (!['direct', 'latency', 'sessions'].includes(mode)) usage(`unknown mode ${mode ?? '(none)'}`);
  const o = { mode, timeoutS: 600 };
  const ints = {
    '--calls': 'calls', '--warmup': 'warmup', '--calls-per-reply': 'perReply', '--replies': 'replies',
    '--sessions': 'sessions', '--goosed-pid': 'goosedPid', '--timeout-s': 'timeoutS',
    '--start-batch': 'startBatch',
  };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (i + 1 >= argv.length) usage(`missing value for ${a}`);
    const v = argv[++i];
    if (a === '--goosed' || a === '--fake') o[a.slice(2)] = v.replace(/\/$/, '');
    else if (a === '--server') o.server = v;
    else if (ints[a]) {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) usage(`${a}: a non-negative integer, got ${v}`);
      o[ints[a]] = n;
    } else usage(`unknown option ${a}`);
  }
  const defaults = {
    direct: { calls: 1000, warmup: 100 },
    latency: { perReply: 100, replies: 10, warmup: 1 },
    sessions: { perReply: 20, sessions: 1, startBatch: 0 },
  }[mode];
  for (const [k, v] of Object.entries(defaults)) o[k] ??= v;
  if (mode === 'direct' && !o.server) usage('--server is required');
  if (mode !== 'direct' && (!o.goosed || !o.fake)) usage('--goosed and --fake are required');
  if (mode === 'sessions' && !o.goosedPid) usage('--goosed-pid is required');
  if (mode !== 'direct' && o.perReply < (mode === 'latency' ? 2 : 0)) usage('--calls-per-reply: too small');
  return o;
}

const O = parseArgs(process.argv.slice(2));
const log = (msg) => process.stderr.write(`mcp: ${msg}\n`);
setTimeout(() => {
  log(`FAIL: ${O.mode} did not finish within ${O.timeoutS} s (--timeout-s)`);
  process.exit(2);
}, O.timeoutS * 1000).unref();

const now = () => process.hrtime.bigint();
const ms = (a, b) => Number(b - a) / 1e6;
const r3 = (x) => Math.round(x * 1000) / 1000;

/** {p50, p99, min, mean, max, n} of a list of milliseconds (nearest-rank percentiles), rounded. */
function stats(xs) {
  if (!xs.length) return { n: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const pct = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  return {
    n: s.length, p50: r3(pct(50)), p99: r3(pct(99)), min: r3(s[0]),
    mean: r3(s.reduce((a, b) => a + b, 0) / s.length), max: r3(s.at(-1)),
  };
}

/** Adds stats(xs) to out as prefix_p50, prefix_p99, ... */
function flat(out, prefix, xs) {
  for (const [k, v] of Object.entries(stats(xs))) out[`${prefix}_${k}`] = v;
}

let errors = 0;
let firstError = null;
function failed(msg) {
  errors++;
  firstError ??= msg;
  log(`error: ${msg}`);
}

function emit(out) {
  out.ok = errors === 0;
  out.errors = errors;
  out.first_error = firstError;
  process.stdout.write(`MCP_RESULT ${JSON.stringify(out)}\n`);
  process.exit(errors ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------
// /proc: memory of a process and of its descendants
// ---------------------------------------------------------------------------------------------

function statusKb(pid, field) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+)`, 'm'));
    return m ? Number(m[1]) : 0;
  } catch { return 0; }
}

function pssKb(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+)/m);
    return m ? Number(m[1]) : 0;
  } catch { return 0; }
}

function children(pid) {
  const out = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
      } catch { /* the thread ended */ }
    }
  } catch { /* the process ended */ }
  return out;
}

function descendants(pid) {
  const all = [];
  const todo = children(pid);
  while (todo.length) {
    const p = todo.pop();
    all.push(p);
    todo.push(...children(p));
  }
  return all;
}

function comm(pid) {
  try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { return ''; }
}

/** {procs, servers, rss_kb, pss_kb} over the descendants of pid: procs counts them all, servers
 * those that are not bubblewrap's own (the sandbox runs each server under two bwrap processes);
 * the memory is summed over all (pss only when asked: it is slower). */
function treeMemory(pid, withPss = true) {
  const ds = descendants(pid);
  let rss = 0;
  let pss = 0;
  let servers = 0;
  for (const d of ds) {
    rss += statusKb(d, 'VmRSS');
    if (withPss) pss += pssKb(d);
    if (comm(d) !== 'bwrap') servers++;
  }
  return { procs: ds.length, servers, rss_kb: rss, pss_kb: pss };
}

// ---------------------------------------------------------------------------------------------
// direct: a JSON-RPC client of the server over stdio
// ---------------------------------------------------------------------------------------------

async function direct() {
  const t0 = now();
  const child = spawn(process.execPath, [O.server, 'stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stderr.resume(); // its start-up banner: not ours to show
  const waiting = new Map(); // id -> resolve(time, message)
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    const t = now();
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      const msg = JSON.parse(line);
      if (msg.id !== undefined && waiting.has(msg.id) && !msg.method) {
        const w = waiting.get(msg.id);
        waiting.delete(msg.id);
        w(t, msg);
      } else if (msg.method && msg.id !== undefined) {
        // a request from the server (roots/list, ...): not supported here
        child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: 'not supported' } })}\n`);
      }
    }
  });
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, sig })));
  let next = 1;
  const rpc = (method, params) => new Promise((resolve) => {
    const id = next++;
    const line = `${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`;
    const ts = now();
    waiting.set(id, (t, msg) => resolve({ ms: ms(ts, t), msg, t }));
    child.stdin.write(line);
  });
  const init = await rpc('initialize', {
    protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench-mcp', version: '1' },
  });
  if (init.msg.error) failed(`initialize: ${JSON.stringify(init.msg.error)}`);
  child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
  const list = await rpc('tools/list', {});
  const out = {
    start_init_ms: r3(ms(t0, init.t)), start_tools_ms: r3(ms(t0, list.t)),
    tools: list.msg.result?.tools?.length ?? 0, protocol: init.msg.result?.protocolVersion,
    calls: O.calls, warmup: O.warmup,
  };
  const times = [];
  const cpu0 = process.cpuUsage();
  const w0 = now();
  for (let i = 0; i < O.warmup + O.calls; i++) {
    const msgText = `bench-${i}`;
    const r = await rpc('tools/call', { name: 'echo', arguments: { message: msgText } });
    const text = r.msg.result?.content?.[0]?.text;
    if (r.msg.error || text !== `Echo: ${msgText}`) failed(`call ${i}: ${JSON.stringify(r.msg).slice(0, 200)}`);
    if (i >= O.warmup) times.push(r.ms);
  }
  out.wall_s = r3(ms(w0, now()) / 1000);
  const cpu = process.cpuUsage(cpu0);
  out.client_cpu_s = r3((cpu.user + cpu.system) / 1e6);
  flat(out, 'call_ms', times);
  out.server_rss_kb = statusKb(child.pid, 'VmRSS');
  out.server_pss_kb = pssKb(child.pid);
  child.stdin.end();
  const ex = await Promise.race([exited, new Promise((r) => setTimeout(() => r(null), 5000))]);
  if (!ex) child.kill('SIGKILL');
  emit(out);
}

// ---------------------------------------------------------------------------------------------
// goosed: HTTP with node:http, SSE read as it arrives
// ---------------------------------------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });

function request(base, method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const req = http.request(`${base}${path}`, {
      method, agent,
      headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
    }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, text, body: json });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/**
 * Sends one message on POST /api/sessions/{id}/messages/stream and reads its SSE stream as it
 * arrives: resolves with {tSend, firstChunk, complete, results: [time...], callTimes, error}.
 */
function reply(sid, content) {
  return new Promise((resolve) => {
    const data = Buffer.from(JSON.stringify({ content }));
    const r = { tSend: now(), firstChunk: null, complete: null, toolCalls: [], results: [], error: null, stop: null };
    let buf = '';
    const req = http.request(`${O.goosed}/api/sessions/${sid}/messages/stream`, {
      method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': data.length },
    }, (res) => {
      if (res.statusCode !== 200) r.error = `status ${res.statusCode}`;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        const t = now();
        buf += d;
        const cut = buf.lastIndexOf('\n\n');
        if (cut < 0) return;
        const evs = parseSSE(buf.slice(0, cut + 2));
        buf = buf.slice(cut + 2);
        for (const e of evs) {
          if (e.event === 'message_chunk' && !r.firstChunk) r.firstChunk = t;
          else if (e.event === 'tool_call') r.toolCalls.push(t);
          else if (e.event === 'tool_result') {
            const d2 = JSON.parse(e.data);
            if (d2.is_error || !/^Echo: /.test(d2.result)) r.error ??= `tool_result: ${e.data.slice(0, 200)}`;
            r.results.push(t);
          } else if (e.event === 'message_complete') {
            r.complete = t;
            r.stop = JSON.parse(e.data).stop_reason;
          } else if (e.event === 'error') r.error ??= `error event: ${e.data.slice(0, 200)}`;
        }
      });
      res.on('end', () => {
        if (!r.complete) r.error ??= 'the stream ended without message_complete';
        resolve(r);
      });
      res.on('error', (e) => { r.error ??= e.message; resolve(r); });
    });
    req.on('error', (e) => { r.error ??= e.message; resolve(r); });
    req.end(data);
  });
}

/** The per-call times of one reply: intervals between consecutive tool_result arrivals. */
function callTimes(r) {
  const xs = [];
  for (let i = 1; i < r.results.length; i++) xs.push(ms(r.results[i - 1], r.results[i]));
  return xs;
}

async function fakeDefault(response) {
  const r = await request(O.fake, 'POST', '/_fake/script', { responses: [], default: response });
  if (r.status !== 200) throw new Error(`the fake refused the script: ${r.status} ${r.text}`);
}

function echoCalls(k, tag) {
  const calls = [];
  for (let i = 0; i < k; i++) calls.push({ name: 'everything__echo', arguments: { message: `${tag}-${i}` } });
  return { tool_calls: calls };
}

async function newSession(extensionOn) {
  const body = { name: 'mcp-bench', working_directory: '/tmp' };
  if (!extensionOn) body.extensions = [{ name: 'everything', enabled: false }];
  const r = await request(O.goosed, 'POST', '/api/sessions', body);
  if (r.status !== 201) throw new Error(`POST /api/sessions: ${r.status} ${r.text}`);
  return r.body.id;
}

function checkReply(r, what, calls) {
  if (r.error) failed(`${what}: ${r.error}`);
  else if (r.results.length !== calls) failed(`${what}: ${r.results.length} tool results, expected ${calls}`);
}

function cpuS(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime (clock ticks, 100/s)
  } catch { return 0; }
}

async function latency() {
  const sid = await newSession(true);
  await fakeDefault(echoCalls(O.perReply, 'bench'));
  const out = { calls_per_reply: O.perReply, replies: O.replies, warmup_replies: O.warmup };
  for (let i = 0; i < O.warmup; i++) {
    const r = await reply(sid, `warm-up ${i}`);
    checkReply(r, `warm-up reply ${i}`, O.perReply);
    if (i === 0 && r.results.length) out.first_reply_to_first_result_ms = r3(ms(r.tSend, r.results[0]));
  }
  const times = [];
  const firsts = [];
  const cpu0 = O.goosedPid ? cpuS(O.goosedPid) : 0;
  const w0 = now();
  for (let i = 0; i < O.replies; i++) {
    const r = await reply(sid, `reply ${i}`);
    checkReply(r, `reply ${i}`, O.perReply);
    times.push(...callTimes(r));
    if (r.toolCalls.length && r.results.length) firsts.push(ms(r.toolCalls.at(-1), r.results[0]));
  }
  out.wall_s = r3(ms(w0, now()) / 1000);
  if (O.goosedPid) out.goosed_cpu_s = r3(cpuS(O.goosedPid) - cpu0);
  flat(out, 'call_ms', times);
  flat(out, 'first_ms', firsts);
  if (O.goosedPid) {
    const m = treeMemory(O.goosedPid);
    out.goosed_rss_kb = statusKb(O.goosedPid, 'VmRSS');
    out.server_procs = m.procs;
    out.server_rss_kb = m.rss_kb;
    out.server_pss_kb = m.pss_kb;
  }
  emit(out);
}

async function sessions() {
  const n = O.sessions;
  const pid = O.goosedPid;
  const out = { sessions: n, calls_per_reply: O.perReply };
  const without = [];
  const withExt = [];
  for (let i = 0; i < n; i++) without.push(await newSession(false));
  for (let i = 0; i < n; i++) withExt.push(await newSession(true));
  await fakeDefault({ text: 'ok' });
  out.goosed_rss_base_kb = statusKb(pid, 'VmRSS');
  out.procs_base = treeMemory(pid, false).procs;

  // The first reply of each session, N at once (or --start-batch at a time): without the
  // extension, then with it.
  const first = async (ids, label) => {
    const t0 = now();
    const batch = O.startBatch || ids.length;
    const rs = [];
    for (let i = 0; i < ids.length; i += batch) rs.push(...await Promise.all(ids.slice(i, i + batch).map((id) => reply(id, 'hello'))));
    const wall = ms(t0, now());
    const ttft = [];
    for (const r of rs) {
      if (r.error || !r.firstChunk) failed(`${label}: ${r.error ?? 'no message_chunk'}`);
      else ttft.push(ms(r.tSend, r.firstChunk));
    }
    flat(out, `${label}_ttft_ms`, ttft);
    out[`${label}_wall_ms`] = r3(wall);
  };
  await first(without, 'without');
  out.goosed_rss_without_kb = statusKb(pid, 'VmRSS');
  out.start_batch = O.startBatch || n;
  const cpu0 = cpuS(pid);
  await first(withExt, 'with');
  out.with_goosed_cpu_s = r3(cpuS(pid) - cpu0);
  await new Promise((r) => setTimeout(r, 1000));
  const m = treeMemory(pid);
  out.goosed_rss_with_kb = statusKb(pid, 'VmRSS');
  out.server_procs = m.servers;
  out.sandbox_procs = m.procs - m.servers;
  out.server_rss_kb = m.rss_kb;
  out.server_pss_kb = m.pss_kb;
  out.server_rss_per_session_kb = r3(m.rss_kb / n);
  out.server_pss_per_session_kb = r3(m.pss_kb / n);
  if (m.servers !== n) failed(`${m.servers} server processes under goosed, expected ${n}`);

  if (O.perReply > 0) {
    await fakeDefault(echoCalls(O.perReply, 'load'));
    let peak = 0;
    let peakGoosed = 0;
    let peakServers = 0;
    const sample = () => {
      const g = statusKb(pid, 'VmRSS');
      const s = treeMemory(pid, false).rss_kb;
      if (g + s > peak) { peak = g + s; peakGoosed = g; peakServers = s; }
    };
    sample();
    const timer = setInterval(sample, 50);
    const c0 = cpuS(pid);
    const t0 = now();
    const rs = await Promise.all(withExt.map((id) => reply(id, 'call tools')));
    const wall = ms(t0, now());
    clearInterval(timer);
    sample();
    out.load_goosed_cpu_s = r3(cpuS(pid) - c0);
    out.load_wall_ms = r3(wall);
    out.load_calls = n * O.perReply;
    const times = [];
    const replyMs = [];
    for (const r of rs) {
      checkReply(r, 'concurrent reply', O.perReply);
      times.push(...callTimes(r));
      if (r.complete) replyMs.push(ms(r.tSend, r.complete));
    }
    flat(out, 'load_call_ms', times);
    flat(out, 'load_reply_ms', replyMs);
    flat(out, 'load_reply_per_call_ms', replyMs.map((x) => x / O.perReply));
    out.load_peak_kb = peak;
    out.load_peak_goosed_kb = peakGoosed;
    out.load_peak_servers_kb = peakServers;
    out.load_calls_per_s = r3((n * O.perReply) / (wall / 1000));
  }
  emit(out);
}

try {
  if (O.mode === 'direct') await direct();
  else if (O.mode === 'latency') await latency();
  else await sessions();
} catch (e) {
  log(`FAIL: ${e.stack ?? e}`);
  process.exit(2);
}
