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
  ok({ method: 'OPTIONS', path: `/api/sessions/${ID}`, status: 204, headers: { ...rid, Allow: 'GET, HEAD, DELETE, OPTIONS' }, body: '' });
  ok({ method: 'GET', path: '/status', status: 200, headers: { ...rid, 'Content-Type': 'text/plain; charset=utf-8' }, body: 'ok' });
  ok({ method: 'HEAD', path: '/status', status: 200, headers: { ...rid, 'Content-Type': 'text/plain; charset=utf-8' }, body: '' });
  bad({ method: 'GET', path: '/status', status: 200, headers: { ...rid, 'Content-Type': JSON_CT }, body: '"ok"' }, /not documented/);
});

test('messages: text items are checked, unknown item types are accepted', () => {
  const h = { 'X-Request-Id': 'a', 'Content-Type': JSON_CT };
  const msg = (content) => [{ id: 'm1', role: 'assistant', content, created_at: '2026-11-21T16:00:00Z' }];
  ok({ method: 'GET', path: `/api/sessions/${ID}/messages?limit=3`, status: 200, headers: h, body: [] });
  ok({
    method: 'GET',
    path: `/api/sessions/${ID}/messages`,
    status: 200,
    headers: h,
    body: msg([{ type: 'text', text: 'hi' }, { type: 'tool_request', id: 't1', tool: 'ls' }]),
  });
  bad({ method: 'GET', path: `/api/sessions/${ID}/messages`, status: 200, headers: h, body: msg([{ type: 'text' }]) }, /text/);
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
  };
  ok({ method: 'GET', path: '/api/config', status: 200, headers: h, body: config });
  bad({ method: 'GET', path: '/api/config', status: 200, headers: h, body: { ...config, api_key: 'secret' } }, /additional properties/);
});
