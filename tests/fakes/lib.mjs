// Starts the fake LLM provider (fake-provider.mjs) as a separate process and drives it.
//
//   import { startFake } from '../fakes/lib.mjs';
//   const fake = await startFake();                       // or startFake({ keys: { openai: 'sk-test' } })
//   await fake.script([{ text: 'Hi!' }, { tool_calls: [{ name: 'developer__shell', arguments: { command: 'ls' } }] }]);
//   ... point goosed at fake.url (OPENAI_HOST / ANTHROPIC_HOST / GOOGLE_HOST / OLLAMA_HOST) ...
//   const reqs = await fake.requests();                   // what goosed sent
//   await fake.stop();
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const FAKE_PROVIDER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fake-provider.mjs');

const LISTENING = /^listening on (http:\/\/(\[[^\]]+\]|[^\s:/]+):(\d+))$/m;

/**
 * Spawns the fake provider. Options:
 *   port       --port (default 0: an ephemeral port)
 *   host       --host (default 127.0.0.1)
 *   keys       {openai, anthropic, google}: API keys the fake then requires (default: none)
 *   log        false: do not keep the request log (benchmarks)
 *   args       extra command-line arguments
 *   env        extra environment for the process (over this process's own)
 *   timeoutMs  how long to wait for the listening line (default 10 s)
 * Resolves, once the process has printed `listening on http://HOST:PORT`, with
 *   {url, host, port, pid, proc, script(), append(), requests(), clearRequests(), reset(),
 *    config(), stats(), stderr(), stop()}.
 */
export function startFake(opts = {}) {
  const { port = 0, host = '127.0.0.1', keys = {}, log = true, args = [], env = {}, timeoutMs = 10_000 } = opts;
  const argv = [FAKE_PROVIDER, '--port', String(port), '--host', host];
  if (keys.openai) argv.push('--openai-key', keys.openai);
  if (keys.anthropic) argv.push('--anthropic-key', keys.anthropic);
  if (keys.google) argv.push('--google-key', keys.google);
  if (!log) argv.push('--no-log');
  argv.push(...args);

  const proc = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => {
    proc.on('close', (code, signal) => resolve({ code, signal }));
    proc.on('error', (error) => resolve({ code: null, signal: null, error }));
  });

  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (msg) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      reject(new Error(`${msg}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    };
    const timer = setTimeout(() => fail(`fake provider did not print its listening line within ${timeoutMs} ms`), timeoutMs);
    exited.then(({ code, signal, error }) => fail(`fake provider exited before listening (code ${code}, signal ${signal}${error ? `, ${error.message}` : ''})`));
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(LISTENING);
      if (!m || settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(makeHandle({ url: m[1], host: m[2], port: Number(m[3]), proc, exited, stderr: () => stderr }));
    });
  });
}

async function call(base, method, route, body) {
  const res = await fetch(base + route, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  if (!res.ok) {
    const detail = typeof json?.error === 'string' ? json.error : (typeof json === 'object' ? JSON.stringify(json) : json);
    throw new Error(`fake ${method} ${route}: ${res.status} ${detail}`);
  }
  return json;
}

function makeHandle({ url, host, port, proc, exited, stderr }) {
  return {
    url, host, port, proc, pid: proc.pid, exited, stderr,
    /** Replaces the queue. `responses`: an array, or {responses, default, keys}. */
    script: (responses) => call(url, 'POST', '/_fake/script', responses),
    /** Appends to the queue. */
    append: (responses) => call(url, 'POST', '/_fake/script?append=1', Array.isArray(responses) ? { responses } : responses),
    /** Every provider request so far: [{seq, time, provider, method, path, query, headers, body}]. */
    requests: (provider) => call(url, 'GET', `/_fake/requests${provider ? `?provider=${encodeURIComponent(provider)}` : ''}`),
    clearRequests: () => call(url, 'DELETE', '/_fake/requests'),
    /** Clears the queue, the default response and the log; restores the command-line config. */
    reset: () => call(url, 'POST', '/_fake/reset'),
    /** {keys: {openai, anthropic, google}, log, require_anthropic_version, check_conversation}; null removes a key. */
    config: (cfg) => call(url, 'POST', '/_fake/config', cfg),
    /** {active, peak, served, refused, queued, logged, ...}. */
    stats: () => call(url, 'GET', '/_fake/stats'),
    /** SIGTERM, then SIGKILL after 5 s; resolves with {code, signal}. */
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      let timer;
      const killer = new Promise((resolve) => {
        timer = setTimeout(() => { proc.kill('SIGKILL'); resolve(); }, 5000);
      });
      const r = await Promise.race([exited, killer.then(() => exited)]);
      clearTimeout(timer);
      return r;
    },
  };
}

/**
 * Parses an SSE body into events [{event, data, id}] (the data lines of one event joined by
 * "\n"), accepting LF, CRLF and CR line ends as the SSE specification does. A trailing event
 * without its blank line is returned with `incomplete: true`.
 */
export function parseSSE(text) {
  const events = [];
  let cur = null;
  const lines = text.split(/\r\n|\r|\n/);
  const endsClean = /(\r\n|\r|\n)$/.test(text);
  if (endsClean) lines.pop();
  for (const line of lines) {
    if (line === '') {
      if (cur) events.push(cur);
      cur = null;
      continue;
    }
    if (line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    cur ??= { event: 'message', data: null, id: null };
    if (field === 'event') cur.event = value;
    else if (field === 'data') cur.data = cur.data === null ? value : `${cur.data}\n${value}`;
    else if (field === 'id') cur.id = value;
  }
  if (cur) events.push({ ...cur, incomplete: true });
  return events;
}
