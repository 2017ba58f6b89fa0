// The MCP client over HTTP, through `goosed mcp`: server-everything over streamable HTTP and over
// the legacy HTTP+SSE transport, a server that forgets the session (the client initializes
// again), and a bearer token from config.yaml that reaches the server and never goosed's log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runGoosed, tempDir, startServer, stopAndCheck } from './lib/server.mjs';
import { post, get } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';
import { watch } from './lib/events.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const everything = path.join(root, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const fake = path.join(root, 'tests/fakes/mcp/http_server.mjs');


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

test('server-everything over streamable HTTP: tools and a call', async (t) => {
  const srv = await startEverything(t, 'streamableHttp');
  const url = `http://127.0.0.1:${srv.port}/mcp`;
  const tools = await runGoosed(['mcp', 'tools', url], {}, { timeoutMs: 30000 });
  assert.equal(tools.code, 0, tools.stderr);
  assert.match(tools.stdout, /\becho\b/);
  const call = await runGoosed(['mcp', 'call', url, 'echo', '{"message":"hi"}'], {}, { timeoutMs: 30000 });
  assert.equal(call.code, 0, call.stderr);
  assert.match(call.stdout, /Echo: hi/);
});

test('server-everything over the legacy HTTP+SSE transport: tools and a call', async (t) => {
  const srv = await startEverything(t, 'sse');
  const url = `http://127.0.0.1:${srv.port}/sse`;
  const tools = await runGoosed(['mcp', 'tools', '--sse', url], {}, { timeoutMs: 30000 });
  assert.equal(tools.code, 0, tools.stderr);
  assert.match(tools.stdout, /\becho\b/);
  const call = await runGoosed(['mcp', 'call', '--sse', url, 'echo', '{"message":"hi"}'], {}, { timeoutMs: 30000 });
  assert.equal(call.code, 0, call.stderr);
  assert.match(call.stdout, /Echo: hi/);
});

test('a server that sends requests and never takes their answers is cut off at 128 requests open, saying so', async (t) => {
  const srv = await startNode([fake], { MCP_FAKE_PINGFLOOD: '500' }, (s) => Number(/port (\d+)/.exec(s)?.[1] ?? 0));
  t.after(() => srv.proc.kill('SIGTERM'));
  const call = await runGoosed(['mcp', 'call', `http://127.0.0.1:${srv.port}/mcp`, 'echo', '{"message":"hi"}'], {}, { timeoutMs: 30000 });
  assert.equal(call.code, 1, call.stdout + call.stderr);
  assert.match(call.stderr, /: the MCP server leaves more than 128 of goosed's requests to it unanswered at once/);
  const held = Math.max(0, ...[...srv.stderr().matchAll(/\{"held":(\d+)\}/g)].map((m) => Number(m[1])));
  assert.ok(held > 0 && held <= 128, `${held} answers were held open`);
});

test('a bearer token from config.yaml reaches the server, never the log; a forgotten session is initialized again', async (t) => {
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

test('an Mcp-Session-Id over 255 bytes: a clear failure, never sent back cut short', async (t) => {
  const srv = await startNode([fake], { MCP_FAKE_SID_LONG: '1' }, (s) => Number(/port (\d+)/.exec(s)?.[1] ?? 0));
  t.after(() => srv.proc.kill('SIGTERM'));
  const r = await runGoosed(['mcp', 'call', `http://127.0.0.1:${srv.port}/mcp`, 'echo', '{"message":"hi"}'], {}, { timeoutMs: 30000 });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /sent an Mcp-Session-Id longer than 255 bytes/);
  const seen = srv.stderr().trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(seen.every((x) => x.sid === null), 'no request named a session cut short');
});

/** goosed with a streamable HTTP extension `remote` on the fake server (its env), one reply made so
 * that it starts; resolves {srv, seen()} (seen: the server's requests so far). */
async function replyWithFakeHttp(t, env) {
  const mcp = await startNode([fake], env, (s) => Number(/port (\d+)/.exec(s)?.[1] ?? 0));
  t.after(() => mcp.proc.kill('SIGTERM'));
  const prov = await startFake();
  t.after(() => prov.stop());
  const srv = await startServer({
    env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: prov.url, OPENAI_API_KEY: 'sk-x' },
    configYaml: `extensions:\n  remote:\n    enabled: true\n    type: streamable_http\n    name: remote\n    uri: http://127.0.0.1:${mcp.port}/mcp\n`,
  });
  t.after(() => stopAndCheck(srv));
  await prov.script([{ text: 'ok' }]);
  const s = await post(srv, '/api/sessions', { working_directory: srv.home });
  assert.equal((await post(srv, `/api/sessions/${s.body.id}/messages`, { content: 'hi' })).status, 200);
  return { srv, seen: () => mcp.stderr().trim().split('\n').map((l) => JSON.parse(l)) };
}

test('a server that forgets every session: a new one three times in a minute, then a failure, not a loop', async (t) => {
  const { srv, seen } = await replyWithFakeHttp(t, { MCP_FAKE_FORGETFUL: '1' });
  const failed = /WARN .*remote: the server ended the MCP session \(HTTP 404\)/;
  const end = Date.now() + 20000;
  while (!failed.test(srv.log()) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.match(srv.log(), failed);
  assert.equal((srv.log().match(/initializing a new session/g) ?? []).length, 3);
  assert.equal(seen().filter((r) => r.rpc === 'initialize').length, 4, 'the first session and three new ones');
});

test("a stream whose server says retry: 0 is reconnected at most every 500 ms, not at once", async (t) => {
  const { seen } = await replyWithFakeHttp(t, { MCP_FAKE_RETRY0: '1' });
  const gets = () => seen().filter((r) => r.method === 'GET').length;
  const end = Date.now() + 20000;
  while (gets() < 4 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  const t0 = Date.now();
  const n0 = gets();
  while (gets() < n0 + 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  // three more reconnects took at least three floors (a client without one makes thousands a second)
  assert.ok(Date.now() - t0 >= 3 * 500 - 100, `${gets() - n0} reconnects in ${Date.now() - t0} ms`);
});

test('in replies: server-everything over streamable HTTP, its tools called by the model (echo, sum, image, progress, elicitation, sampling)', async (t) => {
  const KEY = 'sk-mcp-http-agent';
  const ev = await startEverything(t, 'streamableHttp');
  const fake = await startFake({ keys: { openai: KEY } });
  t.after(() => fake.stop());
  const srv = await startServer({
    env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY },
    configYaml: `extensions:\n  everything:\n    enabled: true\n    type: streamable_http\n    name: everything\n    uri: http://127.0.0.1:${ev.port}/mcp\n    timeout: 60\n`,
  });
  try {
    const s = await post(srv, '/api/sessions', { working_directory: srv.home });
    const sid = s.body.id;
    const w = await watch(srv, sid);
    const call = (id, name, args) => ({ tool_calls: [{ id, name: `everything__${name}`, arguments: args }] });
    await fake.script([
      call('h1', 'echo', { message: 'over http' }),
      call('h2', 'get-sum', { a: 2, b: 40 }),
      call('h3', 'get-tiny-image', {}),
      call('h4', 'trigger-long-running-operation', { duration: 0.2, steps: 2 }),
      call('h5', 'trigger-elicitation-request', {}),
      call('h6', 'trigger-sampling-request', { prompt: 'sample me' }),
      { text: 'sampled over http' },
      { text: 'all done' },
    ]);
    const pending = post(srv, `/api/sessions/${sid}/messages`, { content: 'use everything' });
    const seen = await w.until('elicitation');
    const q = JSON.parse(seen.find((e) => e.event === 'elicitation').data);
    assert.equal((await post(srv, `/api/sessions/${sid}/elicitations`, { id: q.id, action: 'accept', content: { name: 'Grace' } })).status, 200);
    const r = await pending;
    assert.equal(r.status, 200, r.text);
    const all = await w.until('message_complete');
    w.close();
    const results = Object.fromEntries(all.filter((e) => e.event === 'tool_result').map((e) => JSON.parse(e.data)).map((d) => [d.id, d]));
    assert.match(results.h1.result, /Echo: over http/);
    assert.match(results.h2.result, /42/);
    assert.ok(results.h3.content.some((c) => c.type === 'image' && c.mimeType === 'image/png'), JSON.stringify(results.h3.content));
    assert.ok(all.some((e) => e.event === 'tool_progress' && JSON.parse(e.data).id === 'h4'));
    assert.match(results.h5.result, /Grace/);
    assert.match(results.h6.result, /sampled over http/);
    // the image reached the model in OpenAI's format (a user message with an image_url part)
    const reqs = await fake.requests('openai');
    const last = reqs.at(-1).body.messages;
    assert.ok(JSON.stringify(last).includes('data:image/png;base64,'), 'the image was sent to the model');
    const ext = (await get(srv, '/api/extensions')).body.extensions.find((x) => x.name === 'everything');
    assert.equal(ext.status, 'running');
  } finally {
    await stopAndCheck(srv);
  }
});
