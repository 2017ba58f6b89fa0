// deploy/nginx/goose.conf, the very file, in front of a real goosed: nginx with TLS (a
// self-signed certificate) and auth_basic (an htpasswd file made with `openssl passwd -apr1`).
// Replies are streamed through it token by token: the provider (a fake here, that holds its reply
// after the first token until the test releases it) has not finished when the first token has
// crossed nginx. WebSockets are upgraded; basic-auth users are goosed users, each with their own
// sessions; without credentials nginx answers 401.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { REPO, startServer, stopAndCheck, tempDir, freePort } from './lib/server.mjs';
import { recordSecret } from './lib/record.mjs';
import { startNginx, stopNginx } from './lib/nginx.mjs';
import { connect } from './lib/ws.mjs';
import { parseSSE } from '../fakes/lib.mjs';
import { startOAuthServer } from './lib/mcp_oauth.mjs';

const HOST = 'goose.example.com';
const USERS = { alice: 'alice-nginx-pw', bob: 'bob-nginx-pw' };

/** An Anthropic Messages API that streams `words`: the first at once, the rest once release()
 *  is called (one gate per request, in order). */
function gatedProvider() {
  const gates = [];
  let waiting = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const words = JSON.parse(body).stream ? ['Streamed', ' through', ' nginx.'] : null;
      assert.ok(words, 'goosed streams');
      const ev = (type, o) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...o })}\n\n`);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      ev('message_start', { message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-test', content: [], stop_reason: null, usage: { input_tokens: 3, output_tokens: 0 } } });
      ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: words[0] } });
      const gate = new Promise((resolve) => gates.push(resolve));
      for (const w of waiting) w();
      waiting = [];
      gate.then(() => {
        for (const w of words.slice(1)) ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: w } });
        ev('content_block_stop', { index: 0 });
        ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: words.length } });
        ev('message_stop', {});
        res.end();
      });
    });
  });
  return {
    srv,
    /** Resolves once n requests hold a gate. */
    async held(n) {
      while (gates.length < n) await new Promise((r) => waiting.push(r));
    },
    release() {
      for (const g of gates.splice(0)) g();
    },
    get held_count() { return gates.length; },
  };
}

describe('deploy/nginx/goose.conf in front of goosed', () => {
  let dir, nginx, port, srv, provider, ca, mcp;

  /** A request through nginx over TLS as user (or no one): resolves with the response, whose
   *  body is left to read (res.text() reads it whole). */
  function req(method, p, { user, json, headers = {} } = {}) {
    const h = { Host: HOST, ...headers };
    if (user) h.Authorization = `Basic ${Buffer.from(`${user}:${USERS[user]}`).toString('base64')}`;
    if (json !== undefined) h['Content-Type'] = 'application/json';
    return new Promise((resolve, reject) => {
      const r = https.request({ host: '127.0.0.1', port, method, path: p, headers: h, ca, servername: HOST }, (res) => {
        res.setEncoding('utf8');
        res.text = () => new Promise((ok) => { let b = ''; res.on('data', (d) => { b += d; }); res.on('end', () => ok(b)); });
        resolve(res);
      });
      r.on('error', reject);
      r.end(json === undefined ? undefined : JSON.stringify(json));
    });
  }
  async function jsonReq(method, p, opts) {
    const res = await req(method, p, opts);
    const t = await res.text();
    return { status: res.statusCode, body: /json/.test(res.headers['content-type'] || '') ? JSON.parse(t) : t };
  }

  before(async () => {
    dir = tempDir('goosed-deploy-nginx-');
    provider = gatedProvider();
    await new Promise((r) => provider.srv.listen(0, '127.0.0.1', r));
    port = await freePort();
    mcp = await startOAuthServer(); // an extension's server that asks for a sign-in
    srv = await startServer({
      // public_url: where the browser comes back after an extension's sign-in, through nginx;
      // user_extension_hosts: the users' own extensions may reach that server on localhost
      configYaml: `trusted_proxy_header: X-Remote-User\ntrusted_proxies: [127.0.0.1]\nallowed_hosts: [${HOST}]\n` +
        `public_url: https://${HOST}:${port}\nuser_extension_hosts: [localhost]\n`,
      env: { GOOSE_PROVIDER: 'anthropic', ANTHROPIC_API_KEY: 'sk-ant-nginx-test', ANTHROPIC_HOST: `http://127.0.0.1:${provider.srv.address().port}` },
    });
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${HOST}`,
      '-addext', `subjectAltName=DNS:${HOST}`, '-keyout', path.join(dir, 'goose.key'), '-out', path.join(dir, 'goose.crt')], { stdio: 'ignore' });
    ca = readFileSync(path.join(dir, 'goose.crt'));
    const lines = Object.entries(USERS).map(([u, pw]) => {
      recordSecret(pw, `nginx password of ${u}`);
      return `${u}:${execFileSync('openssl', ['passwd', '-apr1', pw], { encoding: 'utf8' }).trim()}`;
    });
    writeFileSync(path.join(dir, 'htpasswd'), lines.join('\n') + '\n');

    // The file as shipped, with this machine's ports and paths put in (each found exactly once).
    const plain = await freePort();
    let conf = readFileSync(path.join(REPO, 'deploy/nginx/goose.conf'), 'utf8');
    for (const [from, to] of [
      ['listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`],
      ['listen 80;', `listen 127.0.0.1:${plain};`],
      ['ssl_certificate     /etc/ssl/certs/goose.crt;', `ssl_certificate ${path.join(dir, 'goose.crt')};`],
      ['ssl_certificate_key /etc/ssl/private/goose.key;', `ssl_certificate_key ${path.join(dir, 'goose.key')};`],
      ['auth_basic_user_file /etc/nginx/.htpasswd;', `auth_basic_user_file ${path.join(dir, 'htpasswd')};`],
      ['server 127.0.0.1:3000;', `server 127.0.0.1:${srv.port};`],
    ]) {
      assert.equal(conf.split(from).length, 2, `goose.conf has "${from}" once`);
      conf = conf.replace(from, to);
    }
    writeFileSync(path.join(dir, 'goose.conf'), conf);
    nginx = await startNginx(dir, `  include ${dir}/goose.conf;`, port);
  });

  after(async () => {
    provider?.release();
    await stopNginx(nginx);
    if (srv) {
      for (const pw of Object.values(USERS)) assert.ok(!srv.log().includes(pw), 'no password reaches goosed');
      await stopAndCheck(srv);
    }
    await new Promise((r) => provider?.srv.close(r));
    await mcp?.stop();
  });

  it('without credentials, or wrong ones: 401 from nginx', async () => {
    let r = await req('GET', '/api/sessions');
    assert.equal(r.statusCode, 401);
    assert.match(r.headers['www-authenticate'], /^Basic realm="Goose Server"/);
    await r.text();
    r = await req('GET', '/api/sessions', { headers: { Authorization: `Basic ${Buffer.from('alice:wrong').toString('base64')}` } });
    assert.equal(r.statusCode, 401);
    await r.text();
    assert.doesNotMatch(srv.log(), /GET \/api\/sessions/, 'nothing reached goosed');
  });

  it('basic-auth users are goosed users, each with their own sessions', async () => {
    const a = await jsonReq('POST', '/api/sessions', { user: 'alice', json: { name: 'alice via nginx' } });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    const b = await jsonReq('POST', '/api/sessions', { user: 'bob', json: { name: 'bob via nginx' } });
    assert.equal(b.status, 201);
    const la = await jsonReq('GET', '/api/sessions', { user: 'alice' });
    assert.deepEqual(la.body.map((s) => s.id), [a.body.id]);
    assert.equal((await jsonReq('GET', `/api/sessions/${a.body.id}`, { user: 'bob' })).status, 404);
    assert.match(srv.log(), /user alice created on first use \(trusted proxy\)/);
    assert.match(srv.log(), /user bob created on first use \(trusted proxy\)/);
    // the client's own X-Remote-User is replaced by the user nginx authenticated
    const spoof = await jsonReq('GET', '/api/sessions', { user: 'bob', headers: { 'X-Remote-User': 'alice' } });
    assert.deepEqual(spoof.body.map((s) => s.id), [b.body.id]);
  });

  it('a streamed reply crosses nginx token by token (SSE, unbuffered)', { timeout: 30_000 }, async () => {
    const s = await jsonReq('POST', '/api/sessions', { user: 'alice', json: { name: 'stream' } });
    const res = await req('POST', `/sessions/${s.body.id}/messages`, { user: 'alice', json: { content: 'hi' } });
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'], /^text\/event-stream/);
    let buf = '';
    const seen = [];
    let releasedAt = -1;
    for await (const d of res) {
      buf += d;
      const evs = parseSSE(buf).filter((e) => !e.incomplete);
      for (const e of evs.slice(seen.length)) {
        seen.push(e);
        if (e.event === 'message_chunk' && releasedAt < 0) {
          // the provider still holds the rest of its reply: this token was not buffered
          assert.equal(provider.held_count, 1, 'the provider is holding its reply');
          releasedAt = seen.length;
          provider.release();
        }
      }
    }
    const chunks = seen.filter((e) => e.event === 'message_chunk').map((e) => JSON.parse(e.data).text);
    assert.equal(chunks[0], 'Streamed', 'the first token came alone, before the rest was sent');
    assert.equal(chunks.join(''), 'Streamed through nginx.');
    assert.ok(releasedAt > 0);
    assert.equal(seen.at(-1).event, 'message_complete');
  });

  it('a WebSocket (/api/sessions/ID/stream) is upgraded through nginx, tokens arriving as sent', { timeout: 30_000 }, async () => {
    const s = await jsonReq('POST', '/api/sessions', { user: 'bob', json: { name: 'ws' } });
    const auth = `Basic ${Buffer.from(`bob:${USERS.bob}`).toString('base64')}`;
    const target = { connectHost: '127.0.0.1', port, url: `https://127.0.0.1:${port}`, tlsOptions: { ca, servername: HOST } };
    const { status, ws } = await connect(target, `/api/sessions/${s.body.id}/stream`, { headers: { Host: HOST, Authorization: auth } });
    assert.equal(status, 101);
    ws.sendJSON({ type: 'message', content: 'hello' });
    const first = await ws.json();
    assert.deepEqual(first, { type: 'content_delta', delta: 'Streamed' });
    assert.equal(provider.held_count, 1, 'the provider is holding the rest');
    provider.release();
    const rest = await ws.until('message_complete');
    assert.equal([first, ...rest].filter((f) => f.type === 'content_delta').map((f) => f.delta).join(''), 'Streamed through nginx.');
    await ws.close();
    const hist = await jsonReq('GET', `/api/sessions/${s.body.id}/messages`, { user: 'bob' });
    assert.deepEqual(hist.body.map((m) => m.role), ['user', 'assistant']);
  });

  it('an extension\'s sign-in comes back through nginx to public_url: nginx asks for the password, and only the user who started it may finish it', { timeout: 30_000 }, async () => {
    const s = await jsonReq('POST', '/api/sessions', { user: 'alice', json: { name: 'signin' } });
    const add = await jsonReq('POST', `/api/sessions/${s.body.id}/extensions`, { user: 'alice', json: { name: 'demo', config: { type: 'streamable_http', uri: mcp.url, timeout: 30 } } });
    assert.equal(add.status, 200, JSON.stringify(add.body));
    const res = await req('POST', `/sessions/${s.body.id}/messages`, { user: 'alice', json: { content: 'hi' } });
    assert.equal(res.statusCode, 200);
    let buf = '';
    const seen = [];
    for await (const d of res) {
      buf += d;
      for (const e of parseSSE(buf).filter((x) => !x.incomplete).slice(seen.length)) {
        seen.push(e);
        if (e.event === 'elicitation') {
          const q = JSON.parse(e.data);
          const a = await fetch(q.url, { redirect: 'manual' }); // the authorization server approves
          const back = new URL(a.headers.get('location'));
          assert.equal(`${back.origin}${back.pathname}`, `https://${HOST}:${port}/oauth/callback`);
          // the browser, at nginx: without the user's password, nginx asks for it; with it, goosed takes the sign-in
          const bare = await req('GET', back.pathname + back.search);
          assert.equal(bare.statusCode, 401);
          await bare.text();
          // another user's browser (the link passed on): refused, and alice's sign-in still waits
          const other = await req('GET', back.pathname + back.search, { user: 'bob' });
          assert.equal(other.statusCode, 400);
          assert.match(await other.text(), /started by another user/);
          const done = await req('GET', back.pathname + back.search, { user: 'alice' });
          assert.equal(done.statusCode, 200);
          assert.match(await done.text(), /Signed in/);
        }
        if (e.event === 'message_chunk' && provider.held_count) provider.release();
      }
    }
    assert.ok(seen.some((e) => e.event === 'elicitation'), 'asked to sign in');
    assert.equal(seen.at(-1).event, 'message_complete');
    assert.ok(!seen.some((e) => e.event === 'notification'), 'the extension started');
    assert.match(srv.log(), /demo: running, \d+ tools/);
  });
});
