// GOOSE_LOG_FORMAT=json: one JSON object per line on stderr (time, level, target, message), with
// the request id, session, user and trace id of the request or reply the line was written for.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, stopAndCheck, runGoosed, tempDir } from './lib/server.mjs';
import { request, get } from './lib/http.mjs';
import { recordSecret } from './lib/record.mjs';
import { addUser } from './lib/users.mjs';
import { startFake, parseSSE } from '../fakes/lib.mjs';
import { startReceiver } from './lib/otlp_receiver.mjs';

const KEY = 'sk-json-logs-provider-key-77';
const LEVELS = new Set(['error', 'warn', 'info', 'debug', 'trace']);

describe('GOOSE_LOG_FORMAT=json', () => {
  let fake, receiver, srv, token, lines;
  const trace = randomBytes(16).toString('hex');
  let sid;
  before(async () => {
    const home = tempDir();
    token = await addUser(home, 'alice');
    recordSecret(token, 'a user token');
    fake = await startFake({ keys: { openai: KEY } });
    receiver = await startReceiver();
    srv = await startServer({
      home,
      env: {
        GOOSE_LOG_FORMAT: 'json', GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-log', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '20',
      },
    });
    const as = { Authorization: `Bearer ${token}` };
    const s = await request(srv, 'POST', '/api/sessions', { json: { name: 'logged' }, headers: as });
    assert.equal(s.status, 201, s.text);
    sid = s.body.id;
    await fake.script([{ text: 'logged reply' }]);
    const r = await request(srv, 'POST', `/api/sessions/${sid}/messages/stream`, {
      json: { content: 'hello' },
      headers: { ...as, 'X-Request-Id': 'json-log-rid-1', traceparent: `00-${trace}-${randomBytes(8).toString('hex')}-01` },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(parseSSE(r.text).at(-1).event, 'message_complete');
    assert.equal((await get(srv, '/status', { headers: { 'X-Request-Id': 'json-log-rid-2' } })).status, 200);
    await stopAndCheck(srv);
    lines = srv.log().split('\n').filter((l) => l !== '');
  });
  after(async () => {
    await fake.stop();
    await receiver.stop();
  });

  it('writes every line as one JSON object with time, level, target and message', () => {
    assert.ok(lines.length > 5, 'there are lines');
    for (const l of lines) {
      let o;
      assert.doesNotThrow(() => { o = JSON.parse(l); }, `not JSON: ${l}`);
      assert.match(o.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, l);
      assert.ok(LEVELS.has(o.level), l);
      assert.equal(typeof o.target, 'string', l);
      assert.equal(typeof o.message, 'string', l);
      assert.ok(!l.includes(token) && !l.includes(KEY), 'no secret in a line');
    }
    const start = lines.map((l) => JSON.parse(l)).find((o) => /listening on/.test(o.message));
    assert.ok(start, 'the listening line is there');
    assert.equal(start.request_id, undefined, 'a line of no request has no request id');
  });

  it("carries the request's id, session, user and trace id on its access line", () => {
    const all = lines.map((l) => JSON.parse(l));
    const access = all.find((o) => o.target === 'access' && o.request_id === 'json-log-rid-1');
    assert.ok(access, 'the access line of the reply request');
    assert.match(access.message, /POST \/api\/sessions\/.* 200 /);
    assert.equal(access.session_id, sid);
    assert.equal(access.user, 'alice');
    assert.equal(access.trace_id, trace, "the client's trace");
    const status = all.find((o) => o.target === 'access' && o.request_id === 'json-log-rid-2');
    assert.ok(status, 'the access line of GET /status');
    assert.equal(status.session_id, undefined, 'a request of no session has none');
    assert.match(status.trace_id, /^[0-9a-f]{32}$/);
    assert.notEqual(status.trace_id, trace, 'a request without traceparent starts its own trace');
  });

  it("carries the request's context on the lines of the reply it started (another thread)", () => {
    const agent = lines.map((l) => JSON.parse(l)).filter((o) => o.target === 'agent' && /reply (started|ended)/.test(o.message));
    assert.equal(agent.length, 2, 'reply started and ended');
    for (const o of agent) {
      assert.equal(o.request_id, 'json-log-rid-1');
      assert.equal(o.session_id, sid);
      assert.equal(o.user, 'alice');
      assert.equal(o.trace_id, trace);
    }
  });
});

describe('GOOSE_LOG_FORMAT', () => {
  it('refuses a format it does not know, naming the choices', async () => {
    const r = await runGoosed(['--port', '0'], { GOOSE_LOG_FORMAT: 'xml' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /GOOSE_LOG_FORMAT.*text or json/);
  });

  it('keeps the text format by default', async (t) => {
    const srv = await startServer();
    t.after(() => stopAndCheck(srv));
    assert.match(srv.log(), /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO  server: goosed .* listening on /m);
  });
});
