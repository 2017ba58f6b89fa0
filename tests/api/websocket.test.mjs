// The WebSocket stream of a session (seed 001): GET /api/sessions/{id}/stream, RFC 6455.
// The client is lib/ws.mjs, a few lines over node:net, since the edge cases need frames no
// client library would send (unmasked, oversized, fragmented with a ping in between). The
// provider is tests/fakes (OpenAI's streaming format).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { startServer, stopAndCheck, tempDir } from './lib/server.mjs';
import { get, post, rawRequest, assertAlive } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';
import { OP, frame, closePayload, connect } from './lib/ws.mjs';

const KEY = 'sk-test-key';

/** A handshake that must fail: the raw HTTP answer (no upgrade), over rawRequest. */
function badHandshake(srv, path, headers) {
  let req = `GET ${path} HTTP/1.1\r\nHost: ${srv.connectHost}:${srv.port}\r\n`;
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) req += `${k}: ${v}\r\n`;
  return rawRequest(srv, `${req}\r\n`); // checked against docs/openapi.json
}

const GOOD = { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' };

function assertJsonError(res, status, code, message) {
  assert.equal(res.status, status, `${res.statusLine}: ${res.body}`);
  assert.match(res.headers['content-type'], /^application\/json/);
  assert.equal(res.json.code, code);
  assert.match(res.json.error, message);
  assert.equal(res.headers.upgrade, undefined, 'no upgrade happened');
}

async function newSession(srv, dir) {
  const r = await post(srv, '/api/sessions', { name: 'ws test', working_directory: dir });
  assert.equal(r.status, 201, r.text);
  return r.body.id;
}

/** Connects, sends these raw frames, and expects the server to close with `code`, then hang up. */
async function closesWith(srv, id, frames, code) {
  const { ws } = await connect(srv, `/api/sessions/${id}/stream`);
  for (const bytes of frames) ws.send(bytes);
  const f = await ws.frame();
  assert.deepEqual([f.opcode, f.code], [OP.close, code]);
  await ws.closed;
}

const deltas = (frames) => frames.filter((f) => f.type === 'content_delta').map((f) => f.delta).join('');

describe('WebSocket stream', () => {
  let fake;
  let srv;
  let dir;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    dir = tempDir('goosed-ws-cwd-');
    srv = await startServer({
      env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY },
    });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it("seed 001's flow: a message in, content_delta frames and message_complete out", async () => {
    const id = await newSession(srv, dir);
    await fake.script([{ text: "I'll create a function that adds two numbers.", chunks: 4, delay_ms: 50, usage: { input: 11, output: 9 } }]);
    const { ws } = await connect(srv, `/api/sessions/${id}/stream`);
    ws.sendJSON({ type: 'message', content: 'Create a function...' });
    const frames = await ws.until('message_complete');
    const types = [...new Set(frames.map((f) => f.type))];
    assert.deepEqual(types, ['content_delta', 'message_complete']);
    assert.ok(frames.filter((f) => f.type === 'content_delta').length >= 2, 'the reply arrived in pieces');
    for (const f of frames.filter((x) => x.type === 'content_delta')) assert.deepEqual(Object.keys(f).sort(), ['delta', 'type']);
    assert.equal(deltas(frames), "I'll create a function that adds two numbers.");
    const done = frames.at(-1);
    assert.equal(done.stop_reason, 'end_turn');
    assert.deepEqual(done.usage, { input_tokens: 11, output_tokens: 9 });

    const hist = await get(srv, `/api/sessions/${id}/messages`);
    assert.deepEqual(hist.body.map((m) => m.role), ['user', 'assistant']);
    assert.deepEqual(hist.body[0].content, [{ type: 'text', text: 'Create a function...' }]);
    assert.equal(hist.body[1].id, done.message_id);
    const sent = await fake.requests();
    assert.deepEqual(sent.at(-1).body.messages.at(-1), { role: 'user', content: 'Create a function...' });

    // The connection stays open for the next message.
    await fake.script([{ text: 'Second answer.' }]);
    ws.sendJSON({ type: 'message', content: 'again' });
    assert.equal(deltas(await ws.until('message_complete')), 'Second answer.');
    const c = await ws.close(1000);
    assert.equal(c.code, 1000, 'the close handshake echoes 1000');
  });

  it('a tool call round: tool_use and tool_result frames, then the rest of the reply', async () => {
    const id = await newSession(srv, dir);
    await fake.script([
      { text: 'Let me check', tool_calls: [{ id: 'call_ws', name: 'developer__shell', arguments: { command: 'echo hi-from-ws' } }], split: 3 },
      { text: 'It printed hi.' },
    ]);
    const { ws } = await connect(srv, `/api/sessions/${id}/stream`);
    ws.sendJSON({ type: 'message', content: 'run it' });
    const frames = await ws.until('message_complete');
    assert.deepEqual(frames.map((f) => f.type).filter((t) => t !== 'content_delta'), ['tool_use', 'tool_result', 'message_complete']);
    const use = frames.find((f) => f.type === 'tool_use');
    assert.deepEqual(use, { type: 'tool_use', id: 'call_ws', tool: 'developer__shell', arguments: { command: 'echo hi-from-ws' } });
    const result = frames.find((f) => f.type === 'tool_result');
    assert.equal(result.id, 'call_ws');
    assert.equal(result.tool, 'developer__shell');
    assert.equal(result.is_error, false);
    assert.match(result.result, /hi-from-ws/);
    assert.equal(deltas(frames), 'Let me checkIt printed hi.');
    ws.destroy();
  });

  it('cancel over the socket stops the running reply; 409 and nothing-to-cancel are error frames', async () => {
    const id = await newSession(srv, dir);
    await fake.script([{ text: 'slow reply', chunks: 2, stall_after: 1, stall_ms: 20000 }]);
    const { ws } = await connect(srv, `/api/sessions/${id}/stream`);
    ws.sendJSON({ type: 'message', content: 'go' });
    const first = await ws.json();
    assert.equal(first.type, 'content_delta', 'the reply is running');
    ws.sendJSON({ type: 'message', content: 'again' });
    const busy = await ws.json();
    assert.equal(busy.type, 'error');
    assert.equal(busy.code, 'reply_running');
    assert.match(busy.error, /already running/);
    ws.sendJSON({ type: 'cancel' });
    const rest = await ws.until('message_complete');
    assert.equal(rest.at(-1).stop_reason, 'cancelled');
    ws.sendJSON({ type: 'cancel' });
    const none = await ws.json();
    assert.deepEqual({ type: none.type, code: none.code }, { type: 'error', code: 'no_reply_running' });
    const hist = await get(srv, `/api/sessions/${id}/messages`);
    assert.deepEqual(hist.body.map((m) => m.role), ['user', 'assistant'], 'what arrived before the cancel is kept');
    await ws.close();
  });

  it('malformed frames get error frames and the connection keeps working', async () => {
    const id = await newSession(srv, dir);
    const { ws } = await connect(srv, `/api/sessions/${id}/stream`);
    const cases = [
      [frame(OP.text, 'this is not json'), 'invalid_json', /not valid JSON/],
      [frame(OP.text, '[1, 2]'), 'invalid_json', /JSON object/],
      [frame(OP.text, '{"type": "message", "type": "cancel"}'), 'invalid_json', /duplicate/],
      [frame(OP.text, '{"content": "no type"}'), 'bad_request', /type/],
      [frame(OP.text, '{"type": "dance"}'), 'bad_request', /unknown frame type/],
      [frame(OP.text, '{"type": "message"}'), 'bad_request', /content/],
      [frame(OP.text, '{"type": "message", "content": ""}'), 'bad_request', /content/],
      [frame(OP.text, '{"type": "message", "content": 42}'), 'bad_request', /content/],
      [frame(OP.text, '{"type": "message", "content": "x", "role": "assistant"}'), 'bad_request', /role/],
      [frame(OP.binary, Buffer.from([0xde, 0xad, 0xbe, 0xef])), 'bad_request', /binary/],
      [frame(OP.text, ''), 'invalid_json', /not valid JSON/],
    ];
    for (const [bytes, code, message] of cases) {
      ws.send(bytes);
      const e = await ws.json();
      assert.equal(e.type, 'error', JSON.stringify(e));
      assert.equal(e.code, code, JSON.stringify(e));
      assert.match(e.error, message);
    }
    await fake.script([{ text: 'still here' }]);
    ws.sendJSON({ type: 'message', content: 'hello?' });
    assert.equal(deltas(await ws.until('message_complete')), 'still here');
    await ws.close();
    await assertAlive(srv);
  });

  it('an unknown session is a 404 before any upgrade', async () => {
    const res = await badHandshake(srv, '/api/sessions/00000000-0000-4000-8000-000000000000/stream', GOOD);
    assertJsonError(res, 404, 'not_found', /not found/);
  });

  it('a bad handshake is a 400 naming what is missing (426 for another version)', async () => {
    const id = await newSession(srv, dir);
    const p = `/api/sessions/${id}/stream`;
    assertJsonError(await badHandshake(srv, p, {}), 400, 'bad_request', /Upgrade: websocket/);
    assertJsonError(await badHandshake(srv, p, { ...GOOD, Upgrade: 'h2c' }), 400, 'bad_request', /Upgrade: websocket/);
    assertJsonError(await badHandshake(srv, p, { ...GOOD, Connection: 'keep-alive' }), 400, 'bad_request', /Connection: Upgrade/);
    assertJsonError(await badHandshake(srv, p, { ...GOOD, 'Sec-WebSocket-Version': undefined }), 400, 'bad_request', /Sec-WebSocket-Version/);
    assertJsonError(await badHandshake(srv, p, { ...GOOD, 'Sec-WebSocket-Key': undefined }), 400, 'bad_request', /Sec-WebSocket-Key/);
    assertJsonError(await badHandshake(srv, p, { ...GOOD, 'Sec-WebSocket-Key': 'short' }), 400, 'bad_request', /Sec-WebSocket-Key/);
    const v8 = await badHandshake(srv, p, { ...GOOD, 'Sec-WebSocket-Version': '8' });
    assertJsonError(v8, 426, 'upgrade_required', /version 13/);
    assert.equal(v8.headers['sec-websocket-version'], '13');
    // Header tokens are case-insensitive and may come in lists.
    const { ws } = await connect(srv, p, { headers: { Upgrade: 'WebSocket', Connection: 'keep-alive, upgrade' } });
    await ws.close();
    const post405 = await rawRequest(srv, `POST ${p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n`);
    assert.equal(post405.status, 405);
    await assertAlive(srv);
  });

  it("a web page from another origin is refused (403); the server's own origin is not", async () => {
    const id = await newSession(srv, dir);
    const p = `/api/sessions/${id}/stream`;
    for (const origin of ['https://evil.example', 'null', `http://${srv.connectHost}:${srv.port + 1}`]) {
      const res = await badHandshake(srv, p, { ...GOOD, Origin: origin });
      assertJsonError(res, 403, 'forbidden_origin', new RegExp(`origin ${origin.replace(/[.:/]/g, '\\$&')} are not allowed`));
    }
    // The page the server itself served (same scheme://host:port as the Host it was asked for).
    const { ws } = await connect(srv, p, { headers: { Origin: `http://${srv.connectHost}:${srv.port}` } });
    await fake.script([{ text: 'same origin' }]);
    ws.sendJSON({ type: 'message', content: 'hi' });
    assert.equal(deltas(await ws.until('message_complete')), 'same origin');
    await ws.close();
  });

  it('answers a ping with a pong carrying the same payload', async () => {
    const id = await newSession(srv, dir);
    const { ws } = await connect(srv, `/api/sessions/${id}/stream`);
    ws.send(frame(OP.ping, 'are you there'));
    const pong = await ws.frame();
    assert.equal(pong.opcode, OP.pong);
    assert.equal(pong.payload.toString(), 'are you there');
    await ws.close();
  });

  it('reassembles a fragmented message, with a ping between its fragments', async () => {
    const id = await newSession(srv, dir);
    await fake.script([{ text: 'fragments joined' }]);
    const { ws } = await connect(srv, `/api/sessions/${id}/stream`);
    const text = JSON.stringify({ type: 'message', content: 'in three pieces' });
    ws.send(frame(OP.text, text.slice(0, 10), { fin: false }));
    ws.send(frame(OP.ping, 'mid'));
    ws.send(frame(OP.cont, text.slice(10, 20), { fin: false }));
    ws.send(frame(OP.cont, text.slice(20)));
    const pong = await ws.frame();
    assert.equal(pong.opcode, OP.pong);
    assert.equal(pong.payload.toString(), 'mid');
    assert.equal(deltas(await ws.until('message_complete')), 'fragments joined');
    const sent = await fake.requests();
    assert.deepEqual(sent.at(-1).body.messages.at(-1), { role: 'user', content: 'in three pieces' });
    await ws.close();
  });

  it('reads a frame sent in the same packet as the handshake', async () => {
    const id = await newSession(srv, dir);
    await fake.script([{ text: 'eager' }]);
    const { ws } = await connect(srv, `/api/sessions/${id}/stream`, { extra: frame(OP.text, JSON.stringify({ type: 'message', content: 'early' })) });
    assert.equal(deltas(await ws.until('message_complete')), 'eager');
    await ws.close();
  });

  it('closes with 1009 for a message over 1 MiB, and the close frame arrives intact', async () => {
    const id = await newSession(srv, dir);
    await closesWith(srv, id, [frame(OP.text, Buffer.alloc((1 << 20) + 1, 'a'))], 1009);
    // Also across fragments: each is small, the message is not.
    const piece = Buffer.alloc(300 * 1024, 'b');
    const pieces = [0, 1, 2].map((i) => frame(i ? OP.cont : OP.text, piece, { fin: false }));
    await closesWith(srv, id, [...pieces, frame(OP.cont, piece)], 1009);
    await assertAlive(srv);
  });

  it('closes with 1002 for an unmasked client frame and for a fragmented control frame', async () => {
    const id = await newSession(srv, dir);
    await closesWith(srv, id, [frame(OP.text, '{"type":"cancel"}', { mask: false })], 1002);
    await closesWith(srv, id, [frame(OP.ping, 'x', { fin: false })], 1002);
    await assertAlive(srv);
  });

  it('closes with 1007 for a text message that is not UTF-8, and 1002 for reserved bits', async () => {
    const id = await newSession(srv, dir);
    await closesWith(srv, id, [frame(OP.text, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))], 1007);
    const bytes = frame(OP.text, '{"type":"cancel"}');
    bytes[0] |= 0x40; // RSV1 without a negotiated extension
    await closesWith(srv, id, [bytes], 1002);
  });

  it('thinking arrives as thinking_delta frames, before the text', async () => {
    const id = await newSession(srv, dir);
    await fake.script([{ thinking: 'Let me think it over.', thinking_chunks: 2, text: 'Done thinking.' }]);
    const { ws } = await connect(srv, `/api/sessions/${id}/stream`);
    ws.sendJSON({ type: 'message', content: 'think' });
    const frames = await ws.until('message_complete');
    const thinking = frames.filter((f) => f.type === 'thinking_delta');
    assert.equal(thinking.map((f) => f.delta).join(''), 'Let me think it over.');
    assert.ok(frames.indexOf(thinking.at(-1)) < frames.findIndex((f) => f.type === 'content_delta'));
    assert.equal(deltas(frames), 'Done thinking.');
    await ws.close();
  });

  it('serves many sockets at once, each with its own reply', async () => {
    const n = 24;
    const ids = await Promise.all(Array.from({ length: n }, () => newSession(srv, dir)));
    const socks = await Promise.all(ids.map((id) => connect(srv, `/api/sessions/${id}/stream`)));
    await fake.script({ responses: [], default: { text: 'same answer for everyone', chunks: 5, delay_ms: 5 } });
    try {
      socks.forEach(({ ws }, i) => ws.sendJSON({ type: 'message', content: `client ${i}` }));
      const replies = await Promise.all(socks.map(({ ws }) => ws.until('message_complete')));
      for (const r of replies) {
        assert.equal(deltas(r), 'same answer for everyone');
        assert.equal(r.at(-1).stop_reason, 'end_turn');
      }
    } finally {
      await fake.reset();
    }
    await Promise.all(socks.map(({ ws }) => ws.close()));
    await assertAlive(srv);
  });

  it('every client sees every reply of the session, whoever started it', async () => {
    const id = await newSession(srv, dir);
    const { ws: a } = await connect(srv, `/api/sessions/${id}/stream`);
    const { ws: b } = await connect(srv, `/api/sessions/${id}/stream`);
    await fake.script([{ text: 'for both of you' }, { text: 'started over HTTP' }]);
    a.sendJSON({ type: 'message', content: 'hi' });
    assert.equal(deltas(await a.until('message_complete')), 'for both of you');
    assert.equal(deltas(await b.until('message_complete')), 'for both of you');
    const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'over http' });
    assert.equal(r.status, 200, r.text);
    assert.equal(deltas(await a.until('message_complete')), 'started over HTTP');
    assert.equal(deltas(await b.until('message_complete')), 'started over HTTP');
    a.destroy(); // gone without a close frame: the server copes
    await b.close();
    await assertAlive(srv);
  });

  it('a provider error is an error frame and the connection stays open', async () => {
    const id = await newSession(srv, dir);
    await fake.script([{ error: { status: 400, message: 'No such model (fake)' } }, { text: 'recovered' }]);
    const { ws } = await connect(srv, `/api/sessions/${id}/stream`);
    ws.sendJSON({ type: 'message', content: 'hi' });
    const e = await ws.json();
    assert.deepEqual({ type: e.type, code: e.code }, { type: 'error', code: 'provider_error' });
    assert.match(e.error, /No such model \(fake\)/);
    ws.sendJSON({ type: 'message', content: 'again' });
    assert.equal(deltas(await ws.until('message_complete')), 'recovered');
    await ws.close();
  });
});

describe('WebSocket origins listed in cors_origins', () => {
  it('a listed origin may connect; an unlisted one may not', async () => {
    const srv = await startServer({ env: { GOOSE_CORS_ORIGINS: 'https://app.example,http://localhost:5173' } });
    try {
      const id = await newSession(srv, srv.home);
      const p = `/api/sessions/${id}/stream`;
      for (const origin of ['https://app.example', 'http://localhost:5173']) {
        const { ws } = await connect(srv, p, { headers: { Origin: origin } });
        await ws.close();
      }
      assertJsonError(await badHandshake(srv, p, { ...GOOD, Origin: 'https://app.example.evil' }), 403, 'forbidden_origin', /app\.example\.evil/);
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('WebSocket and server shutdown', () => {
  it('an open socket gets close 1001 and the server exits cleanly', async () => {
    const srv = await startServer();
    let ws;
    try {
      const id = await newSession(srv, srv.home);
      ({ ws } = await connect(srv, `/api/sessions/${id}/stream`));
      ws.sendJSON({ type: 'message', content: 'no provider' });
      const e = await ws.json();
      assert.deepEqual({ type: e.type, code: e.code }, { type: 'error', code: 'provider_not_configured' });
    } catch (err) {
      await stopAndCheck(srv);
      throw err;
    }
    const stopping = stopAndCheck(srv);
    const f = await ws.frame();
    assert.deepEqual([f.opcode, f.code], [OP.close, 1001]);
    ws.send(frame(OP.close, closePayload(1001)));
    await ws.closed;
    await stopping;
  });

  it('a client that never answers the close does not keep the server from exiting', async () => {
    const srv = await startServer();
    let ws;
    try {
      const id = await newSession(srv, srv.home);
      ({ ws } = await connect(srv, `/api/sessions/${id}/stream`));
    } catch (err) {
      await stopAndCheck(srv);
      throw err;
    }
    const stopping = stopAndCheck(srv);
    const f = await ws.frame();
    assert.deepEqual([f.opcode, f.code], [OP.close, 1001]);
    await ws.closed; // the server gave up waiting and closed
    await stopping;
  });
});

describe('a WebSocket client that sends and never reads', () => {
  it('is read no further once 1 MiB of answers (pongs) waits for it: goosed holds no more, and stops as usual', async () => {
    let srv = await startServer({});
    let ws;
    try {
      const made = await post(srv, '/api/sessions', { name: 'pings', working_directory: srv.home });
      ({ ws } = await connect(srv, `/api/sessions/${made.body.id}/stream`));
      ws.sock.pause(); // reads nothing from here on
      const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'))[1]);
      const before = rss();
      const batch = Buffer.concat(Array.from({ length: 2000 }, () => frame(OP.ping, 'p'.repeat(125))));
      // 100 MB of pings, each of which asks for a pong; sent while goosed takes them. The loop
      // stops when the socket has taken nothing for 3 s (goosed stopped reading) or all went.
      let sent = 0;
      while (sent < 100e6) {
        if (!ws.sock.write(batch)) {
          const drained = await Promise.race([once(ws.sock, 'drain').then(() => true), new Promise((r) => setTimeout(() => r(false), 3000))]);
          if (!drained) break;
        }
        sent += batch.length;
      }
      const grown = rss() - before;
      assert.ok(sent < 100e6, `all ${sent} bytes of pings were taken by a server whose answers nobody reads`);
      // (under AddressSanitizer freed memory stays in its quarantine: the size says nothing)
      if (!process.env.ASAN_OPTIONS) assert.ok(grown < 32 * 1024, `goosed grew by ${grown} kB for ${sent} bytes of pings`);
      await assertAlive(srv);
      // and it does not hold goosed's stop: its close handshake is awaited a short while only
      const stopping = stopAndCheck(srv);
      srv = null;
      await stopping;
    } finally {
      ws?.sock.destroy();
      if (srv) await stopAndCheck(srv);
    }
  });
});
