// What clients can hold at the HTTP edge: idle connections do not lock others out, the bounds
// max_connections and max_connections_per_client answer 503 too_many_connections (with
// Retry-After) at request time, and header_timeout closes a connection that trickles its headers.
// Connections come from 127.0.0.2..127.0.0.5 (localAddress) where the probe's own address,
// 127.0.0.1, must stay apart from them.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, stopAndCheck } from './lib/server.mjs';
import { get } from './lib/http.mjs';
import { validateResponse } from './lib/openapi.mjs';

const EXCHANGE_TIMEOUT_MS = 15_000;
const ADDRS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];

/** Opens a TCP connection from localAddress; resolves with the socket once connected. Every
 * connection made through here is tracked in `open` and destroyed by closeAll. */
function connect(srv, localAddress, open) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: srv.connectHost, port: srv.port, localAddress });
    open?.push(sock);
    sock.closedByPeer = false;
    sock.ended = new Promise((r) => {
      sock.on('end', () => { sock.closedByPeer = true; });
      sock.on('close', () => r());
    });
    sock.on('error', () => {}); // a reset after the server closed: 'close' reports it
    sock.once('connect', () => resolve(sock));
    sock.once('error', reject);
  });
}

function closeAll(socks) {
  for (const s of socks.splice(0)) s.destroy();
}

function parseHead(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(lines[0].split(' ')[1]), headers, bodyAt: end + 4 };
}

/** Sends a GET on an open (kept-alive) socket and reads one Content-Length response. */
function exchange(sock, path = '/status') {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (err, res) => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      if (err) reject(err); else resolve(res);
    };
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const h = parseHead(buf);
      if (!h) return;
      const len = Number(h.headers['content-length'] ?? 0);
      if (buf.length < h.bodyAt + len) return;
      const text = buf.subarray(h.bodyAt, h.bodyAt + len).toString('utf8');
      const json = /json/.test(h.headers['content-type'] || '') ? JSON.parse(text) : undefined;
      done(null, { status: h.status, headers: h.headers, text, json });
    };
    const onClose = () => done(new Error(`connection closed before a response to GET ${path}: ${buf.toString('latin1')}`));
    const timer = setTimeout(() => done(new Error(`no response to GET ${path} within ${EXCHANGE_TIMEOUT_MS} ms`)), EXCHANGE_TIMEOUT_MS);
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  });
}

function assertTooMany(res, path = '/status') {
  assert.equal(res.status, 503, `expected 503, got ${res.status}: ${res.text}`);
  assert.equal(res.json?.code, 'too_many_connections', res.text);
  assert.equal(typeof res.json.error, 'string');
  assert.match(res.headers['retry-after'] ?? '', /^\d+$/, 'a 503 says when to retry');
  assert.match(res.headers.connection ?? '', /close/i, 'the refused connection is closed');
  validateResponse({ method: 'GET', path, status: res.status, headers: res.headers, body: res.json });
}

describe('limits: 1,100 idle connections', () => {
  let srv;
  const open = [];
  after(async () => { closeAll(open); await stopAndCheck(srv); });

  it('do not lock GET /status out for another client', { timeout: 120_000 }, async () => {
    // header_timeout is long here so that none of them is closed while they are counted.
    srv = await startServer({ configYaml: 'header_timeout: 120\n' });
    const N = 1100;
    for (let i = 0; i < N; i += 100) {
      const batch = [];
      for (let j = i; j < Math.min(N, i + 100); j++) batch.push(connect(srv, ADDRS[j % ADDRS.length], open));
      await Promise.all(batch);
    }
    const r = await get(srv, '/status');
    assert.equal(r.status, 200);
    assert.equal(r.text, 'ok');
    // They were held open, not closed to make room.
    assert.equal(open.filter((s) => s.closedByPeer).length, 0, 'no idle connection was closed');
  });
});

describe('limits: max_connections_per_client', () => {
  let srv;
  const open = [];
  after(async () => { closeAll(open); await stopAndCheck(srv); });

  it('the 9th connection from one address is answered 503, another address is served', { timeout: 60_000 }, async () => {
    srv = await startServer({ configYaml: 'max_connections_per_client: 8\n' });
    // Eight kept-alive connections, each served once (so the server has surely counted them).
    for (let i = 0; i < 8; i++) {
      const s = await connect(srv, '127.0.0.2', open);
      assert.equal((await exchange(s)).status, 200, `connection ${i + 1} of 8 is served`);
    }
    const ninth = await connect(srv, '127.0.0.2', open);
    const r = await exchange(ninth);
    assertTooMany(r);
    assert.match(r.json.error, /127\.0\.0\.2/, 'the message names the address');
    await ninth.ended;
    assert.ok(ninth.closedByPeer, 'the server closed the refused connection');

    const other = await connect(srv, '127.0.0.3', open);
    assert.equal((await exchange(other)).status, 200, 'another address is served');
    // The eight are still served on their connections.
    assert.equal((await exchange(open[0])).status, 200);
    assert.equal((await get(srv, '/status')).status, 200);
  });
});

describe('limits: max_connections', () => {
  let srv;
  const open = [];
  after(async () => { closeAll(open); await stopAndCheck(srv); });

  it('a connection over the limit is answered 503 too_many_connections and closed', { timeout: 60_000 }, async () => {
    const MAX = 20;
    srv = await startServer({ configYaml: `max_connections: ${MAX}\n` });
    for (let i = 0; i < MAX; i++) {
      const s = await connect(srv, ADDRS[i % ADDRS.length], open);
      assert.equal((await exchange(s)).status, 200, `connection ${i + 1} of ${MAX} is served`);
    }
    const over = await connect(srv, '127.0.0.5', open);
    const r = await exchange(over);
    assertTooMany(r);
    assert.match(r.json.error, new RegExp(`${MAX} connections`));
    await over.ended;
    assert.ok(over.closedByPeer, 'the server closed the refused connection');
    // Those within the limit are still served.
    assert.equal((await exchange(open[MAX - 1])).status, 200);
  });
});

describe('limits: header_timeout', () => {
  let srv;
  const open = [];
  after(async () => { closeAll(open); await stopAndCheck(srv); });

  /** Writes `bytes` one byte every 300 ms until the server closes the socket; resolves with how
   * many bytes were written by then and what came back. */
  function trickle(sock, bytes) {
    return new Promise((resolve) => {
      let sent = 0;
      let got = '';
      sock.on('data', (d) => { got += d.toString('latin1'); });
      const timer = setInterval(() => {
        if (sent < bytes.length && !sock.destroyed) sock.write(bytes.subarray(sent, ++sent));
      }, 300);
      sock.ended.then(() => { clearInterval(timer); resolve({ sent, got }); });
    });
  }

  it('a client trickling its headers is closed before they are complete; others are served meanwhile', { timeout: 60_000 }, async () => {
    srv = await startServer({ configYaml: 'header_timeout: 1\n' });
    // 200 bytes at 300 ms each would take a minute.
    const head = Buffer.from(`GET /status HTTP/1.1\r\nHost: localhost\r\nX-Slow: ${'a'.repeat(150)}\r\n\r\n`, 'latin1');
    const slow = await connect(srv, '127.0.0.2', open);
    const closed = trickle(slow, head);
    // A well-behaved client is served while the slow one is connected.
    const fine = await connect(srv, '127.0.0.3', open);
    assert.equal((await exchange(fine)).status, 200);
    const { sent, got } = await closed;
    assert.ok(slow.closedByPeer, 'the server closed the slow connection');
    assert.ok(sent < head.length, `closed after ${sent} of ${head.length} bytes, before the headers were complete`);
    assert.ok(!/^HTTP\/1\.1 200/.test(got), `the incomplete request was not answered: ${got}`);
  });

  it('on a kept-alive connection: an idle pause is fine, a trickled next request is closed', { timeout: 60_000 }, async () => {
    const s = await connect(srv, '127.0.0.4', open);
    assert.equal((await exchange(s)).status, 200);
    // Idle between requests for longer than header_timeout: the idle timeout applies, not it.
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal((await exchange(s)).status, 200, 'an idle kept-alive connection is still served');
    const head = Buffer.from(`GET /status HTTP/1.1\r\nHost: localhost\r\nX-Slow: ${'b'.repeat(150)}\r\n\r\n`, 'latin1');
    const { sent } = await trickle(s, head);
    assert.ok(s.closedByPeer, 'the server closed the connection');
    assert.ok(sent < head.length, `closed after ${sent} of ${head.length} bytes`);
    assert.equal((await get(srv, '/status')).status, 200);
  });
});
