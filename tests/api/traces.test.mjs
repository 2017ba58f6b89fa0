// OpenTelemetry traces: goosed exports spans over OTLP/HTTP (protobuf) to a receiver process that
// decodes them with the official protocol definitions (lib/otlp_receiver.mjs). A client's
// traceparent is the parent of its request's span; the reply's turn, provider and tool spans
// share the trace and nest; the (fake) provider is sent the provider span's traceparent; a
// collector that never answers does not hold a reply back; no secret reaches a span.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, stopAndCheck, tempDir } from './lib/server.mjs';
import { request, get, post } from './lib/http.mjs';
import { recordSecret } from './lib/record.mjs';
import { startFake, parseSSE } from '../fakes/lib.mjs';
import { startReceiver } from './lib/otlp_receiver.mjs';

const KEY = 'sk-traces-provider-key-5150';
const OTLP_SECRET = 'otlp-header-secret-8d1f0c';
recordSecret(OTLP_SECRET, 'an OTLP header value');

const SERVER = 2;
const CLIENT = 3;
const INTERNAL = 1;

function env(fake, receiver, extra = {}) {
  return {
    GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-trace', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_HEADERS: `authorization=Bearer%20${OTLP_SECRET},x-tenant=acme`,
    OTEL_SERVICE_NAME: 'goosed-under-test',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test,team=agents%2Fcore',
    OTEL_BSP_SCHEDULE_DELAY: '20',
    ...extra,
  };
}

async function newSession(srv, dir) {
  const r = await post(srv, '/api/sessions', { name: 'traced', working_directory: dir });
  assert.equal(r.status, 201, r.text);
  return r.body.id;
}

/** POSTs a message and reads its whole SSE reply. */
async function reply(srv, id, content, headers = {}) {
  const r = await request(srv, 'POST', `/api/sessions/${id}/messages/stream`, { json: { content }, headers });
  assert.equal(r.status, 200, r.text);
  return { res: r, events: parseSSE(r.text).map((e) => ({ ...e, json: JSON.parse(e.data) })) };
}

const ids = () => ({ trace: randomBytes(16).toString('hex'), span: randomBytes(8).toString('hex') });

describe('traces exported over OTLP/HTTP', () => {
  let fake;
  let receiver;
  let srv;
  let dir;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    receiver = await startReceiver();
    dir = tempDir('goosed-traces-cwd-');
    srv = await startServer({ env: env(fake, receiver) });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
      assert.doesNotMatch(srv.log(), new RegExp(OTLP_SECRET), 'no OTLP header value in the log');
    } finally {
      await fake.stop();
      await receiver.stop();
    }
  });

  it('says where spans go, without the header values', () => {
    assert.match(srv.log(), /traces are exported to http:\/\/127\.0\.0\.1:\d+\/v1\/traces/);
  });

  it("nests a reply's spans under the client's traceparent and propagates it to the provider", async () => {
    const id = await newSession(srv, dir);
    await fake.reset();
    await fake.script([
      { text: 'Looking', tool_calls: [{ id: 'call_1', name: 'developer__shell', arguments: { command: 'echo traced' } }], usage: { input: 11, output: 3 } },
      { text: 'Done.', usage: { input: 20, output: 2 } },
    ]);
    const client = ids();
    const { res, events } = await reply(srv, id, 'run it', {
      traceparent: `00-${client.trace}-${client.span}-01`,
      tracestate: 'vendor=abc',
      'X-Request-Id': 'trace-test-rid-1',
    });
    assert.equal(events.at(-1).event, 'message_complete', JSON.stringify(events.at(-1)));
    assert.equal(res.headers.get('x-request-id'), 'trace-test-rid-1');

    // request + turn + 2 provider calls + 1 tool call
    const spans = await receiver.spans(client.trace, 5);
    const byName = (re) => spans.filter((s) => re.test(s.name));
    const [req] = byName(/^POST \/api\/sessions\/\{id\}\/messages\/stream$/);
    assert.ok(req, `a request span; got ${spans.map((s) => s.name)}`);
    assert.equal(req.kind, SERVER);
    assert.equal(req.parentSpanId, client.span, "the client's span is the request's parent");
    assert.equal(req.traceState, 'vendor=abc');
    assert.equal(req.attributes['http.route'], '/api/sessions/{id}/messages/stream');
    assert.equal(req.attributes['http.request.method'], 'POST');
    assert.equal(req.attributes['http.response.status_code'], 200);
    assert.equal(req.attributes['goose.request_id'], 'trace-test-rid-1');

    const [turn] = byName(/^invoke_agent/);
    assert.ok(turn, 'a turn span');
    assert.equal(turn.parentSpanId, req.spanId, 'the turn is a child of the request');
    assert.equal(turn.attributes['goose.session_id'], id);
    assert.equal(turn.attributes['gen_ai.usage.input_tokens'], 31);
    assert.equal(turn.attributes['gen_ai.usage.output_tokens'], 5);

    const calls = byName(/^chat /);
    assert.equal(calls.length, 2, 'one span per provider request');
    for (const c of calls) {
      assert.equal(c.kind, CLIENT);
      assert.equal(c.parentSpanId, turn.spanId, 'provider calls are children of the turn');
      assert.equal(c.attributes['gen_ai.system'], 'openai');
      assert.equal(c.attributes['gen_ai.request.model'], 'gpt-trace');
    }
    assert.deepEqual(calls.map((c) => c.attributes['gen_ai.usage.input_tokens']).sort(), [11, 20]);

    const [tool] = byName(/^execute_tool /);
    assert.ok(tool, 'a tool span');
    assert.equal(tool.kind, INTERNAL);
    assert.equal(tool.parentSpanId, turn.spanId, 'the tool call is a child of the turn');
    assert.equal(tool.attributes['gen_ai.tool.name'], 'developer__shell');
    assert.equal(tool.attributes['goose.extension'], 'developer');
    assert.equal(tool.attributes['goose.tool'], 'shell');
    assert.equal(tool.attributes['goose.tool.outcome'], 'ok');
    for (const s of spans) assert.ok(BigInt(s.end) >= BigInt(s.start), `${s.name} ends after it starts`);

    // the provider saw the trace: each request carries its own span's traceparent
    const sent = await fake.requests();
    assert.equal(sent.length, 2);
    const seen = sent.map((r) => r.headers.traceparent);
    for (const tp of seen) assert.match(tp, new RegExp(`^00-${client.trace}-[0-9a-f]{16}-01$`));
    assert.deepEqual(seen.map((tp) => tp.split('-')[2]).sort(), calls.map((c) => c.spanId).sort());
    assert.equal(sent[0].headers.tracestate, 'vendor=abc');
  });

  it('starts a new trace for a request without traceparent, and sends resource and headers', async () => {
    const r = await get(srv, '/status', { headers: { 'X-Request-Id': 'trace-test-status' } });
    assert.equal(r.status, 200);
    const status = await receiver.request('trace-test-status');
    assert.equal(status.name, 'GET /status');
    const exp = await receiver.exports(1);
    assert.equal(status.parentSpanId, '', 'a root span');
    assert.match(status.traceId, /^[0-9a-f]{32}$/);
    assert.notEqual(status.traceId, '0'.repeat(32));
    const e = exp[0];
    assert.equal(e.error, undefined, 'every export decodes');
    assert.equal(e.headers['content-type'], 'application/x-protobuf');
    assert.equal(e.headers.authorization, `Bearer ${OTLP_SECRET}`, 'OTEL_EXPORTER_OTLP_HEADERS are sent');
    assert.equal(e.headers['x-tenant'], 'acme');
    assert.equal(e.resource['service.name'], 'goosed-under-test');
    assert.equal(e.resource['deployment.environment'], 'test');
    assert.equal(e.resource['team'], 'agents/core');
  });

  it('exports every span of many concurrent requests exactly once (more than a batch)', async () => {
    const client = ids();
    const n = 600; // more than a batch (512): the exporter is woken by a full batch, then by its delay
    const rids = Array.from({ length: n }, (_, i) => `trace-burst-${i}`);
    let next = 0;
    const worker = async () => {
      while (next < n) {
        const rid = rids[next++];
        const r = await get(srv, '/status', { headers: { 'X-Request-Id': rid, traceparent: `00-${client.trace}-${client.span}-01` } });
        assert.equal(r.status, 200);
      }
    };
    await Promise.all(Array.from({ length: 24 }, worker));
    const spans = await receiver.spans(client.trace, n);
    assert.equal(spans.length, n, 'no span lost, none sent twice');
    assert.deepEqual(spans.map((s) => s.attributes['goose.request_id']).sort(), [...rids].sort());
    assert.equal(new Set(spans.map((s) => s.spanId)).size, n, 'every span its own id');
    for (const s of spans) {
      assert.equal(s.parentSpanId, client.span);
      assert.equal(s.name, 'GET /status');
      assert.equal(s.attributes['http.response.status_code'], 200);
    }
  });

  it('ignores a malformed traceparent (a new trace) and puts no secret in any span', async () => {
    const r = await request(srv, 'GET', '/status', { headers: { 'X-Request-Id': 'trace-test-bad', traceparent: `00-${'0'.repeat(32)}-${'1'.repeat(16)}-01` } });
    assert.equal(r.status, 200);
    const bad = await receiver.request('trace-test-bad');
    assert.notEqual(bad.traceId, '0'.repeat(32));
    assert.equal(bad.parentSpanId, '', 'a malformed traceparent names no parent');
    const exp = await receiver.exports(1);
    for (const e of exp) {
      assert.ok(!e.raw.includes(KEY), 'no provider key in an export');
      assert.ok(!e.raw.includes(OTLP_SECRET), 'no OTLP header value in an export');
      for (const s of e.spans) assert.notEqual(s.traceId, '0'.repeat(32));
    }
  });
});

describe('a collector that never answers', () => {
  let fake;
  let receiver;
  let srv;
  let dir;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    receiver = await startReceiver({ stall: true });
    dir = tempDir('goosed-traces-stall-');
    // every span is exported at once, and the queue holds few: it fills while the export hangs
    srv = await startServer({ env: env(fake, receiver, { OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '1', OTEL_BSP_MAX_QUEUE_SIZE: '4', OTEL_EXPORTER_OTLP_TIMEOUT: '600000' }) });
  });
  after(async () => {
    try {
      await stopAndCheck(srv); // the hanging export is abandoned at shutdown
    } finally {
      await fake.stop();
      await receiver.stop();
    }
  });

  it('does not hold a reply back while an export hangs', async () => {
    assert.equal((await get(srv, '/status')).status, 200);
    await receiver.exports(1); // an export was read and will never be answered
    const id = await newSession(srv, dir);
    await fake.script([{ text: 'still here' }]);
    const { events } = await reply(srv, id, 'hello');
    assert.equal(events.at(-1).event, 'message_complete');
    for (let i = 0; i < 20; i++) assert.equal((await get(srv, '/status')).status, 200);
    const exp = await receiver.exports(1);
    assert.equal(exp.length, 1, 'the exporter still waits for its first answer');
  });
});

describe('a collector that is overloaded for a while', () => {
  it('gets the same batch again after its Retry-After, until it takes it; nothing is lost or logged as lost', { timeout: 60_000 }, async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const receiver = await startReceiver({ refuse: 2 });
    const srv = await startServer({ env: env(fake, receiver) });
    try {
      const t = ids();
      assert.equal((await get(srv, '/status', { headers: { traceparent: `00-${t.trace}-${t.span}-01` } })).status, 200);
      const [span] = await receiver.spans(t.trace, 1); // there once the collector took it
      assert.equal(span.name, 'GET /status');
      const exp = await receiver.exports(3);
      assert.deepEqual(exp.map((e) => !!e.refused), [true, true, false]);
      assert.equal(new Set(exp.map((e) => e.raw)).size, 1, 'the same batch each time');
    } finally {
      await stopAndCheck(srv);
      await fake.stop();
      await receiver.stop();
    }
    assert.doesNotMatch(srv.log(), /not exported/);
  });
});

describe('an MCP server over HTTP', () => {
  it("is sent the tool call's traceparent", async (t) => {
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fakes/mcp/http_server.mjs');
    const mcp = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => mcp.kill('SIGKILL'));
    let seen = '';
    mcp.stderr.on('data', (d) => { seen += d; });
    const port = await new Promise((resolve, reject) => {
      let out = '';
      mcp.on('exit', (c) => reject(new Error(`the MCP server exited (${c})`)));
      mcp.stdout.on('data', (d) => { out += d; const m = /port (\d+)/.exec(out); if (m) resolve(Number(m[1])); });
    });
    const fake = await startFake({ keys: { openai: KEY } });
    t.after(() => fake.stop());
    const receiver = await startReceiver();
    t.after(() => receiver.stop());
    const srv = await startServer({
      env: env(fake, receiver),
      configYaml: `extensions:\n  remote:\n    enabled: true\n    type: streamable_http\n    name: remote\n    uri: http://127.0.0.1:${port}/mcp\n`,
    });
    try {
      const id = await newSession(srv, tempDir('goosed-traces-mcp-'));
      await fake.script([
        { tool_calls: [{ id: 'call_r', name: 'remote__echo', arguments: { message: 'traced' } }] },
        { text: 'echoed' },
      ]);
      const client = ids();
      const { events } = await reply(srv, id, 'echo it', { traceparent: `00-${client.trace}-${client.span}-01` });
      assert.equal(events.at(-1).event, 'message_complete', JSON.stringify(events.at(-1)));
      const spans = await receiver.spans(client.trace, 5);
      const tool = spans.find((s) => s.name === 'execute_tool remote__echo');
      assert.ok(tool, `a tool span; got ${spans.map((s) => s.name)}`);
      assert.equal(tool.attributes['goose.extension'], 'remote');
      const call = seen.trim().split('\n').map((l) => JSON.parse(l)).find((r) => r.rpc === 'tools/call');
      assert.ok(call, 'the MCP server was called');
      assert.equal(call.traceparent, `00-${client.trace}-${tool.spanId}-01`);
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('GOOSE_DISABLE_TELEMETRY with an OTLP endpoint', () => {
  it('exports nothing and propagates nothing', async (t) => {
    const fake = await startFake({ keys: { openai: KEY } });
    t.after(() => fake.stop());
    const srv = await startServer({ env: { ...env(fake, { url: 'http://127.0.0.1:9' }), GOOSE_DISABLE_TELEMETRY: 'true' } });
    try {
      assert.match(srv.log(), /traces are off: GOOSE_DISABLE_TELEMETRY is set/);
      const id = await newSession(srv, tempDir('goosed-traces-off-'));
      await fake.script([{ text: 'ok' }]);
      const client = ids();
      const { events } = await reply(srv, id, 'hi', { traceparent: `00-${client.trace}-${client.span}-01` });
      assert.equal(events.at(-1).event, 'message_complete');
      const sent = await fake.requests();
      assert.equal(sent.at(-1).headers.traceparent, undefined, 'no traceparent sent to the provider');
    } finally {
      await stopAndCheck(srv);
    }
  });
});
