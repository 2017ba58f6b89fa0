// The response validator itself (tests/api/lib/openapi.mjs); no server needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spec, validateResponse, matchPath } from './lib/openapi.mjs';

const ID = '0b6f3a52-6c1e-4d5a-9a63-2f1d8f0c7e41';
const JSON_CT = 'application/json; charset=utf-8';

function session(over = {}) {
  return {
    id: ID,
    name: 'New session',
    working_dir: '/tmp/project',
    working_directory: '/tmp/project',
    created_at: '2026-11-21T16:00:00Z',
    updated_at: '2026-11-21T16:00:00Z',
    message_count: 0,
    input_tokens: 0,
    output_tokens: 0,
    total_tokens: 0,
    ...over,
  };
}

const ok = (r) => assert.doesNotThrow(() => validateResponse(r));
const bad = (r, re) => assert.throws(() => validateResponse(r), (e) => e instanceof assert.AssertionError && re.test(e.message));

test('the spec is the OpenAPI 3.1 document of goosed', () => {
  assert.equal(spec.openapi, '3.1.0');
  assert.equal(spec.info.version, '0.1.0');
  assert.deepEqual(matchPath(`/api/sessions/${ID}/messages?limit=3`), {
    template: '/api/sessions/{id}/messages',
    params: { id: ID },
  });
  assert.equal(matchPath('/api/sessions/')?.template, '/api/sessions');
  assert.equal(matchPath('/nope'), null);
});

test('accepts a correct Session (JSON text, parsed value, fetch Headers, plain object headers)', () => {
  ok({
    method: 'GET',
    path: `/api/sessions/${ID}`,
    status: 200,
    headers: new Headers({ 'Content-Type': JSON_CT, 'X-Request-Id': 'abc123' }),
    body: JSON.stringify(session()),
  });
  ok({
    method: 'GET',
    path: `/sessions/${ID}?x=1`,
    status: 200,
    headers: { 'content-type': JSON_CT, 'x-request-id': 'abc123' },
    body: session(),
  });
  ok({
    method: 'POST',
    path: '/api/sessions',
    status: 201,
    headers: { 'Content-Type': JSON_CT, 'X-Request-Id': 'r-1', Location: `/api/sessions/${ID}` },
    body: session({ name: 'Fix the build' }),
  });
});

test('rejects a Session missing working_directory', () => {
  const s = session();
  delete s.working_directory;
  bad(
    { method: 'GET', path: `/api/sessions/${ID}`, status: 200, headers: { 'Content-Type': JSON_CT, 'X-Request-Id': 'a' }, body: s },
    /must have required property 'working_directory'/,
  );
});

test('rejects a Session with an extra field (additionalProperties: false)', () => {
  bad(
    { method: 'GET', path: `/api/sessions/${ID}`, status: 200, headers: { 'Content-Type': JSON_CT, 'X-Request-Id': 'a' }, body: session({ extra: 1 }) },
    /additional properties/,
  );
});

test('rejects an undocumented status', () => {
  bad(
    { method: 'GET', path: `/api/sessions/${ID}`, status: 418, headers: { 'Content-Type': JSON_CT, 'X-Request-Id': 'a' }, body: {} },
    /status 418 is not documented for GET \/api\/sessions\/\{id\}/,
  );
});

test('rejects a wrong content type', () => {
  bad(
    { method: 'GET', path: `/api/sessions/${ID}`, status: 200, headers: { 'Content-Type': 'text/html; charset=utf-8', 'X-Request-Id': 'a' }, body: session() },
    /Content-Type "text\/html; charset=utf-8" is not documented/,
  );
  bad(
    { method: 'GET', path: `/api/sessions/${ID}`, status: 200, headers: { 'Content-Type': 'application/json', 'X-Request-Id': 'a' }, body: session() },
    /lacks charset=utf-8/,
  );
});

test('checks required headers', () => {
  bad(
    { method: 'GET', path: `/api/sessions/${ID}`, status: 200, headers: { 'Content-Type': JSON_CT }, body: session() },
    /required header X-Request-Id is missing/,
  );
  bad(
    { method: 'GET', path: '/api/sessions', status: 200, headers: { 'Content-Type': JSON_CT, 'X-Request-Id': 'a', 'X-Total-Count': 'many' }, body: [] },
    /header X-Total-Count/,
  );
  ok({ method: 'GET', path: '/api/sessions?limit=1', status: 200, headers: { 'Content-Type': JSON_CT, 'X-Request-Id': 'a', 'X-Total-Count': '7' }, body: [session()] });
});

test('204 must be empty; errors, 404, 405, OPTIONS and /status', () => {
  const rid = { 'X-Request-Id': 'a' };
  ok({ method: 'DELETE', path: `/api/sessions/${ID}`, status: 204, headers: rid, body: '' });
  bad({ method: 'DELETE', path: `/api/sessions/${ID}`, status: 204, headers: rid, body: '{}' }, /no content/);
  ok({
    method: 'GET',
    path: `/api/sessions/${ID}`,
    status: 404,
    headers: { ...rid, 'Content-Type': JSON_CT },
    body: { error: `session '${ID}' not found`, code: 'not_found' },
  });
  bad(
    { method: 'GET', path: `/api/sessions/${ID}`, status: 404, headers: { ...rid, 'Content-Type': JSON_CT }, body: { error: 'x', code: 'bad_request' } },
    /\/code/,
  );
  ok({ method: 'GET', path: '/api/nope', status: 404, headers: { ...rid, 'Content-Type': JSON_CT }, body: { error: 'no such path: /api/nope', code: 'not_found' } });
  bad({ method: 'GET', path: '/api/nope', status: 200, headers: rid, body: '' }, /no path of docs\/openapi.json matches/);
  const e405 = { error: 'method PUT is not allowed', code: 'method_not_allowed' };
  ok({ method: 'PUT', path: '/api/sessions', status: 405, headers: { ...rid, 'Content-Type': JSON_CT, Allow: 'GET, HEAD, POST, OPTIONS' }, body: e405 });
  bad({ method: 'PUT', path: '/api/sessions', status: 405, headers: { ...rid, 'Content-Type': JSON_CT, Allow: 'GET, OPTIONS' }, body: e405 }, /Allow/);
  bad({ method: 'PUT', path: '/api/sessions', status: 200, headers: rid, body: '' }, /method PUT is not documented/);
  ok({ method: 'OPTIONS', path: `/api/sessions/${ID}`, status: 204, headers: { ...rid, Allow: 'GET, HEAD, DELETE, PATCH, OPTIONS' }, body: '' });
  ok({ method: 'GET', path: '/status', status: 200, headers: { ...rid, 'Content-Type': 'text/plain; charset=utf-8' }, body: 'ok' });
  ok({ method: 'HEAD', path: '/status', status: 200, headers: { ...rid, 'Content-Type': 'text/plain; charset=utf-8' }, body: '' });
  bad({ method: 'GET', path: '/status', status: 200, headers: { ...rid, 'Content-Type': JSON_CT }, body: '"ok"' }, /not documented/);
});

test('messages: the stored item types are checked, unknown item types are accepted', () => {
  const h = { 'X-Request-Id': 'a', 'Content-Type': JSON_CT };
  const msg = (content) => [{ id: 'm1', role: 'assistant', content, created_at: '2026-11-21T16:00:00Z' }];
  const list = (content) => ({ method: 'GET', path: `/api/sessions/${ID}/messages`, status: 200, headers: h, body: msg(content) });
  ok({ method: 'GET', path: `/api/sessions/${ID}/messages?limit=3`, status: 200, headers: h, body: [] });
  ok(list([
    { type: 'thinking', thinking: 'The user wants a listing.', signature: 'sig==' },
    { type: 'thinking', thinking: 'No signature this time.' },
    { type: 'text', text: 'hi' },
    { type: 'tool_request', id: 'call_1', name: 'developer__shell', arguments: { command: 'ls' } },
    { type: 'tool_request', id: 'call_2', name: 'developer__shell', arguments: {}, invalid_arguments: true },
    { type: 'tool_response', id: 'call_1', name: 'developer__shell', content: [{ type: 'text', text: 'a\nb\n' }], is_error: false },
    { type: 'image', data: 'AAAA', mimeType: 'image/png' },
  ]));
  bad(list([{ type: 'text' }]), /text/);
  bad(list([{ type: 'tool_request', id: 't1', tool: 'ls' }]), /name/);
  bad(list([{ type: 'tool_request', id: 't1', name: 'ls', arguments: 'ls -l' }]), /arguments/);
  bad(list([{ type: 'tool_request', id: 't1', name: 'ls', arguments: {}, invalid_arguments: false }]), /invalid_arguments/);
  bad(list([{ type: 'tool_response', id: 't1', name: 'ls', content: [{ type: 'text', text: 'x' }] }]), /is_error/);
  bad(list([{ type: 'tool_response', id: 't1', name: 'ls', content: 'x', is_error: false }]), /content/);
  bad(list([{ type: 'thinking', text: 'not the field' }]), /thinking/);
});

// ---- the agent's routes ----

const RID = { 'X-Request-Id': 'a' };
const SSE_CT = 'text/event-stream; charset=utf-8';
const SSE_H = { ...RID, 'Content-Type': SSE_CT, 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' };
const JH = { ...RID, 'Content-Type': JSON_CT };
const SSE_TEXT = [
  'id: 1\nevent: message_chunk\ndata: {"type":"text","text":"Hi"}\n\n',
  ': ping\n\n',
  'id: 2\nevent: message_complete\ndata: {"stop_reason":"end_turn","message_id":"m2","usage":{"input_tokens":1,"output_tokens":2}}\n\n',
].join('');

function reply(over = {}) {
  return {
    id: '5d0c2f7e-9a41-4b8e-8f3a-1c2d3e4f5a6b',
    role: 'assistant',
    content: 'Done.',
    content_items: [{ type: 'text', text: 'Done.' }],
    created_at: '2026-11-21T16:00:09Z',
    stop_reason: 'end_turn',
    usage: { input_tokens: 10, output_tokens: 3 },
    ...over,
  };
}

const err = (error, code) => ({ error, code });

test('POST /api/sessions/{id}/messages: the JSON ReplyMessage', () => {
  const p = `/api/sessions/${ID}/messages`;
  ok({ method: 'POST', path: p, status: 200, headers: JH, body: reply() });
  ok({ method: 'POST', path: p, status: 200, headers: JH, body: JSON.stringify(reply({ id: null, created_at: null, content: '', content_items: [] })) });
  for (const stop of ['max_turns', 'cancelled', 'max_tokens', 'tool_use'])
    ok({ method: 'POST', path: p, status: 200, headers: JH, body: reply({ stop_reason: stop }) });
  ok({
    method: 'POST',
    path: p,
    status: 200,
    headers: JH,
    body: reply({
      content: 'Let me look.',
      content_items: [{ type: 'text', text: 'Let me look.' }, { type: 'tool_request', id: 'c1', name: 'developer__list_files', arguments: {} }],
    }),
  });
  bad({ method: 'POST', path: p, status: 200, headers: JH, body: reply({ stop_reason: 'error' }) }, /stop_reason/);
  bad({ method: 'POST', path: p, status: 200, headers: JH, body: reply({ role: 'user' }) }, /role/);
  bad({ method: 'POST', path: p, status: 200, headers: JH, body: reply({ content: [{ type: 'text', text: 'x' }] }) }, /content/);
  bad({ method: 'POST', path: p, status: 200, headers: JH, body: reply({ usage: { input_tokens: 1 } }) }, /output_tokens/);
  bad({ method: 'POST', path: p, status: 200, headers: JH, body: reply({ extra: 1 }) }, /additional properties/);
  const noUsage = reply();
  delete noUsage.usage;
  bad({ method: 'POST', path: p, status: 200, headers: JH, body: noUsage }, /usage/);
  // the alias does not answer JSON messages
  bad({ method: 'POST', path: `/sessions/${ID}/messages`, status: 200, headers: { ...SSE_H, 'Content-Type': JSON_CT }, body: reply() }, /application\/json.*not documented/);
});

test('an event stream is accepted where documented: content type and headers checked, body not', () => {
  for (const p of [`/api/sessions/${ID}/messages`, `/api/sessions/${ID}/messages/stream`, `/sessions/${ID}/messages`]) {
    ok({ method: 'POST', path: p, status: 200, headers: SSE_H, body: undefined });
    ok({ method: 'POST', path: p, status: 200, headers: SSE_H, body: SSE_TEXT });
    ok({ method: 'POST', path: p, status: 200, headers: new Headers(SSE_H), body: Buffer.from(SSE_TEXT) });
    bad({ method: 'POST', path: p, status: 200, headers: { ...SSE_H, 'Content-Type': 'text/event-stream' }, body: undefined }, /lacks charset=utf-8/);
    bad({ method: 'POST', path: p, status: 201, headers: SSE_H, body: undefined }, /status 201 is not documented/);
  }
  ok({ method: 'GET', path: `/api/sessions/${ID}/events`, status: 200, headers: SSE_H, body: undefined });
  ok({ method: 'GET', path: `/api/sessions/${ID}/events?after=41`, status: 200, headers: SSE_H, body: SSE_TEXT });
  ok({ method: 'HEAD', path: `/api/sessions/${ID}/events`, status: 200, headers: SSE_H, body: '' });
  // the streaming-only operations always send the stream headers; the JSON-or-stream one may not
  const { 'Cache-Control': _, ...noCache } = SSE_H;
  bad({ method: 'POST', path: `/api/sessions/${ID}/messages/stream`, status: 200, headers: noCache, body: undefined }, /required header Cache-Control is missing/);
  bad({ method: 'GET', path: `/api/sessions/${ID}/events`, status: 200, headers: { ...SSE_H, 'X-Accel-Buffering': 'yes' }, body: undefined }, /X-Accel-Buffering/);
  ok({ method: 'POST', path: `/api/sessions/${ID}/messages`, status: 200, headers: noCache, body: undefined });
  // a stream where none is documented, and JSON where only a stream is
  bad({ method: 'GET', path: `/api/sessions/${ID}/messages`, status: 200, headers: SSE_H, body: undefined }, /text\/event-stream.*not documented/);
  bad({ method: 'POST', path: `/api/sessions/${ID}/messages/stream`, status: 200, headers: { ...SSE_H, 'Content-Type': JSON_CT }, body: reply() }, /not documented/);
  bad({ method: 'GET', path: `/api/sessions/${ID}/events`, status: 200, headers: { ...SSE_H, 'Content-Type': JSON_CT }, body: [] }, /not documented/);
});

test('message errors: 400, 404, 409, 413, 415, 502 (JSON only), 503', () => {
  const api = `/api/sessions/${ID}/messages`;
  const streams = [`/api/sessions/${ID}/messages/stream`, `/sessions/${ID}/messages`];
  const notConfigured = err('no provider configured: set GOOSE_PROVIDER', 'provider_not_configured');
  for (const p of [api, ...streams]) {
    ok({ method: 'POST', path: p, status: 400, headers: JH, body: err('content: a non-empty string is required', 'bad_request') });
    ok({ method: 'POST', path: p, status: 400, headers: JH, body: err('request body is not valid JSON: x (line 1, column 1)', 'invalid_json') });
    ok({ method: 'POST', path: p, status: 404, headers: JH, body: err(`session '${ID}' not found`, 'not_found') });
    ok({ method: 'POST', path: p, status: 409, headers: JH, body: err('a reply is already running in this session', 'reply_running') });
    bad({ method: 'POST', path: p, status: 409, headers: JH, body: err('x', 'no_reply_running') }, /\/code/);
    ok({ method: 'POST', path: p, status: 413, headers: JH, body: err('request body is larger than the limit of 1024 bytes', 'payload_too_large') });
    ok({ method: 'POST', path: p, status: 415, headers: JH, body: err('Content-Type must be application/json (got text/plain)', 'unsupported_media_type') });
    ok({ method: 'POST', path: p, status: 500, headers: JH, body: err('out of memory', 'internal') });
    ok({ method: 'POST', path: p, status: 503, headers: JH, body: notConfigured });
    ok({ method: 'POST', path: p, status: 503, headers: JH, body: err('storage unavailable: disk I/O error', 'storage_unavailable') });
    bad({ method: 'POST', path: p, status: 503, headers: JH, body: err('x', 'provider_error') }, /\/code/);
  }
  // the JSON answer waits for the reply, so it can report the reply's failure
  ok({ method: 'POST', path: api, status: 502, headers: JH, body: err('Incorrect API key provided', 'provider_error') });
  ok({ method: 'POST', path: api, status: 502, headers: JH, body: err('cannot start a thread for the tool calls', 'internal') });
  bad({ method: 'POST', path: api, status: 502, headers: JH, body: err('x', 'storage_unavailable') }, /\/code/);
  ok({ method: 'POST', path: api, status: 503, headers: JH, body: err('the server is shutting down', 'shutting_down') });
  ok({ method: 'POST', path: api, status: 503, headers: JH, body: err('database is locked', 'storage_unavailable') });
  for (const p of streams) {
    bad({ method: 'POST', path: p, status: 502, headers: JH, body: err('x', 'provider_error') }, /status 502 is not documented/);
    bad({ method: 'POST', path: p, status: 503, headers: JH, body: err('the server is shutting down', 'shutting_down') }, /\/code/);
  }
});

test('GET /api/sessions/{id}/events and POST /api/sessions/{id}/cancel', () => {
  const ev = `/api/sessions/${ID}/events`;
  ok({ method: 'GET', path: ev, status: 400, headers: JH, body: err('Last-Event-ID: must be an event id (a whole number)', 'bad_request') });
  ok({ method: 'GET', path: ev, status: 404, headers: JH, body: err(`session '${ID}' not found`, 'not_found') });
  ok({ method: 'GET', path: ev, status: 503, headers: JH, body: err('storage unavailable: disk I/O error', 'storage_unavailable') });
  bad({ method: 'GET', path: ev, status: 409, headers: JH, body: err('x', 'reply_running') }, /status 409 is not documented/);
  bad({ method: 'POST', path: ev, status: 200, headers: JH, body: {} }, /method POST is not documented/);
  ok({ method: 'POST', path: ev, status: 405, headers: { ...JH, Allow: 'GET, HEAD, OPTIONS' }, body: err('method POST is not allowed', 'method_not_allowed') });

  const c = `/api/sessions/${ID}/cancel`;
  ok({ method: 'POST', path: c, status: 202, headers: JH, body: { cancelling: true } });
  ok({ method: 'POST', path: c, status: 202, headers: JH, body: '{"cancelling":true}' });
  bad({ method: 'POST', path: c, status: 202, headers: JH, body: { cancelling: false } }, /cancelling/);
  bad({ method: 'POST', path: c, status: 202, headers: JH, body: { cancelling: true, extra: 1 } }, /additional properties/);
  bad({ method: 'POST', path: c, status: 200, headers: JH, body: { cancelling: true } }, /status 200 is not documented/);
  ok({ method: 'POST', path: c, status: 409, headers: JH, body: err(`no reply is running in session '${ID}'`, 'no_reply_running') });
  bad({ method: 'POST', path: c, status: 409, headers: JH, body: err('x', 'reply_running') }, /\/code/);
  ok({ method: 'POST', path: c, status: 404, headers: JH, body: err(`session '${ID}' not found`, 'not_found') });
  ok({ method: 'GET', path: c, status: 405, headers: { ...JH, Allow: 'POST, OPTIONS' }, body: err('method GET is not allowed', 'method_not_allowed') });
  ok({ method: 'OPTIONS', path: c, status: 204, headers: { ...RID, Allow: 'POST, OPTIONS' }, body: '' });

  // the messages paths now take POST as well as GET
  ok({ method: 'PUT', path: `/api/sessions/${ID}/messages`, status: 405, headers: { ...JH, Allow: 'GET, HEAD, POST, OPTIONS' }, body: err('x', 'method_not_allowed') });
  bad({ method: 'PUT', path: `/api/sessions/${ID}/messages`, status: 405, headers: { ...JH, Allow: 'GET, HEAD, OPTIONS' }, body: err('x', 'method_not_allowed') }, /Allow/);
  ok({ method: 'PUT', path: `/sessions/${ID}/messages`, status: 405, headers: { ...JH, Allow: 'GET, HEAD, POST, OPTIONS' }, body: err('x', 'method_not_allowed') });
  ok({ method: 'GET', path: `/api/sessions/${ID}/messages/stream`, status: 405, headers: { ...JH, Allow: 'POST, OPTIONS' }, body: err('x', 'method_not_allowed') });
  assert.equal(matchPath(`/api/sessions/${ID}/messages/stream`)?.template, '/api/sessions/{id}/messages/stream');
  assert.equal(matchPath(`/api/sessions/${ID}/events?after=3`)?.template, '/api/sessions/{id}/events');
  assert.equal(matchPath(`/sessions/${ID}/messages/stream`), null);
});

test('the SSE event schemas are in the spec and describe what the agent sends', async () => {
  // The component schemas on their own, their #/components/schemas/… $refs made local.
  const { default: Ajv2020 } = await import('ajv/dist/2020.js');
  const local = (o) =>
    Array.isArray(o)
      ? o.map(local)
      : o && typeof o === 'object'
        ? Object.fromEntries(Object.entries(o).map(([k, v]) => [k, k === '$ref' ? v.replace('#/components/schemas/', 'spec#/$defs/') : local(v)]))
        : o;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addSchema({ $id: 'spec', $defs: local(spec.components.schemas) });
  const check = (name, value) => {
    const v = ajv.getSchema(`spec#/$defs/${name}`);
    return v(value) ? null : v.errors;
  };
  const valid = [
    ['MessageChunkEvent', { type: 'text', text: 'Let me check' }],
    ['MessageChunkEvent', { type: 'thinking', text: 'hmm' }],
    ['ToolCallEvent', { id: 'call_1', tool: 'developer__shell', arguments: { command: 'ls' }, status: 'running' }],
    ['ToolResultEvent', { id: 'call_1', tool: 'developer__shell', result: 'a\n', is_error: false }],
    ['MessageCompleteEvent', { stop_reason: 'cancelled', message_id: 'm1', usage: { input_tokens: 0, output_tokens: 0 } }],
    ['ErrorEvent', { error: 'Incorrect API key provided', code: 'provider_error' }],
    ['ErrorEvent', { error: 'this client fell too far behind and missed events; reload the history', code: 'events_lost' }],
    ['StreamEvent', { id: '7', event: 'message_chunk', data: '{"type":"text","text":"x"}' }],
    ['StreamEvent', { event: 'error', data: '{"error":"x","code":"events_lost"}' }],
    ['SendMessageRequest', { content: 'hi' }],
    ['SendMessageRequest', { content: 'hi', role: 'user', other: 1 }],
    ['StreamEvent', { id: '8', event: 'tool_confirmation', data: '{"id":"c","tool":"t","arguments":{},"choices":["allow_once"]}' }],
    ['ToolConfirmationEvent', { id: 'c', tool: 'developer__shell', arguments: { command: 'ls' }, choices: ['allow_once', 'always_allow', 'deny_once', 'always_deny', 'cancel'] }],
    ['ToolConfirmationRequest', { id: 'c', action: 'deny' }],
  ];
  for (const [name, value] of valid) assert.equal(check(name, value), null, `${name} ${JSON.stringify(value)}`);
  const invalid = [
    ['MessageChunkEvent', { type: 'tool', text: 'x' }],
    ['ToolCallEvent', { id: 'c', tool: 't', arguments: {}, status: 'done' }],
    ['ToolResultEvent', { id: 'c', tool: 't', result: {}, is_error: false }],
    ['MessageCompleteEvent', { stop_reason: 'error', message_id: 'm1', usage: { input_tokens: 0, output_tokens: 0 } }],
    ['ErrorEvent', { error: 'x' }],
    ['StreamEvent', { event: 'message_chunk', data: '{}' }],
    ['StreamEvent', { id: '1', event: 'tool_approval', data: '{}' }],
    ['ToolConfirmationEvent', { id: 'c', tool: 't', arguments: {}, choices: ['maybe'] }],
    ['ToolConfirmationRequest', { id: 'c', action: 'sure' }],
    ['SendMessageRequest', { content: '' }],
    ['SendMessageRequest', { content: 'hi', role: 'assistant' }],
    ['SendMessageRequest', { role: 'user' }],
  ];
  for (const [name, value] of invalid) assert.notEqual(check(name, value), null, `${name} ${JSON.stringify(value)} should be invalid`);
  for (const code of ['reply_running', 'no_reply_running', 'provider_error', 'provider_not_configured', 'shutting_down'])
    assert.ok(spec.components.schemas.Error.properties.code.enum.includes(code), code);
});

test('health and config bodies are exact', () => {
  const h = { 'X-Request-Id': 'a', 'Content-Type': JSON_CT };
  ok({ method: 'GET', path: '/api/health', status: 200, headers: h, body: { status: 'ok', version: '0.1.0', uptime_s: 3, store: 'ok' } });
  ok({ method: 'GET', path: '/api/health', status: 503, headers: h, body: { status: 'unavailable', version: '0.1.0', uptime_s: 3, store: 'unable to open database file' } });
  bad({ method: 'GET', path: '/api/health', status: 503, headers: h, body: { status: 'ok', version: '0.1.0', uptime_s: 3, store: 'ok' } }, /\/status/);
  const config = {
    provider: null,
    model: null,
    host: '127.0.0.1',
    port: 0,
    api_timeout: 600,
    max_retries: 3,
    max_body_size: 10485760,
    cors_origins: [],
    log_level: 'info',
    config_file: null,
    data_dir: '/home/a/.local/share/goose/sessions',
    execution_mode: 'auto',
    auto_save: true,
  };
  ok({ method: 'GET', path: '/api/config', status: 200, headers: h, body: config });
  bad({ method: 'GET', path: '/api/config', status: 200, headers: h, body: { ...config, api_key: 'secret' } }, /additional properties/);
});
