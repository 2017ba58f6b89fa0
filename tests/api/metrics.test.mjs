// GET /metrics: the Prometheus text format parsed and checked line by line; the counts that this
// test's own requests, a reply through the fake provider and a tool call change move by exactly
// what the test did; who may read it (admin only on the main listener, anyone on
// metrics_listen); metrics: false; no secret, raw path or identifier in any label.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, stopAndCheck, tempDir, runGoosed } from './lib/server.mjs';
import { request, get, post } from './lib/http.mjs';
import { addUser } from './lib/users.mjs';
import { startFake, parseSSE } from '../fakes/lib.mjs';

const KEY = 'sk-metrics-' + crypto.randomBytes(8).toString('hex');
const SECRET = 'metrics-secret-' + crypto.randomBytes(12).toString('hex');

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)/y;
const VALUE = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/;

/**
 * Parses the text format (version 0.0.4) strictly: every sample belongs to a family declared by
 * one HELP and one TYPE line before it, names and labels are well formed, label values escaped,
 * no series twice; histograms have increasing `le` buckets with cumulative counts ending in +Inf,
 * which equals _count. Returns {families: Map(name -> {type, help}), samples: [{name, labels,
 * value}]}.
 */
export function parseMetrics(text) {
  assert.ok(text.endsWith('\n'), 'the text ends with a newline');
  const families = new Map();
  const samples = [];
  const seen = new Set();
  for (const line of text.slice(0, -1).split('\n')) {
    assert.notEqual(line, '', 'no empty line');
    let m;
    if ((m = line.match(/^# (HELP|TYPE) (\S+) (.+)$/))) {
      const [, kind, name, rest] = m;
      assert.match(name, NAME, line);
      const f = families.get(name) ?? {};
      assert.equal(f[kind.toLowerCase()], undefined, `a second ${kind} for ${name}`);
      if (kind === 'TYPE') {
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest), line);
        assert.ok(f.help !== undefined, `HELP comes before TYPE for ${name}`);
        assert.ok(!samples.some((s) => familyOf(s.name, families) === name), `TYPE of ${name} before its samples`);
      }
      f[kind.toLowerCase()] = rest;
      families.set(name, f);
      continue;
    }
    assert.ok(!line.startsWith('#'), `an unknown comment line: ${line}`);
    m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    assert.ok(m, `a malformed sample line: ${line}`);
    const [, name, labelText = '', value] = m;
    assert.match(value, VALUE, line);
    const labels = {};
    LABEL.lastIndex = 0;
    while (LABEL.lastIndex < labelText.length) {
      const l = LABEL.exec(labelText);
      assert.ok(l, `malformed labels in: ${line}`);
      assert.equal(labels[l[1]], undefined, `label ${l[1]} twice in: ${line}`);
      labels[l[1]] = l[2].replace(/\\(["\\n])/g, (_, c) => (c === 'n' ? '\n' : c));
      if (l[3] === '') break;
    }
    const family = familyOf(name, families);
    assert.ok(family, `sample ${name} of no declared family`);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    assert.ok(!seen.has(key), `series twice: ${line}`);
    seen.add(key);
    samples.push({ name, labels, value: Number(value) });
  }
  for (const [name, f] of families) {
    assert.ok(f.help && f.type, `${name} has HELP and TYPE`);
    if (f.type === 'histogram') checkHistogram(name, samples);
    if (f.type === 'counter') for (const s of samples.filter((x) => x.name === name)) assert.ok(s.value >= 0);
  }
  return { families, samples };
}

function familyOf(name, families) {
  if (families.get(name)?.type && families.get(name).type !== 'histogram') return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return families.get(base)?.type === 'histogram' ? base : families.has(name) ? name : undefined;
}

function checkHistogram(name, samples) {
  const groups = new Map();
  for (const s of samples) {
    if (!s.name.startsWith(name + '_')) continue;
    const { le, ...rest } = s.labels;
    const k = JSON.stringify(Object.entries(rest).sort());
    const g = groups.get(k) ?? { buckets: [], sum: undefined, count: undefined };
    if (s.name === name + '_bucket') g.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
    else if (s.name === name + '_sum') g.sum = s.value;
    else if (s.name === name + '_count') g.count = s.value;
    groups.set(k, g);
  }
  for (const [k, g] of groups) {
    assert.ok(g.buckets.length >= 2 && g.sum !== undefined && g.count !== undefined, `${name}${k}: buckets, _sum and _count`);
    for (let i = 1; i < g.buckets.length; i++) {
      assert.ok(g.buckets[i][0] > g.buckets[i - 1][0], `${name}${k}: le increases`);
      assert.ok(g.buckets[i][1] >= g.buckets[i - 1][1], `${name}${k}: buckets are cumulative`);
    }
    assert.equal(g.buckets.at(-1)[0], Infinity, `${name}${k}: the last bucket is +Inf`);
    assert.equal(g.buckets.at(-1)[1], g.count, `${name}${k}: +Inf equals _count`);
  }
}

/** The value of the series of name whose labels include want (0 when absent). */
function val(parsed, name, want = {}) {
  const hits = parsed.samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
  assert.ok(hits.length <= 1, `${name} ${JSON.stringify(want)} names one series`);
  return hits.length ? hits[0].value : 0;
}

async function scrape(srv, headers = {}) {
  const r = await get(srv, '/metrics', { headers });
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4; charset=utf-8$/);
  return { text: r.text, ...parseMetrics(r.text) };
}

/** The metrics_listen address, from the server's log line. */
async function metricsUrl(srv) {
  const m = await srv.waitForLog(/metrics served without authentication on (http:\/\/\S+)/);
  return m[1];
}

describe('GET /metrics on a loopback server without authentication', () => {
  let fake, srv, dir;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    dir = tempDir('goosed-metrics-cwd-');
    srv = await startServer({
      env: {
        GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-metrics', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY,
        GOOSE_METRICS_LISTEN: '127.0.0.1:0', GOOSE_MAX_RETRIES: 2,
      },
    });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it('is valid text format with HELP and TYPE for every family, and the families the operator needs', async () => {
    const m = await scrape(srv);
    for (const [name, type] of [
      ['goosed_http_requests_total', 'counter'], ['goosed_http_request_duration_seconds', 'histogram'],
      ['goosed_http_connections', 'gauge'], ['goosed_replies_running', 'gauge'], ['goosed_session_watchers', 'gauge'],
      ['goosed_provider_input_tokens_total', 'counter'], ['goosed_provider_output_tokens_total', 'counter'],
      ['goosed_provider_errors_total', 'counter'], ['goosed_provider_retries_total', 'counter'],
      ['goosed_tool_calls_total', 'counter'], ['goosed_tool_call_duration_seconds', 'histogram'],
      ['goosed_extension_processes', 'gauge'], ['goosed_tool_processes', 'gauge'], ['goosed_store_commit_duration_seconds', 'histogram'],
      ['goosed_store_queue_depth', 'gauge'], ['process_start_time_seconds', 'gauge'],
      ['process_resident_memory_bytes', 'gauge'], ['process_open_fds', 'gauge'], ['goosed_build_info', 'gauge'],
    ]) assert.equal(m.families.get(name)?.type, type, name);
    assert.ok(val(m, 'process_resident_memory_bytes') > 1 << 20, 'resident memory is read');
    assert.ok(val(m, 'process_open_fds') > 2, 'open descriptors are counted');
    assert.ok(Math.abs(val(m, 'process_start_time_seconds') - Date.now() / 1000) < 3600);
    assert.equal(m.samples.find((s) => s.name === 'goosed_build_info').labels.version, '0.1.0');
    assert.ok(val(m, 'goosed_http_connections') >= 1, 'this scrape\'s connection is open');
  });

  it('counts exactly the requests made, under the route pattern, never the raw path', async () => {
    const before = await scrape(srv);
    for (let i = 0; i < 7; i++) assert.equal((await get(srv, '/status')).status, 200);
    const missing = crypto.randomUUID();
    const marker = 'user-input-' + crypto.randomBytes(6).toString('hex');
    for (let i = 0; i < 3; i++) assert.equal((await get(srv, `/api/sessions/${missing}`)).status, 404);
    assert.equal((await get(srv, `/no/such/${marker}`)).status, 404);
    assert.equal((await request(srv, 'PUT', '/status', { json: {} })).status, 405);
    const after = await scrape(srv);
    const d = (want) => val(after, 'goosed_http_requests_total', want) - val(before, 'goosed_http_requests_total', want);
    assert.equal(d({ route: '/status', method: 'GET', status: '2xx' }), 7);
    assert.equal(d({ route: '/api/sessions/{id}', method: 'GET', status: '4xx' }), 3);
    assert.equal(d({ route: 'unmatched', method: 'GET', status: '4xx' }), 1);
    assert.equal(d({ route: 'unmatched', method: 'PUT', status: '4xx' }), 1);
    // the scrape before counts once it has completed: the one in between, only
    assert.equal(d({ route: '/metrics', method: 'GET', status: '2xx' }), 1);
    const h = (m) => val(m, 'goosed_http_request_duration_seconds_count', { route: '/status', method: 'GET' });
    assert.equal(h(after) - h(before), 7);
    assert.ok(val(after, 'goosed_http_request_duration_seconds_sum', { route: '/status', method: 'GET' }) > 0);
    for (const s of after.samples)
      for (const v of Object.values(s.labels)) {
        assert.ok(!v.includes(missing) && !v.includes(marker), `a raw path in a label: ${JSON.stringify(s)}`);
        assert.ok(!/[0-9a-f]{8}-[0-9a-f]{4}-/.test(v), `an identifier in a label: ${JSON.stringify(s)}`);
      }
    assert.ok(!after.text.includes(KEY), 'the provider key is not in the metrics');
  });

  it('counts a reply: tokens in and out, provider calls, a tool call with its duration, store commits; gauges back to 0', async () => {
    await fake.reset();
    await fake.script([
      { text: 'Looking.', tool_calls: [{ id: 'call_m1', name: 'developer__list_files', arguments: {} }], usage: { input: 11, output: 4 } },
      { text: 'Done.', usage: { input: 20, output: 6 } },
    ]);
    const s = await post(srv, '/api/sessions', { name: 'metrics', working_directory: dir });
    assert.equal(s.status, 201, s.text);
    const before = await scrape(srv);
    const r = await request(srv, 'POST', `/api/sessions/${s.body.id}/messages/stream`, { json: { content: 'list' } });
    assert.equal(r.status, 200, r.text);
    const events = parseSSE(r.text);
    assert.equal(events.at(-1).event, 'message_complete', r.text);
    assert.ok(events.some((e) => e.event === 'tool_result'));
    const after = await scrape(srv);
    const pm = { provider: 'openai', model: 'gpt-metrics' };
    const d = (name, want) => val(after, name, want) - val(before, name, want);
    assert.equal(d('goosed_provider_input_tokens_total', pm), 31);
    assert.equal(d('goosed_provider_output_tokens_total', pm), 10);
    assert.equal(d('goosed_provider_calls_total', pm), 2);
    assert.equal(d('goosed_provider_errors_total', pm), 0);
    assert.equal(d('goosed_provider_retries_total', pm), 0);
    const tool = { extension: 'developer', tool: 'list_files' };
    assert.equal(d('goosed_tool_calls_total', { ...tool, outcome: 'ok' }), 1);
    assert.equal(d('goosed_tool_calls_total', { ...tool, outcome: 'error' }), 0);
    assert.equal(d('goosed_tool_call_duration_seconds_count', tool), 1);
    assert.ok(d('goosed_store_commit_duration_seconds_count') >= 1, 'the messages were committed');
    assert.equal(d('goosed_http_requests_total', { route: '/api/sessions/{id}/messages/stream', method: 'POST', status: '2xx' }), 1);
    assert.equal(val(after, 'goosed_replies_running'), 0, 'the reply ended before its end event was sent');
    // the stream's watcher is let go when its connection's request is done, which may come just
    // after the client has read the last byte: read the gauge until it is back to 0
    let watchers = val(after, 'goosed_session_watchers');
    for (let i = 0; i < 200 && watchers !== 0; i++) {
      await new Promise((res) => setTimeout(res, 10)); // polling a gauge nothing announces
      watchers = val(await scrape(srv), 'goosed_session_watchers');
    }
    assert.equal(watchers, 0);
    assert.equal(val(after, 'goosed_store_queue_depth'), 0);
  });

  it('goosed_tool_processes counts a shell command while it runs, and is back to 0 once it is gone', async () => {
    await fake.reset();
    await fake.script([{ tool_calls: [{ id: 'call_m2', name: 'developer__shell', arguments: { command: 'sleep 120' } }] }, { text: 'stopped' }]);
    const s = await post(srv, '/api/sessions', { name: 'metrics tools', working_directory: dir });
    assert.equal(s.status, 201, s.text);
    assert.equal(val(await scrape(srv), 'goosed_tool_processes'), 0);
    const reply = post(srv, `/api/sessions/${s.body.id}/messages`, { content: 'wait' });
    const gauge = async (want) => {
      let v;
      for (let i = 0; i < 500 && (v = val(await scrape(srv), 'goosed_tool_processes')) !== want; i++)
        await new Promise((res) => setTimeout(res, 20)); // polling a gauge nothing announces
      assert.equal(v, want);
    };
    await gauge(1);
    assert.equal((await post(srv, `/api/sessions/${s.body.id}/cancel`)).status < 300, true);
    await reply;
    await gauge(0);
  });

  it('counts a provider error and its retries', async () => {
    await fake.reset();
    const boom = { error: { status: 500, message: 'boom' } };
    await fake.script([boom, boom, boom]);
    const s = await post(srv, '/api/sessions', { name: 'metrics errors', working_directory: dir });
    const before = await scrape(srv);
    const r = await request(srv, 'POST', `/api/sessions/${s.body.id}/messages/stream`, { json: { content: 'fail' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(parseSSE(r.text).at(-1).event, 'error', r.text);
    const after = await scrape(srv);
    const pm = { provider: 'openai', model: 'gpt-metrics' };
    const d = (name) => val(after, name, pm) - val(before, name, pm);
    assert.equal(d('goosed_provider_errors_total'), 1);
    assert.equal(d('goosed_provider_retries_total'), 2, 'GOOSE_MAX_RETRIES is 2');
    assert.equal(d('goosed_provider_calls_total'), 1);
  });

  it('is served without authentication on metrics_listen, and nothing else is', async () => {
    const url = await metricsUrl(srv);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const r = await fetch(url);
    assert.equal(r.status, 200);
    parseMetrics(await r.text());
    const other = await fetch(url.replace(/\/metrics$/, '/api/sessions'));
    assert.equal(other.status, 404);
    await other.text();
  });
});

describe('GET /metrics with authentication', () => {
  let srv, home, root, alice;
  before(async () => {
    home = tempDir();
    root = await addUser(home, 'root', true);
    alice = await addUser(home, 'alice');
    srv = await startServer({ home, env: { GOOSE_SERVER__SECRET_KEY: SECRET } });
  });
  after(() => stopAndCheck(srv));

  it('needs credentials, and an admin: 401, 403 for a user, 200 for an admin and the secret key', async () => {
    assert.equal((await get(srv, '/metrics')).status, 401);
    const r = await get(srv, '/metrics', { headers: { Authorization: `Bearer ${alice}` } });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.body.code, 'forbidden');
    const a = await scrape(srv, { Authorization: `Bearer ${root}` });
    const k = await scrape(srv, { 'X-Secret-Key': SECRET });
    for (const text of [a.text, k.text])
      for (const secret of [SECRET, root, alice]) assert.ok(!text.includes(secret), 'no secret in the metrics');
    assert.ok(val(k, 'goosed_http_requests_total', { route: '/metrics', method: 'GET', status: '4xx' }) >= 2);
  });
});

describe('metrics: false', () => {
  it('answers 404 and serves no metrics_listen address', async (t) => {
    const srv = await startServer({ env: { GOOSE_METRICS: 'false', GOOSE_METRICS_LISTEN: '127.0.0.1:0' } });
    t.after(() => stopAndCheck(srv));
    const r = await get(srv, '/metrics');
    assert.equal(r.status, 404, r.text);
    assert.equal(r.body.code, 'not_found');
    assert.doesNotMatch(srv.log(), /metrics served/);
  });

  it('refuses a metrics_listen that is no address and port', async () => {
    const r = await runGoosed(['--port', '0'], { GOOSE_METRICS_LISTEN: 'nonsense' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /metrics_listen: expected an address and port such as 127\.0\.0\.1:9464, got "nonsense"/);
  });
});
