// The MCP client over HTTP, through `goosed mcp`: server-everything over streamable HTTP and over
// the legacy HTTP+SSE transport, a server that forgets the session (the client initializes
// again), and a bearer token from config.yaml that reaches the server and never goosed's log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runGoosed, tempDir } from './lib/server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const everything = path.join(root, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const fake = path.join(root, 'tests/fakes/mcp/http_server.mjs');

const help = await runGoosed(['mcp']);
const skip = /mcp tools/.test(help.stdout + help.stderr) ? false : 'goosed has no mcp command';

/** Starts a node server and resolves once it says it listens: {proc, port, stderr()}. */
function startNode(args, env, ready) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const check = () => {
      const port = ready(out + err);
      if (port) resolve({ proc, port, stderr: () => err });
    };
    proc.stdout.on('data', (d) => { out += d; check(); });
    proc.stderr.on('data', (d) => { err += d; check(); });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}: ${err}`)));
  });
}

/** server-everything on a port of its own: the port is found by asking the OS for a free one. */
async function startEverything(t, mode) {
  const net = await import('node:net');
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
  const srv = await startNode([everything, mode], { PORT: String(port) }, (s) => (/listening on port|running on port/i.test(s) ? port : 0));
  t.after(() => srv.proc.kill('SIGTERM'));
  return srv;
}

test('server-everything over streamable HTTP: tools and a call', { skip }, async (t) => {
  const srv = await startEverything(t, 'streamableHttp');
  const url = `http://127.0.0.1:${srv.port}/mcp`;
  const tools = await runGoosed(['mcp', 'tools', url], {}, { timeoutMs: 30000 });
  assert.equal(tools.code, 0, tools.stderr);
  assert.match(tools.stdout, /\becho\b/);
  const call = await runGoosed(['mcp', 'call', url, 'echo', '{"message":"hi"}'], {}, { timeoutMs: 30000 });
  assert.equal(call.code, 0, call.stderr);
  assert.match(call.stdout, /Echo: hi/);
});

test('server-everything over the legacy HTTP+SSE transport: tools and a call', { skip }, async (t) => {
  const srv = await startEverything(t, 'sse');
  const url = `http://127.0.0.1:${srv.port}/sse`;
  const tools = await runGoosed(['mcp', 'tools', '--sse', url], {}, { timeoutMs: 30000 });
  assert.equal(tools.code, 0, tools.stderr);
  assert.match(tools.stdout, /\becho\b/);
  const call = await runGoosed(['mcp', 'call', '--sse', url, 'echo', '{"message":"hi"}'], {}, { timeoutMs: 30000 });
  assert.equal(call.code, 0, call.stderr);
  assert.match(call.stdout, /Echo: hi/);
});

test('a bearer token from config.yaml reaches the server, never the log; a forgotten session is initialized again', { skip }, async (t) => {
  const token = 'tok-' + Math.random().toString(36).slice(2);
  const srv = await startNode([fake], { MCP_FAKE_TOKEN: token, MCP_FAKE_STALE: '1' }, (s) => Number(/port (\d+)/.exec(s)?.[1] ?? 0));
  t.after(() => srv.proc.kill('SIGTERM'));
  const home = tempDir();
  mkdirSync(path.join(home, '.config', 'goose'), { recursive: true });
  writeFileSync(path.join(home, '.config', 'goose', 'config.yaml'),
    `extensions:\n  remote:\n    enabled: true\n    type: streamable_http\n    name: remote\n    uri: http://127.0.0.1:${srv.port}/mcp\n    headers:\n      Authorization: "Bearer ${token}"\n`);
  const call = await runGoosed(['mcp', 'call', 'remote', 'echo', '{"message":"hi"}'], { HOME: home, GOOSE_LOG: 'debug' }, { timeoutMs: 30000 });
  assert.equal(call.code, 0, call.stderr);
  assert.match(call.stdout, /Echo: hi/);
  assert.ok(!call.stderr.includes(token), 'the token appears in goosed\'s log');
  assert.ok(!call.stdout.includes(token));
  const seen = srv.stderr().trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(seen.length > 0 && seen.every((r) => r.auth), 'a request came without the token');
  // The 404 on the first session's call made the client initialize a second session.
  assert.equal(seen.filter((r) => r.rpc === 'initialize').length, 2);
  assert.ok(seen.some((r) => r.rpc === 'tools/call' && r.sid === 's2'));
});
