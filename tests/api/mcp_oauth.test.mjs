// OAuth for remote MCP servers (MCP's authorization specification), against the MCP SDK's own
// example server with OAuth (simpleStreamableHttp --oauth --oauth-strict: an authorization
// server with dynamic registration and PKCE, protected resource metadata, tokens checked for
// this resource). `goosed mcp` prints the sign-in address, the test is the user's browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { GOOSED_BIN } from './lib/server.mjs';
import { startOAuthServer as startExample, startExpiringServer as startExpiring } from './lib/mcp_oauth.mjs';

/** The SDK's example server with OAuth, stopped when test t ends. */
async function startOAuthServer(t) {
  const srv = await startExample();
  t.after(srv.stop);
  return srv;
}

/** goosed mcp ARGS; onUrl(url) is called with the sign-in address it prints. {code, stdout, stderr}. */
function runSignin(args, onUrl) {
  return new Promise((resolve, reject) => {
    // debug: every request goosed makes is logged, so a token in any of them would show
    const proc = spawn(GOOSED_BIN, ['mcp', ...args], { env: { PATH: process.env.PATH, HOME: '/nonexistent', RUST_LOG: 'debug' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let seen = false;
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60000);
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => {
      stderr += d;
      const m = /^\s+(http\S+)$/m.exec(stderr);
      if (m && !seen) { seen = true; onUrl(m[1]).catch(reject); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

test('goosed mcp signs in to an OAuth server through the browser and lists its tools', async (t) => {
  const srv = await startOAuthServer(t);
  let page = '';
  let authorize;
  const r = await runSignin(['tools', srv.url], async (url) => {
    authorize = new URL(url);
    const a = await fetch(url, { redirect: 'manual' }); // the authorization server approves at once
    assert.equal(a.status, 302);
    const back = await fetch(a.headers.get('location')); // the browser comes back to goosed
    page = await back.text();
    assert.equal(back.status, 200);
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\bgreet\b/);
  assert.match(page, /Signed in/);
  // what MCP asks of the authorization request: PKCE with S256, the resource, a state
  assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
  assert.match(authorize.searchParams.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
  assert.equal(authorize.searchParams.get('resource'), srv.url);
  assert.match(authorize.searchParams.get('state'), /^[A-Za-z0-9_-]{22}$/);
  assert.match(authorize.searchParams.get('redirect_uri'), /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
  // the token the server saw (its example logs each request's) never reaches goosed's output
  const tokens = [...srv.output().matchAll(/token: '([^']+)'/g)].map((m) => m[1]);
  assert.ok(tokens.length > 0, 'the example server logged no token');
  for (const tok of tokens) assert.ok(!(r.stderr + r.stdout).includes(tok), 'a token reached goosed\'s output');
});

test('a refused sign-in ends goosed mcp with the authorization server\'s error; a stray visit does not', async (t) => {
  const srv = await startOAuthServer(t);
  let stray;
  const r = await runSignin(['tools', srv.url], async (url) => {
    const u = new URL(url);
    const back = new URL(u.searchParams.get('redirect_uri'));
    stray = await fetch(`${back.origin}/callback?code=x&state=not-this-one`); // another sign-in's
    back.searchParams.set('error', 'access_denied');
    back.searchParams.set('state', u.searchParams.get('state'));
    await fetch(back);
  });
  assert.equal(stray.status, 400);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /the MCP server asks for authorization: the sign-in was refused: access_denied/);
});

test('a server whose metadata names another resource is not authorized for', async (t) => {
  const srv = await startOAuthServer(t);
  // the same server under another name: its metadata names localhost, not 127.0.0.1
  const other = srv.url.replace('localhost', '127.0.0.1');
  let visited = false;
  const r = await runSignin(['tools', other], async () => { visited = true; });
  assert.equal(r.code, 1);
  assert.equal(visited, false);
  assert.match(r.stderr, /names the resource http:\/\/localhost:\d+\/mcp, not http:\/\/127\.0\.0\.1:\d+\/mcp/);
});

test('an authorization server whose metadata names another issuer is not used (RFC 8414 §3.3)', async (t) => {
  // an MCP server that asks for a sign-in, naming an authorization server on its own origin
  // whose metadata claims to be another's (a mix-up: codes and secrets sent to the wrong one)
  const seen = [];
  const srv = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const origin = `http://127.0.0.1:${srv.address().port}`;
    const json = (code, body, headers = {}) => { res.writeHead(code, { 'Content-Type': 'application/json', ...headers }); res.end(JSON.stringify(body)); };
    if (req.url === '/mcp') return json(401, { error: 'invalid_token' }, { 'WWW-Authenticate': `Bearer resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"` });
    if (req.url === '/.well-known/oauth-protected-resource/mcp') return json(200, { resource: `${origin}/mcp`, authorization_servers: [origin] });
    if (req.url === '/.well-known/oauth-authorization-server') {
      return json(200, {
        issuer: 'https://as.evil.example', authorization_endpoint: `${origin}/authorize`, token_endpoint: `${origin}/token`,
        registration_endpoint: `${origin}/register`, code_challenge_methods_supported: ['S256'], response_types_supported: ['code'],
      });
    }
    return json(404, { error: 'not_found' });
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.after(() => srv.close());
  let visited = false;
  const r = await runSignin(['tools', `http://127.0.0.1:${srv.address().port}/mcp`], async () => { visited = true; });
  assert.equal(r.code, 1);
  assert.equal(visited, false);
  assert.match(r.stderr, /the authorization server's metadata names the issuer https:\/\/as\.evil\.example, not http:\/\/127\.0\.0\.1:\d+/);
  assert.ok(!seen.some((s) => s.startsWith('POST /register')), 'nothing was registered there');
});

test('an expired token is refreshed with the refresh token, without a second sign-in', async (t) => {
  const srv = await startExpiring(2); // initialize and its notification, then expired
  t.after(srv.stop);
  let signins = 0;
  const r = await runSignin(['call', srv.url, 'whoami', '{}'], async (url) => {
    signins++;
    const a = await fetch(url, { redirect: 'manual' });
    await fetch(a.headers.get('location'));
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(signins, 1);
  assert.match(r.stdout, /you hold token [2-9]/, 'the call went with a refreshed token');
  const resource = `resource=${srv.url}`;
  assert.deepEqual(srv.log.filter((l) => !l.startsWith('401')), ['authorize', `token authorization_code ${resource}`,
    ...srv.log.filter((l) => l.startsWith('token refresh_token')).map(() => `token refresh_token ${resource}`)]);
  assert.ok(srv.log.includes(`token refresh_token ${resource}`), srv.log.join('\n'));
  assert.ok(srv.log.includes('401 expired'));
});

test('a machine client authenticates with a JWT signed with its key (private_key_jwt: ES256 and RS256)', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'goosed-jwt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [alg, kind, opts] of [['ES256', 'ec', { namedCurve: 'P-256' }], ['RS256', 'rsa', { modulusLength: 2048 }]]) {
    const { publicKey, privateKey } = crypto.generateKeyPairSync(kind, opts);
    const key = path.join(dir, `${alg}.pem`);
    writeFileSync(key, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const srv = await startExpiring(100, { client_id: 'my-agent', publicKey, algs: [alg] });
    t.after(srv.stop);
    const r = await runSignin(['call', '--client-id', 'my-agent', '--client-key', key, srv.url, 'whoami', '{}'], async () => assert.fail('no browser for a machine'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /you hold token 1/);
    assert.deepEqual(srv.log.filter((l) => l.startsWith('assertion')), [`assertion ok ${alg}`]);
  }
  // a key of another kind, or an algorithm the server does not take: said, nothing sent
  const p384 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  writeFileSync(path.join(dir, 'p384.pem'), p384.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const srv = await startExpiring(100, { client_id: 'my-agent', publicKey: p384.publicKey, algs: ['ES384'] });
  t.after(srv.stop);
  const r = await runSignin(['tools', '--client-id', 'my-agent', '--client-key', path.join(dir, 'p384.pem'), srv.url], async () => assert.fail('no browser'));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /does not take a JWT signed with the client's key \(not an EC P-256 or RSA key in PEM\)/);
  assert.ok(!srv.log.some((l) => l.startsWith('assertion')), 'no assertion was sent');
});

test('the issuer a redirect names (RFC 9207) must be the authorization server\'s own', async (t) => {
  const visit = async (url) => { const a = await fetch(url, { redirect: 'manual' }); await fetch(a.headers.get('location')); };
  for (const [iss, ok] of [['own', true], ['https://as.evil.example', false], [null, false]]) {
    const srv = await startExpiring(100, null, { iss });
    t.after(srv.stop);
    const r = await runSignin(['call', srv.url, 'whoami', '{}'], visit);
    if (ok) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /you hold token 1/);
    } else {
      assert.equal(r.code, 1, `iss ${iss}: ${r.stdout}`);
      assert.match(r.stderr, new RegExp(`the authorization response names the issuer ${iss ? 'https://as\\.evil\\.example' : '\\(none\\)'}, not http://127\\.0\\.0\\.1:\\d+`));
      assert.ok(!srv.log.some((l) => l.startsWith('token authorization_code')), 'the code was not exchanged');
    }
  }
});
