// /status, /api/health and /openapi.json: the probes and the published spec.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAndCheck, runGoosed, REPO } from './lib/server.mjs';
import { request, get } from './lib/http.mjs';

const RID = /^[A-Za-z0-9._-]{1,128}$/;

describe('health and spec', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(() => stopAndCheck(srv));

  it('GET /status answers 200 text "ok"', async () => {
    const r = await get(srv, '/status');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(r.text, 'ok');
    assert.match(r.headers.get('x-request-id') || '', RID);
  });

  it('HEAD /status answers 200 with no body', async () => {
    const r = await request(srv, 'HEAD', '/status');
    assert.equal(r.status, 200);
    assert.equal(r.text, '');
  });

  it('GET /api/health reports ok, the version, uptime and the store', async () => {
    const r = await get(srv, '/api/health');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
    const { stdout } = await runGoosed(['--version']);
    const version = stdout.trim().replace(/^goosed /, '');
    assert.deepEqual(Object.keys(r.body).sort(), ['status', 'store', 'uptime_s', 'version']);
    assert.equal(r.body.status, 'ok');
    assert.equal(r.body.version, version);
    assert.match(r.body.version, /^\d+\.\d+\.\d+$/);
    assert.ok(Number.isInteger(r.body.uptime_s) && r.body.uptime_s >= 0, `uptime_s: ${r.body.uptime_s}`);
    assert.ok(r.body.uptime_s < 60, 'a server started a moment ago has been up less than a minute');
    assert.equal(r.body.store, 'ok');
  });

  it('GET /openapi.json is exactly docs/openapi.json', async () => {
    const r = await get(srv, '/openapi.json');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
    const doc = JSON.parse(readFileSync(path.join(REPO, 'docs/openapi.json'), 'utf8'));
    assert.deepEqual(r.body, doc);
    assert.match(r.body.openapi, /^3\.1\./);
  });

  it('the spec documents every route of this contract', async () => {
    const { body } = await get(srv, '/openapi.json');
    const want = {
      '/status': ['get'],
      '/api/health': ['get'],
      '/openapi.json': ['get'],
      '/api/config': ['get'],
      '/api/sessions': ['get', 'post'],
      '/sessions': ['get', 'post'],
      '/api/sessions/{id}': ['get', 'delete'],
      '/sessions/{id}': ['get', 'delete'],
      '/api/sessions/{id}/messages': ['get'],
      '/sessions/{id}/messages': ['get'],
    };
    // The placeholder may have another name than {id}: compare with placeholders blanked.
    const norm = (p) => p.replace(/\{[^}]+\}/g, '{}');
    const paths = Object.fromEntries(Object.entries(body.paths || {}).map(([p, v]) => [norm(p), v]));
    for (const [p, methods] of Object.entries(want)) {
      assert.ok(paths[norm(p)], `docs/openapi.json has no path ${p}`);
      for (const m of methods) assert.ok(paths[norm(p)][m], `docs/openapi.json has no ${m.toUpperCase()} ${p}`);
    }
  });

  it('every response carries a request id, fresh for each request', async () => {
    const a = await get(srv, '/status');
    const b = await get(srv, '/api/health');
    const ra = a.headers.get('x-request-id');
    const rb = b.headers.get('x-request-id');
    assert.match(ra, RID);
    assert.match(rb, RID);
    assert.notEqual(ra, rb);
  });
});
