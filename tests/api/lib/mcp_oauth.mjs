// The MCP SDK's own example server with OAuth (simpleStreamableHttp --oauth --oauth-strict: an
// authorization server with dynamic registration and PKCE, protected resource metadata, tokens
// checked for this resource), for the tests of goosed's OAuth client.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { freePort, REPO } from './server.mjs';

const example = path.join(REPO, 'node_modules/@modelcontextprotocol/sdk/dist/esm/examples/server/simpleStreamableHttp.js');

/** Starts it: {url (its MCP endpoint, on localhost), auth (its authorization server's origin),
 * output() (what it printed: it logs the tokens it checks), stop()}. */
export async function startOAuthServer() {
  const mcpPort = await freePort();
  const authPort = await freePort();
  const proc = spawn(process.execPath, [example, '--oauth', '--oauth-strict'], {
    env: { PATH: process.env.PATH, MCP_PORT: String(mcpPort), MCP_AUTH_PORT: String(authPort) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  await new Promise((resolve, reject) => {
    const check = () => { if (out.includes(`listening on port ${mcpPort}`) && out.includes(`listening on port ${authPort}`)) resolve(); };
    proc.stdout.on('data', (d) => { out += d; check(); });
    proc.stderr.on('data', (d) => { out += d; });
    proc.on('exit', (code) => reject(new Error(`the example server exited with ${code}: ${out}`)));
  });
  const closed = new Promise((resolve) => proc.on('close', resolve));
  return {
    url: `http://localhost:${mcpPort}/mcp`,
    auth: `http://localhost:${authPort}`,
    output: () => out,
    stop: () => { proc.kill('SIGTERM'); return closed; },
  };
}

/** An MCP server over streamable HTTP (JSON answers) with its own authorization server, whose
 * access tokens each serve `uses` requests, then are refused (401) as expired; it issues refresh
 * tokens, each used once. The SDK's example issues none: this is the refresh path's server.
 * With `machine` ({client_id, publicKey (a KeyObject), algs}) it is a machine's server instead:
 * client_credentials only, the client authenticated by a JWT signed with its key (RFC 7523),
 * verified here (signature, iss, sub, aud, exp); log then holds what each assertion said.
 * `iss` (RFC 9207): undefined, the server says nothing of it; else it says its redirects name
 * their issuer, and names 'own' (its own), another string, or none (null). */
export async function startExpiringServer(uses, machine = null, { iss } = {}) {
  const log = [];
  const access = new Map(); // token -> requests left
  const refresh = new Set();
  let n = 0;
  const issue = () => {
    const a = `at-${++n}-${Math.random().toString(36).slice(2)}`;
    const r = `rt-${n}-${Math.random().toString(36).slice(2)}`;
    access.set(a, uses);
    refresh.add(r);
    return { access_token: a, token_type: 'Bearer', expires_in: 60, refresh_token: r };
  };
  const body = (req) => new Promise((resolve) => { let b = ''; req.on('data', (d) => { b += d; }); req.on('end', () => resolve(b)); });
  const srv = http.createServer(async (req, res) => {
    const origin = `http://127.0.0.1:${srv.address().port}`;
    const url = new URL(req.url, origin);
    const json = (code, obj, headers = {}) => { res.writeHead(code, { 'Content-Type': 'application/json', ...headers }); res.end(JSON.stringify(obj)); };
    const text = await body(req);
    if (url.pathname === '/.well-known/oauth-protected-resource/mcp') return json(200, { resource: `${origin}/mcp`, authorization_servers: [origin] });
    if (url.pathname === '/.well-known/oauth-authorization-server' && machine) {
      return json(200, { issuer: origin, token_endpoint: `${origin}/token`, grant_types_supported: ['client_credentials'],
        token_endpoint_auth_methods_supported: ['private_key_jwt'], token_endpoint_auth_signing_alg_values_supported: machine.algs });
    }
    if (url.pathname === '/.well-known/oauth-authorization-server') {
      return json(200, { issuer: origin, authorization_endpoint: `${origin}/authorize`, token_endpoint: `${origin}/token`, registration_endpoint: `${origin}/register`,
        code_challenge_methods_supported: ['S256'], grant_types_supported: ['authorization_code', 'refresh_token'], token_endpoint_auth_methods_supported: ['none'],
        ...(iss !== undefined ? { authorization_response_iss_parameter_supported: true } : {}) });
    }
    if (url.pathname === '/register') return json(201, { client_id: 'expiring-client', token_endpoint_auth_method: 'none', redirect_uris: JSON.parse(text).redirect_uris });
    if (url.pathname === '/authorize') {
      log.push('authorize');
      const back = new URL(url.searchParams.get('redirect_uri'));
      back.searchParams.set('code', 'the-code');
      back.searchParams.set('state', url.searchParams.get('state'));
      if (iss) back.searchParams.set('iss', iss === 'own' ? origin : iss);
      res.writeHead(302, { Location: back.toString() });
      return res.end();
    }
    if (url.pathname === '/token') {
      const f = new URLSearchParams(text);
      log.push(`token ${f.get('grant_type')} resource=${f.get('resource')}`);
      if (f.get('grant_type') === 'authorization_code' && f.get('code') === 'the-code' && f.get('code_verifier')) return json(200, issue());
      if (f.get('grant_type') === 'refresh_token' && refresh.delete(f.get('refresh_token'))) return json(200, issue());
      if (f.get('grant_type') === 'client_credentials' && machine) {
        const verdict = checkAssertion(f, machine, origin);
        log.push(`assertion ${verdict}`);
        return verdict.startsWith('ok') ? json(200, issue()) : json(401, { error: 'invalid_client', error_description: verdict });
      }
      return json(400, { error: 'invalid_grant' });
    }
    if (url.pathname !== '/mcp') return json(404, { error: 'not_found' });
    const tok = (req.headers.authorization || '').replace(/^Bearer /, '');
    const left = access.get(tok);
    if (!left) {
      log.push(`401 ${tok ? 'expired' : 'none'}`);
      return json(401, { error: 'invalid_token' }, { 'WWW-Authenticate': `Bearer error="invalid_token", resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"` });
    }
    access.set(tok, left - 1);
    if (req.method !== 'POST') { // no stream of the server's own (MCP allows a 405 here)
      res.writeHead(req.method === 'DELETE' ? 200 : 405, { Allow: 'POST' });
      return res.end();
    }
    const msg = JSON.parse(text);
    if (msg.id === undefined) { res.writeHead(202); return res.end(); }
    const result = msg.method === 'initialize'
      ? { protocolVersion: msg.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'expiring', version: '1.0.0' } }
      : msg.method === 'tools/list'
        ? { tools: [{ name: 'whoami', description: 'says who asks', inputSchema: { type: 'object' } }] }
        : { content: [{ type: 'text', text: `you hold token ${tok.split('-')[1]}` }] };
    return json(200, { jsonrpc: '2.0', id: msg.id, result });
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${srv.address().port}/mcp`,
    log,
    stop: () => new Promise((resolve) => { srv.closeAllConnections(); srv.close(resolve); }),
  };
}

/** RFC 7523 §3 as an authorization server checks it: "ok ALG", or what is wrong. */
function checkAssertion(form, machine, origin) {
  if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') return 'no jwt-bearer assertion type';
  const parts = (form.get('client_assertion') || '').split('.');
  if (parts.length !== 3) return 'not a JWS';
  const header = JSON.parse(Buffer.from(parts[0], 'base64url'));
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
  if (!machine.algs.includes(header.alg)) return `alg ${header.alg} not offered`;
  const ok = crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`),
    { key: machine.publicKey, ...(header.alg === 'ES256' ? { dsaEncoding: 'ieee-p1363' } : {}) }, Buffer.from(parts[2], 'base64url'));
  if (!ok) return 'bad signature';
  const now = Date.now() / 1000;
  if (claims.iss !== machine.client_id || claims.sub !== machine.client_id) return 'iss or sub is not the client';
  if (claims.aud !== origin && claims.aud !== `${origin}/`) return `aud ${claims.aud}`;
  if (!(claims.exp > now && claims.exp < now + 3600) || !claims.jti) return 'exp or jti';
  return `ok ${header.alg}`;
}
