// A session's history is sent while it is read (GET /api/sessions/{id}/messages, chunked, in pieces
// of 256 KiB): a history of many pieces, with messages larger than a piece, arrives whole, in order,
// and parses, whole or a page at a time; clients that stop reading halfway (and close, or keep their
// connection open without reading) hold none of the readers: other requests are served meanwhile,
// and the next request works.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { realpathSync } from 'node:fs';
import { startServer, stopAndCheck, tempDir } from './lib/server.mjs';
import { get, post } from './lib/http.mjs';

const N = 1500;
const PIECE = 256 << 10;

/** The messages of the session: every tenth of them larger than a piece; texts JSON escapes; a
 *  conversation the providers take (as an import stores it): each call answered by the next
 *  message, none left open at the end. */
function messages(dir) {
  const out = [];
  for (let i = 0; i < N; i++) {
    const len = i % 100 === 7 ? PIECE + 1000 + i : 200 + ((i * 37) % 1800);
    let text = `message ${i}: "quoted" \\ tab\t nl\n é 中 😀 `;
    while (text.length < len) text += `word${i % 97} `;
    const answer = i > 0 ? [{ type: 'tool_response', id: `call_${i - 1}`, name: 'developer__shell', content: [{ type: 'text', text: `listed ${i - 1}` }], is_error: false }] : [];
    out.push(i % 2
      ? { role: 'assistant', content: [{ type: 'text', text }, ...(i < N - 1 ? [{ type: 'tool_request', id: `call_${i}`, name: 'developer__shell', arguments: { command: `ls ${i}` } }] : [])] }
      : { role: 'user', content: [...answer, { type: 'text', text }] });
  }
  return out;
}

/** Sends a GET for path on a new connection and reads `upTo` bytes of the answer (0: none), then
 * resolves with the socket, still open (paused when it stopped reading). */
function partialGet(srv, path, upTo) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(srv.port, '127.0.0.1');
    let got = 0;
    sock.on('error', reject);
    sock.on('connect', () => {
      sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`);
      if (!upTo) {
        sock.pause();
        resolve(sock);
      }
    });
    sock.on('data', (d) => {
      got += d.length;
      if (upTo && got >= upTo) {
        sock.pause();
        sock.removeAllListeners('data');
        resolve(sock);
      }
    });
  });
}

describe('a long history, sent while it is read', () => {
  let srv, sid, sent, whole;
  before(async () => {
    const dir = realpathSync(tempDir('goosed-history-'));
    srv = await startServer({ env: { GOOSE_MAX_BODY_SIZE: String(64 << 20) } });
    sent = messages(dir);
    const r = await post(srv, '/api/sessions/import', {
      format: 'goosed-session', version: 1, session: { name: 'long', working_dir: dir }, messages: sent,
    });
    assert.equal(r.status, 201, r.text);
    sid = r.body.id;
  });
  after(async () => {
    await stopAndCheck(srv);
  });

  // HTTP/1.0 has no chunks: the pieces go as they are, and the close ends the body.
  it('over HTTP/1.0: the same history unframed, ended by the close', async () => {
    const whole11 = await get(srv, `/api/sessions/${sid}/messages`);
    const raw = await new Promise((resolve, reject) => {
      const parts = [];
      const sock = net.connect(srv.port, '127.0.0.1');
      sock.on('error', reject);
      sock.on('connect', () => sock.write(`GET /api/sessions/${sid}/messages HTTP/1.0\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`));
      sock.on('data', (d) => parts.push(d));
      sock.on('end', () => resolve(Buffer.concat(parts)));
    });
    const at = raw.indexOf('\r\n\r\n');
    const head = raw.subarray(0, at).toString('latin1');
    assert.match(head, /^HTTP\/1\.[01] 200 /, head);
    assert.doesNotMatch(head, /transfer-encoding/i, head);
    const body = raw.subarray(at + 4).toString('utf8');
    assert.ok(body.length > 10 * PIECE, `${body.length} bytes: many pieces`);
    assert.equal(body, whole11.text, 'the same bytes as over HTTP/1.1, without chunk framing');
    assert.equal(JSON.parse(body).length, N);
  });

  it('arrives whole, in order, and parses: many pieces, messages larger than a piece', async () => {
    const r = await get(srv, `/api/sessions/${sid}/messages`);
    assert.equal(r.status, 200, r.text.slice(0, 500));
    assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.ok(r.text.length > 10 * PIECE, `${r.text.length} bytes: a history of many pieces`);
    whole = r.body;
    assert.equal(whole.length, N);
    assert.deepEqual(whole.map(({ role, content }) => ({ role, content })), sent);
    const exported = (await get(srv, `/api/sessions/${sid}/export`)).body.messages;
    assert.deepEqual(whole.map(({ role, content, created_at }) => ({ role, content, created_at })), exported);
  });

  it('a page at a time, pages of several pieces: the same messages, with their Link and next_cursor', async () => {
    assert.ok(whole, 'the whole history was read');
    for (const limit of [400, 1499, 1500, 1501]) {
      const seen = [];
      let cursor = '';
      for (let pages = 0; ; pages++) {
        assert.ok(pages <= N / limit + 1);
        const p = await get(srv, `/api/sessions/${sid}/messages?limit=${limit}&cursor=${cursor}`);
        assert.equal(p.status, 200, p.text.slice(0, 500));
        seen.push(...p.body.messages);
        if (p.body.next_cursor === null) {
          assert.equal(p.headers.get('link'), null);
          break;
        }
        assert.equal(p.body.messages.length, limit);
        assert.equal(p.headers.get('link'), `</api/sessions/${sid}/messages?limit=${limit}&cursor=${p.body.next_cursor}>; rel="next"`);
        cursor = p.body.next_cursor;
      }
      assert.deepEqual(seen, whole, `pages of ${limit}`);
    }
  });

  // A client slower than the server: the socket takes part of a piece, the rest waits for it (the
  // piece stays where it is until the socket has taken it); the chunks are framed exactly.
  it('a client that reads slowly gets it whole, in exact chunks', async () => {
    assert.ok(whole, 'the whole history was read');
    const raw = await new Promise((resolve, reject) => {
      const parts = [];
      const sock = net.connect(srv.port, '127.0.0.1');
      sock.on('error', reject);
      sock.on('connect', () => sock.write(`GET /api/sessions/${sid}/messages HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nConnection: close\r\n\r\n`));
      sock.on('data', (d) => {
        parts.push(d);
        sock.pause(); // a little at a time: the server meets a full socket again and again
        setTimeout(() => sock.resume(), 1);
      });
      sock.on('end', () => resolve(Buffer.concat(parts)));
    });
    const at = raw.indexOf('\r\n\r\n');
    assert.match(raw.subarray(0, at).toString('latin1'), /^HTTP\/1\.1 200 [^]*\r\ntransfer-encoding: chunked/i);
    const chunks = [];
    let off = at + 4;
    for (;;) {
      const eol = raw.indexOf('\r\n', off);
      const line = raw.subarray(off, eol).toString('latin1');
      assert.match(line, /^[0-9a-f]+$/, `a chunk's size line at byte ${off}`);
      const size = parseInt(line, 16);
      off = eol + 2;
      if (size === 0) {
        assert.equal(raw.subarray(off).toString('latin1'), '\r\n', 'the last chunk, then the end');
        break;
      }
      chunks.push(raw.subarray(off, off + size));
      off += size;
      assert.equal(raw.subarray(off, off + 2).toString('latin1'), '\r\n', `the CRLF after a chunk of ${size} bytes`);
      off += 2;
    }
    assert.ok(chunks.length > 1, `${chunks.length} chunks`);
    assert.deepEqual(JSON.parse(Buffer.concat(chunks).toString('utf8')), whole);
  });

  it('HEAD answers the head alone', async () => {
    const r = await fetch(`${srv.url}/api/sessions/${sid}/messages`, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.equal(await r.text(), '');
    assert.equal((await get(srv, `/api/sessions/${sid}/messages?limit=1`)).body.length, 1);
  });

  it('clients that read part of it and close do not hurt: the next requests are served whole', async () => {
    assert.ok(whole, 'the whole history was read');
    const socks = await Promise.all([1, 1000, PIECE, 3 * PIECE, 5 * PIECE].map((n) => partialGet(srv, `/api/sessions/${sid}/messages`, n)));
    for (const s of socks) s.destroy();
    const r = await get(srv, `/api/sessions/${sid}/messages`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, whole);
  });

  it('clients that stop reading and keep their connection open hold no reader: other requests are served meanwhile', async () => {
    assert.ok(whole, 'the whole history was read');
    // more of them than the pool has workers: a reader that waited for its client would leave
    // none for the requests below, which would then never be answered
    const stalled = await Promise.all(Array.from({ length: 12 }, (_, i) => partialGet(srv, `/api/sessions/${sid}/messages`, i % 2 ? PIECE : 0)));
    try {
      for (let k = 0; k < 3; k++) {
        const r = await get(srv, `/api/sessions/${sid}/messages`);
        assert.equal(r.status, 200);
        assert.deepEqual(r.body, whole);
      }
    } finally {
      for (const s of stalled) s.destroy();
    }
    const r = await get(srv, `/api/sessions/${sid}/messages?limit=2&cursor=`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.messages, whole.slice(0, 2));
  });
});
