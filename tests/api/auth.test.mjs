// Authentication and isolation: X-Secret-Key, users with bearer tokens (`goosed user`), the
// trusted reverse-proxy mode behind a real nginx with auth_basic, the refusal to serve 0.0.0.0
// open, and every session route of one user tried by another (404, no data).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import http from 'node:http';
import { startServer, stopAndCheck, runGoosed, tempDir, freePort } from './lib/server.mjs';
import { request, get, post, assertError, rawRequest } from './lib/http.mjs';
import { spec } from './lib/openapi.mjs';
import { connect } from './lib/ws.mjs';
import { TOKEN_RE, addUser } from './lib/users.mjs';
import { startNginx, stopNginx } from './lib/nginx.mjs';

const SECRET = 'test-secret-' + crypto.randomBytes(12).toString('hex');

/** `goosed user ...` with HOME=home. */
const user = (home, ...args) => runGoosed(['user', ...args], { HOME: home });

const bearer = (token) => ({ Authorization: `Bearer ${token}` });

/** Every operation of the spec as [method, concrete path] (ids and names filled in). */
function everyRoute(id = crypto.randomUUID()) {
  const out = [];
  for (const [p, ops] of Object.entries(spec.paths))
    for (const m of Object.keys(ops))
      if (['get', 'post', 'put', 'patch', 'delete'].includes(m))
        out.push([m.toUpperCase(), p.replaceAll('{id}', id).replaceAll('{name}', 'developer')]);
  return out;
}

/** Asserts that none of the secrets appears in the server's log. */
function assertNoSecrets(srv, secrets) {
  const log = srv.log() + srv.stdout();
  for (const s of secrets) assert.ok(!log.includes(s), `a secret (${s.slice(0, 6)}…) appears in goosed's log`);
}

describe('X-Secret-Key (GOOSE_SERVER__SECRET_KEY)', () => {
  let srv;
  before(async () => {
    srv = await startServer({ env: { GOOSE_SERVER__SECRET_KEY: SECRET, GOOSE_CORS_ORIGINS: 'https://app.example' } });
  });
  after(async () => {
    assertNoSecrets(srv, [SECRET]);
    await stopAndCheck(srv);
  });

  it('/status stays open', async () => {
    const r = await get(srv, '/status');
    assert.equal(r.status, 200);
    assert.equal(r.text, 'ok');
  });

  it('/oauth/callback is answered without the key (a browser\'s redirect carries none), taking nothing it does not wait for', async () => {
    const r = await get(srv, '/oauth/callback?state=guess&code=x');
    assert.equal(r.status, 400);
    assert.match(r.text, /No sign-in waits for this page/);
  });

  it('every other route answers 401 with WWW-Authenticate and a JSON body without it, and with a wrong key', async () => {
    for (const [m, p] of everyRoute()) {
      if (p === '/status' || p === '/oauth/callback') continue;
      for (const headers of [{}, { 'X-Secret-Key': 'wrong' }, { 'X-Secret-Key': SECRET + 'x' }, { 'X-Secret-Key': '' },
        bearer('gd_' + 'A'.repeat(43)), { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }]) {
        const r = await request(srv, m, p, { headers, json: ['POST', 'PATCH'].includes(m) ? {} : undefined });
        assertError(r, 401, 'unauthorized', /X-Secret-Key/);
        assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="goosed"', `${m} ${p}`);
      }
    }
  });

  it('an unknown path answers 401 too (nothing to learn about routes without the key)', async () => {
    const r = await request(srv, 'GET', '/api/nope', { validate: false });
    assertError(r, 401, 'unauthorized');
  });

  it('the right key is the local user, an admin', async () => {
    const h = { 'X-Secret-Key': SECRET };
    const s = await post(srv, '/api/sessions', {}, { headers: h });
    assert.equal(s.status, 201);
    assert.equal((await get(srv, `/api/sessions/${s.body.id}`, { headers: h })).status, 200);
    const list = await get(srv, '/api/sessions', { headers: h });
    assert.deepEqual(list.body.map((x) => x.id), [s.body.id]);
    const patch = await request(srv, 'PATCH', '/api/config', { headers: h, json: { execution_mode: 'auto' } });
    assert.equal(patch.status, 200);
  });

  it('the CORS preflight allows X-Secret-Key and Authorization', async () => {
    const r = await request(srv, 'OPTIONS', '/api/sessions', {
      headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'x-secret-key' },
    });
    assert.equal(r.status, 204);
    const allowed = (r.headers.get('access-control-allow-headers') || '').toLowerCase();
    assert.match(allowed, /\bx-secret-key\b/);
    assert.match(allowed, /\bauthorization\b/);
  });
});

describe('constant-time comparison', () => {
  it('the key and the tokens are compared with sodium_memcmp over fixed-length hashes', () => {
    const src = readFileSync(path.join(import.meta.dirname, '../../src/auth/auth.c'), 'utf8');
    const fn = src.slice(src.indexOf('bool auth_secret_equal'), src.indexOf('bool auth_name_valid'));
    assert.match(fn, /sodium_memcmp\(/);
    assert.match(fn, /crypto_generichash\(/);
    assert.doesNotMatch(src, /strcmp\([^)]*secret_key/, 'the secret key is never compared with strcmp');
  });
});

describe('users with tokens: isolation', () => {
  let srv, home, alice, bob, aliceSession, bobSession;
  const tokens = [];
  before(async () => {
    home = tempDir();
    alice = await addUser(home, 'alice', true);
    bob = await addUser(home, 'bob');
    tokens.push(alice, bob);
    srv = await startServer({ home });
    aliceSession = (await post(srv, '/api/sessions', { name: 'alice private' }, { headers: bearer(alice) })).body;
    bobSession = (await post(srv, '/api/sessions', { name: 'bob' }, { headers: bearer(bob) })).body;
    assert.ok(aliceSession.id && bobSession.id);
  });
  after(async () => {
    assertNoSecrets(srv, tokens);
    await stopAndCheck(srv);
  });

  it('no token, a wrong one, or a token in the query string: 401', async () => {
    assertError(await get(srv, '/api/sessions'), 401, 'unauthorized', /Bearer/);
    assertError(await get(srv, '/api/sessions', { headers: bearer(alice + 'x') }), 401, 'unauthorized');
    assertError(await get(srv, '/api/sessions', { headers: bearer('') }), 401, 'unauthorized');
    assertError(await get(srv, `/api/sessions?token=${alice}`), 401, 'unauthorized');
    assertError(await get(srv, `/api/sessions?access_token=${alice}`), 401, 'unauthorized');
    assertError(await get(srv, '/api/sessions', { headers: { 'X-Secret-Key': alice } }), 401, 'unauthorized');
  });

  it('GET /api/sessions lists only the caller\'s sessions', async () => {
    const a = await get(srv, '/api/sessions', { headers: bearer(alice) });
    const b = await get(srv, '/api/sessions', { headers: bearer(bob) });
    assert.deepEqual(a.body.map((s) => s.id), [aliceSession.id]);
    assert.deepEqual(b.body.map((s) => s.id), [bobSession.id]);
    assert.equal(b.headers.get('x-total-count'), '1');
  });

  it('every session route on another user\'s session answers 404 exactly as for no session, with no data', async () => {
    const missing = crypto.randomUUID();
    const routes = everyRoute('ID').filter(([, p]) => p.includes('/sessions/ID'));
    assert.ok(routes.length >= 20, `found ${routes.length} session routes`);
    for (const [m, p] of routes) {
      const json = ['POST', 'PATCH'].includes(m) ? { text: 'hi', name: 'x', id: 'x', confirmed: true, action: 'accept' } : undefined;
      const theirs = await request(srv, m, p.replace('ID', aliceSession.id), { headers: bearer(bob), json });
      const none = await request(srv, m, p.replace('ID', missing), { headers: bearer(bob), json });
      assert.equal(theirs.status, 404, `${m} ${p} by bob on alice's session: ${theirs.text}`);
      assert.equal(theirs.text.replace(aliceSession.id, 'X'), none.text.replace(missing, 'X'), `${m} ${p}: the 404 tells nothing`);
      assert.ok(!theirs.text.includes('alice private'));
    }
    // The session and its name are untouched.
    const still = await get(srv, `/api/sessions/${aliceSession.id}`, { headers: bearer(alice) });
    assert.equal(still.status, 200);
    assert.equal(still.body.name, 'alice private');
  });

  it('the event stream with Last-Event-ID, and the WebSocket, of another user\'s session: 404', async () => {
    const sse = await get(srv, `/api/sessions/${aliceSession.id}/events`, { headers: { ...bearer(bob), 'Last-Event-ID': '0' } });
    assertError(sse, 404, 'not_found');
    await assert.rejects(connect(srv, `/api/sessions/${aliceSession.id}/stream`, { headers: bearer(bob) }),
      /HTTP\/1\.1 404 .*"code":"not_found"/);
    await assert.rejects(connect(srv, `/api/sessions/${aliceSession.id}/stream`), /HTTP\/1\.1 401 .*"code":"unauthorized"/);
    await assert.rejects(connect(srv, `/api/sessions/${aliceSession.id}/stream?token=${alice}`),
      /HTTP\/1\.1 401 /, 'a token in the query string is not accepted');
    const own = await connect(srv, `/api/sessions/${aliceSession.id}/stream`, { headers: bearer(alice) });
    assert.equal(own.status, 101, 'the owner opens the WebSocket with the same header');
    own.ws.destroy();
  });

  it('admin-only routes: 403 for a user who is not an admin', async () => {
    const cases = [
      ['PATCH', '/api/config', { execution_mode: 'auto' }],
      ['POST', '/api/providers', { scope: 'default', name: 'openai', model: 'x' }],
      // the extension routes act on a user's own set (user_extensions.test.mjs)
    ];
    for (const [m, p, json] of cases) {
      const r = await request(srv, m, p, { headers: bearer(bob), json });
      assertError(r, 403, 'forbidden', /admin/);
    }
    const ok = await request(srv, 'PATCH', '/api/config', { headers: bearer(alice), json: { execution_mode: 'auto' } });
    assert.equal(ok.status, 200);
  });

  it('goosed user token rotates: the old token stops working, the new one works (server running)', async () => {
    // streams opened with the old token: the WebSocket and the SSE events
    const { ws } = await connect(srv, `/api/sessions/${bobSession.id}/stream`, { headers: bearer(bob) });
    const ac = new AbortController();
    const sse = await fetch(`${srv.url}/api/sessions/${bobSession.id}/events`, { headers: bearer(bob), signal: ac.signal });
    assert.equal(sse.status, 200);
    const r = await user(home, 'token', 'bob');
    assert.equal(r.code, 0, r.stderr);
    const fresh = r.stdout.trim();
    assert.match(fresh, TOKEN_RE);
    tokens.push(fresh);
    assertError(await get(srv, '/api/sessions', { headers: bearer(bob) }), 401, 'unauthorized');
    const b = await get(srv, '/api/sessions', { headers: bearer(fresh) });
    assert.deepEqual(b.body.map((s) => s.id), [bobSession.id]);
    // the WebSocket acts for no one now: its next frame closes it (1008), no reply starts
    ws.sendJSON({ type: 'message', content: 'still here?' });
    const f = await ws.frame();
    assert.equal(f.opcode, 8, 'a close frame');
    assert.equal(f.code, 1008);
    assert.match(f.reason, /token that opened this connection was replaced/);
    // the SSE stream ends at its next keep-alive (every 15 s) with an error event
    let text = '';
    const dec = new TextDecoder();
    for await (const chunk of sse.body) text += dec.decode(chunk, { stream: true });
    assert.match(text, /event: error\ndata: \{"error":"the token that opened this stream was replaced, or its user removed","code":"unauthorized"\}/);
    ac.abort();
  });

  it('only a hash is stored: no token in goosed.db or its WAL', () => {
    const dir = path.join(home, '.local/share/goose/sessions');
    const files = readdirSync(dir).filter((f) => f.startsWith('goosed.db'));
    assert.ok(files.includes('goosed.db'));
    for (const f of files) {
      const bytes = readFileSync(path.join(dir, f));
      for (const t of tokens) assert.equal(bytes.indexOf(t), -1, `a token is in ${f}`);
    }
    // sqlite3 is installed by scripts/deps.sh test
    const out = execFileSync('sqlite3', [path.join(dir, 'goosed.db'), 'SELECT name, admin, length(token_hash) FROM users ORDER BY name'], { encoding: 'utf8' });
    assert.equal(out.trim(), 'alice|1|32\nbob|0|32');
  });
});

describe('goosed user', () => {
  it('add, list, remove; exit codes 0/1/2; --help', async () => {
    const home = tempDir();
    const help = await user(home, '--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /goosed user add NAME \[--admin\]/);
    assert.equal((await user(home)).code, 2);
    assert.equal((await user(home, 'frobnicate')).code, 2);
    assert.equal((await user(home, 'add')).code, 2);
    assert.equal((await user(home, 'add', 'has space')).code, 2);
    assert.equal((await user(home, 'add', 'x', '--bogus')).code, 2);
    const t = await addUser(home, 'carol', true);
    const again = await user(home, 'add', 'carol');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists already/);
    assert.equal(again.stdout, '', 'no token printed when nothing was made');
    const list = await user(home, 'list');
    assert.equal(list.code, 0);
    assert.match(list.stdout, /^carol\tadmin\ttoken\t\d{4}-/m);
    assert.ok(!list.stdout.includes(t), 'list never shows a token');
    assert.equal((await user(home, 'remove', 'nobody')).code, 1);
    assert.equal((await user(home, 'token', 'nobody')).code, 1);
    assert.equal((await user(home, 'remove', 'carol')).code, 0);
    assert.equal((await user(home, 'list')).stdout, '');
  });
});

describe('refusal to serve a network address without authentication', () => {
  it('--host 0.0.0.0 with nothing configured: exit 2, saying why', async () => {
    const r = await runGoosed(['--host', '0.0.0.0', '--port', '0']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0 with no authentication/);
    assert.match(r.stderr, /--insecure-no-auth/);
    assert.match(r.stderr, /GOOSE_SERVER__SECRET_KEY/);
    assert.doesNotMatch(r.stderr, /listening on/);
  });

  it('GOOSE_HOST=:: (IPv6 wildcard) too', async () => {
    const r = await runGoosed(['--port', '0'], { GOOSE_HOST: '::' });
    assert.equal(r.code, 2, r.stderr);
  });

  it('serves with --insecure-no-auth, or with a secret key, or with a user', async () => {
    const open = await startServer({ args: ['--host', '0.0.0.0', '--insecure-no-auth'] });
    assert.match(open.log(), /NO authentication/);
    assert.equal((await get(open, '/api/sessions')).status, 200);
    await stopAndCheck(open);
    const keyed = await startServer({ args: ['--host', '0.0.0.0'], env: { GOOSE_SERVER__SECRET_KEY: SECRET } });
    assert.equal((await get(keyed, '/api/sessions')).status, 401);
    assertNoSecrets(keyed, [SECRET]);
    await stopAndCheck(keyed);
    const home = tempDir();
    const tok = await addUser(home, 'dave');
    const users = await startServer({ home, args: ['--host', '0.0.0.0'] });
    assert.equal((await get(users, '/api/sessions', { headers: bearer(tok) })).status, 200);
    assertNoSecrets(users, [tok]);
    await stopAndCheck(users);
  });
});


describe("an extension cannot send the trusted proxy's header", () => {
  // Its requests come from goosed's own address, which may be a trusted proxy's: pointed at
  // goosed itself, an extension sending X-Remote-User could name any user, an admin too.
  it("a user's own, a session's and config.yaml's are refused, naming the header", async () => {
    const bad = (port) => ({ type: 'streamable_http', uri: `http://127.0.0.1:${port}/extensions/developer/disable`, headers: { 'x-remote-user': 'root' } });
    const proxy = 'trusted_proxy_header: X-Remote-User\ntrusted_proxies:\n  - 127.0.0.1\n';
    const srv = await startServer({ configYaml: proxy });
    try {
      const bob = { headers: { 'X-Remote-User': 'bob' } };
      assertError(await post(srv, '/api/extensions', { name: 'evil', config: bad(srv.port) }, bob), 400, 'bad_request',
        /headers: x-remote-user is the header goosed takes its users' names from \(trusted_proxy_header\)/);
      const s = await post(srv, '/api/sessions', {}, bob);
      assert.equal(s.status, 201, s.text);
      assertError(await post(srv, `/api/sessions/${s.body.id}/extensions`, { name: 'evil', config: bad(srv.port) }, bob), 400, 'bad_request', /trusted_proxy_header/);
    } finally {
      await stopAndCheck(srv);
    }
    const yaml = `${proxy}extensions:\n  evil:\n    enabled: true\n    type: streamable_http\n    uri: http://127.0.0.1:9/x\n    headers:\n      X-Remote-User: root\n`;
    const srv2 = await startServer({ configYaml: yaml });
    try {
      const list = await get(srv2, '/api/extensions', { headers: { 'X-Remote-User': 'bob' } });
      const evil = list.body.extensions.find((e) => e.name === 'evil');
      assert.equal(evil.supported, false, JSON.stringify(evil));
      assert.match(evil.error, /evil: headers: X-Remote-User is the header goosed takes its users' names from/);
    } finally {
      await stopAndCheck(srv2);
    }
  });
});

describe("the trusted proxy's header given twice", () => {
  // A proxy that adds its header after the client's, rather than replacing it, would pass on the
  // client's as the first: which one names the user? Refused, as a doubled Host or Origin is.
  /** GET path from localAddress with headers (an array value: one header line per item). */
  const send = (srv, localAddress, path, headers) => new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, path, localAddress, headers }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: /json/.test(res.headers['content-type'] ?? '') ? JSON.parse(body) : body }));
    });
    req.on('error', reject);
    req.end();
  });

  it('is refused with 400 naming it, from a trusted address or not; once, it names the user', async () => {
    const home = tempDir();
    await addUser(home, 'root', true);
    const srv = await startServer({ home, configYaml: 'trusted_proxy_header: X-Remote-User\ntrusted_proxies:\n  - 127.0.0.1\n' });
    try {
      assert.equal((await send(srv, '127.0.0.1', '/metrics', { 'X-Remote-User': 'root' })).status, 200, 'root, an admin');
      assert.equal((await send(srv, '127.0.0.1', '/metrics', { 'X-Remote-User': 'bob' })).status, 403, 'bob, not one');
      for (const [from, headers] of [
        ['127.0.0.1', { 'X-Remote-User': ['root', 'bob'] }],
        ['127.0.0.1', { 'X-Remote-User': ['bob', 'root'] }],
        ['127.0.0.1', { 'X-Remote-User': ['root', ''] }],
        ['127.0.0.2', { 'X-Remote-User': ['root', 'bob'] }], // not a trusted proxy: refused all the same
      ]) {
        const r = await send(srv, from, '/metrics', headers);
        assert.equal(r.status, 400, `${from} ${JSON.stringify(headers)}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.code, 'bad_request');
        assert.match(r.body.error, /more than one X-Remote-User header \(trusted_proxy_header\)/);
      }
      // the name is matched whatever its case, as every header's is
      const raw = await rawRequest(srv, `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nx-remote-user: root\r\nX-REMOTE-USER: bob\r\n\r\n`);
      assert.equal(raw.status, 400, raw.body);
      assert.match(raw.json.error, /more than one X-Remote-User header/);
    } finally {
      await stopAndCheck(srv);
    }
    // without trusted_proxy_header, the header means nothing to goosed: not refused
    const plain = await startServer();
    try {
      assert.equal((await send(plain, '127.0.0.1', '/status', { 'X-Remote-User': ['root', 'bob'] })).status, 200);
    } finally {
      await stopAndCheck(plain);
    }
  });
});

/** Resolves once something accepts connections on 127.0.0.1:port, or rejects after ms. */
describe('trusted proxy: goosed behind a real nginx with auth_basic', () => {
  let srv, nginx, nport, dir;
  const PROXY_ADDR = '127.0.0.2'; // nginx connects from here; the test's own requests come from 127.0.0.1
  before(async () => {
    dir = tempDir('goosed-nginx-');
    srv = await startServer({
      configYaml: `trusted_proxy_header: X-Remote-User\ntrusted_proxies:\n  - ${PROXY_ADDR}\n`,
    });
    nport = await freePort();
    let entry;
    try {
      entry = execFileSync('openssl', ['passwd', '-apr1', 'carol-pw'], { encoding: 'utf8' }).trim();
    } catch {
      entry = '{PLAIN}carol-pw';
    }
    writeFileSync(path.join(dir, 'htpasswd'), `carol:${entry}\nerin:{PLAIN}erin-pw\n`);
    // As the deployment guide sets it up, with the user passed on in X-Remote-User.
    nginx = await startNginx(dir, `  server {
    listen 127.0.0.1:${nport};
    auth_basic "Goose Server";
    auth_basic_user_file ${dir}/htpasswd;
    location / {
      proxy_pass http://127.0.0.1:${srv.port};
      proxy_bind ${PROXY_ADDR};
      proxy_http_version 1.1;
      proxy_set_header Connection '';
      proxy_buffering off;
      proxy_cache off;
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Remote-User $remote_user;
    }
  }
`, nport);
  });
  after(async () => {
    await stopNginx(nginx);
    const log = srv.log();
    assert.ok(!log.includes('carol-pw') && !log.includes('erin-pw'), 'no password in the log');
    await stopAndCheck(srv);
  });

  const via = (who) => ({ url: `http://127.0.0.1:${nport}`, headers: { Authorization: `Basic ${Buffer.from(who).toString('base64')}` } });

  it('nginx refuses without a password; with one, goosed serves the user it names (made on first use)', async () => {
    const none = await fetch(`http://127.0.0.1:${nport}/api/sessions`);
    assert.equal(none.status, 401);
    const c = via('carol:carol-pw');
    const s = await request(c.url, 'POST', '/api/sessions', { headers: c.headers, json: { name: 'carol via nginx' } });
    assert.equal(s.status, 201, s.text);
    const list = await request(c.url, 'GET', '/api/sessions', { headers: c.headers });
    assert.deepEqual(list.body.map((x) => x.id), [s.body.id]);
    const users = await user(srv.home, 'list');
    assert.match(users.stdout, /^carol\tuser\tproxy\t/m);
    // Another proxy user cannot see it.
    const e = via('erin:erin-pw');
    const other = await request(e.url, 'GET', `/api/sessions/${s.body.id}`, { headers: e.headers });
    assertError(other, 404, 'not_found');
    assert.deepEqual((await request(e.url, 'GET', '/api/sessions', { headers: e.headers })).body, []);
  });

  it('the same header sent directly (not from a trusted address) is ignored, and logged', async () => {
    const from = srv.log().length;
    const r = await get(srv, '/api/sessions', { headers: { 'X-Remote-User': 'carol' } });
    assertError(r, 401, 'unauthorized');
    await srv.waitForLog(/ignored X-Remote-User from 127\.0\.0\.1: not a trusted proxy/, { from });
    assert.equal((await get(srv, '/status')).status, 200);
  });
});

describe('per-user limits', () => {
  it('requests_per_minute: 429 rate_limited with Retry-After, counted per user; /status is not counted', async (t) => {
    const home = tempDir();
    const a = await addUser(home, 'ann');
    const b = await addUser(home, 'ben');
    const srv = await startServer({ home, configYaml: 'requests_per_minute: 5\n' });
    t.after(() => stopAndCheck(srv));
    // A minute boundary may fall between two requests: then a sixth one is allowed too. Send
    // enough that some request is refused in any case, and check the first refusal.
    let refused = null;
    for (let i = 0; i < 11 && !refused; i++) {
      const r = await get(srv, '/api/sessions', { headers: bearer(a) });
      if (r.status === 429) refused = r;
      else assert.equal(r.status, 200);
    }
    assert.ok(refused, 'ann was never refused');
    assertError(refused, 429, 'rate_limited', /ann has made more than 5 requests this minute/);
    const ra = Number(refused.headers.get('retry-after'));
    assert.ok(ra >= 1 && ra <= 60, `Retry-After ${ra}`);
    assert.equal((await get(srv, '/api/sessions', { headers: bearer(b) })).status, 200, 'ben has his own count');
    assert.equal((await get(srv, '/status')).status, 200);
  });

  it('max_sessions_per_user: 429 too_many_sessions for the owner only; a delete makes room', async (t) => {
    const home = tempDir();
    const a = await addUser(home, 'ann');
    const b = await addUser(home, 'ben');
    const srv = await startServer({ home, configYaml: 'max_sessions_per_user: 2\n' });
    t.after(() => stopAndCheck(srv));
    const s1 = await post(srv, '/api/sessions', {}, { headers: bearer(a) });
    assert.equal(s1.status, 201);
    assert.equal((await post(srv, '/api/sessions', {}, { headers: bearer(a) })).status, 201);
    const third = await post(srv, '/api/sessions', {}, { headers: bearer(a) });
    assertError(third, 429, 'too_many_sessions', /ann has 2 sessions/);
    assert.ok(third.headers.get('retry-after'));
    assert.equal((await post(srv, '/api/sessions', {}, { headers: bearer(b) })).status, 201, 'ben owns none yet');
    assert.equal((await request(srv, 'DELETE', `/api/sessions/${s1.body.id}`, { headers: bearer(a) })).status, 204);
    assert.equal((await post(srv, '/api/sessions', {}, { headers: bearer(a) })).status, 201);
  });
});
