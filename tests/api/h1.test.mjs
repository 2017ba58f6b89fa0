// goosed's own HTTP/1.1 engine (src/http/server.c, h1.c) on the wire: pipelined requests
// answered in order, keep-alive rules of HTTP/1.0 and 1.1, chunked bodies with extensions and
// trailers, a body in pieces, Expect: 100-continue both ways, HTTP/2's preface refused once in
// JSON, and the connection going on after each.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { startServer, stopAndCheck } from './lib/server.mjs';
import { get } from './lib/http.mjs';

/** Writes each piece of `pieces` in turn (the next once the previous is flushed) on a fresh
 * connection, and collects what comes back until the server closes or `want` responses (by
 * status line) have arrived. Resolves {text, closed, statuses}. */
function exchange(srv, pieces, { want = Infinity, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const sock = net.connect({ host: srv.connectHost, port: srv.port });
    const statuses = () => [...buf.toString('latin1').matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    const done = (closed) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ text: buf.toString('latin1'), closed, statuses: statuses() });
    };
    const timer = setTimeout(() => (want === Infinity ? done(false) : reject(new Error(`timed out with: ${buf.toString('latin1').slice(0, 500)}`))), timeoutMs);
    sock.on('connect', async () => {
      for (const p of [].concat(pieces)) {
        await new Promise((r) => sock.write(p, r));
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      // a response is complete once its Content-Length body (or its chunked end) is in
      const text = buf.toString('latin1');
      const heads = [...text.matchAll(/HTTP\/1\.1 \d{3} [^\r]*\r\n((?:[^\r]+\r\n)*)\r\n/g)];
      if (heads.length >= want) {
        const last = heads.at(-1);
        const cl = /content-length: (\d+)/i.exec(last[1]);
        const bodyStart = last.index + last[0].length;
        if (!cl || text.length - bodyStart >= Number(cl[1])) done(false);
      }
    });
    sock.on('close', () => done(true));
    sock.on('error', () => { /* seen as the close */ });
  });
}

describe('the HTTP/1.1 engine', () => {
  let srv;
  let H;
  before(async () => {
    srv = await startServer();
    H = `Host: 127.0.0.1:${srv.port}`;
  });
  after(() => stopAndCheck(srv));

  it('answers pipelined requests in order, on one connection', async () => {
    const reqs = ['a', 'b', 'c', 'd'].map((id) => `GET /status HTTP/1.1\r\n${H}\r\nX-Request-Id: pipe-${id}\r\n\r\n`).join('');
    const r = await exchange(srv, reqs + `GET /nope HTTP/1.1\r\n${H}\r\n\r\n`, { want: 5 });
    assert.deepEqual(r.statuses, [200, 200, 200, 200, 404]);
    assert.deepEqual([...r.text.matchAll(/X-Request-Id: (pipe-\w)/g)].map((m) => m[1]), ['pipe-a', 'pipe-b', 'pipe-c', 'pipe-d']);
    assert.equal(r.closed, false);
  });

  it('HTTP/1.0 closes after its answer unless it asks for keep-alive', async () => {
    const plain = await exchange(srv, 'GET /status HTTP/1.0\r\n\r\n');
    assert.deepEqual(plain.statuses, [200]);
    assert.ok(plain.closed);
    const kept = await exchange(srv, 'GET /status HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /status HTTP/1.0\r\n\r\n');
    assert.deepEqual(kept.statuses, [200, 200]);
    assert.match(kept.text, /Connection: keep-alive\r\n/);
    assert.ok(kept.closed, 'closed after the second, which did not ask');
  });

  it('HTTP/1.1 with Connection: close is answered, then closed', async () => {
    const r = await exchange(srv, `GET /status HTTP/1.1\r\n${H}\r\nConnection: close\r\n\r\nGET /status HTTP/1.1\r\n${H}\r\n\r\n`);
    assert.deepEqual(r.statuses, [200]);
    assert.match(r.text, /Connection: close\r\n/);
    assert.ok(r.closed);
  });

  it('a chunked body with extensions and trailers, sent in pieces, makes a session; the next request follows', async () => {
    const body = JSON.stringify({ name: 'chunked one' });
    const head = `POST /api/sessions HTTP/1.1\r\n${H}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const a = body.slice(0, 5);
    const b = body.slice(5);
    const r = await exchange(srv, [head, `${a.length.toString(16)};ext=1\r\n${a}\r\n`, `${b.length.toString(16)}\r\n${b}\r\n0\r\nX-Trailer: yes\r\n\r\n`, `GET /status HTTP/1.1\r\n${H}\r\n\r\n`], { want: 2 });
    assert.deepEqual(r.statuses, [201, 200], r.text);
    assert.match(r.text, /"name":"chunked one"/);
  });

  it('a Content-Length body in pieces is read whole', async () => {
    const body = JSON.stringify({ name: 'in pieces' });
    const head = `POST /api/sessions HTTP/1.1\r\n${H}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const r = await exchange(srv, [head.slice(0, 10), head.slice(10), body.slice(0, 3), body.slice(3)], { want: 1 });
    assert.deepEqual(r.statuses, [201], r.text);
    assert.match(r.text, /"name":"in pieces"/);
  });

  it('Expect: 100-continue gets the 100 first, then the answer', async () => {
    const body = '{}';
    const r = await exchange(srv, [`POST /api/sessions HTTP/1.1\r\n${H}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n`, body], { want: 2 });
    assert.deepEqual(r.statuses, [100, 201], r.text);
  });

  it('Expect: 100-continue to a path that does not exist: the 404 without the body read, no 100', async () => {
    const r = await exchange(srv, `POST /api/nope HTTP/1.1\r\n${H}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n`);
    assert.deepEqual(r.statuses, [404], r.text);
    assert.ok(r.closed, 'closed: the body it did not read cannot be taken for a request');
  });

  it('HTTP/2 prior knowledge (its preface) is refused once with our JSON 505, then closed', async () => {
    const r = await exchange(srv, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    assert.deepEqual(r.statuses, [505], r.text);
    assert.match(r.text, /\r\n\r\n\{"error":"only HTTP\/1\.1 and HTTP\/1\.0 are served here","code":"http_version_not_supported"\}$/);
    assert.ok(r.closed);
  });

  it('HEAD has the GET\'s Content-Length and no body', async () => {
    const r = await exchange(srv, `HEAD /status HTTP/1.1\r\n${H}\r\n\r\nGET /status HTTP/1.1\r\n${H}\r\n\r\n`, { want: 2 });
    assert.deepEqual(r.statuses, [200, 200]);
    const [first, second] = r.text.split(/(?=HTTP\/1\.1 200)/);
    assert.match(first, /Content-Length: 2\r\n\r\n$/);
    assert.match(second, /\r\n\r\nok$/);
  });

  // The loop's round function sweeps lingering connections, and its deadline bounds the loop's
  // wait: a client that gets a closing answer and never closes its own side is let go after the
  // linger, with nothing else waking that loop. Seen from outside as goosed's open descriptors
  // falling back (read in /proc, which wakes nothing in goosed).
  it('a closing answer to a client that keeps its side open: the server closes it after the linger', async () => {
    // goosed's own end of this one connection, found by its socket's inode: counting all of
    // goosed's descriptors raced with connections of the tests before closing meanwhile.
    const inodeOf = (serverPort, clientPort) => {
      const hex = (p) => p.toString(16).toUpperCase().padStart(4, '0');
      for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
        let rows;
        try { rows = readFileSync(f, 'utf8').split('\n').slice(1); } catch { continue; }
        for (const row of rows) {
          const c = row.trim().split(/\s+/);
          if (c.length > 9 && c[1].endsWith(`:${hex(serverPort)}`) && c[2].endsWith(`:${hex(clientPort)}`) && c[9] !== '0') return c[9];
        }
      }
      return null;
    };
    const holds = (inode) => readdirSync(`/proc/${srv.proc.pid}/fd`).some((fd) => {
      try { return readlinkSync(`/proc/${srv.proc.pid}/fd/${fd}`) === `socket:[${inode}]`; } catch { return false; }
    });
    const sock = net.connect({ host: srv.connectHost, port: srv.port, allowHalfOpen: true });
    let text = '';
    const ended = new Promise((resolve) => sock.on('end', resolve)); // the server's FIN
    sock.on('data', (d) => { text += d.toString('latin1'); });
    sock.on('error', () => {});
    await new Promise((r) => sock.on('connect', r));
    sock.write(`POST /api/sessions HTTP/1.1\r\n${H}\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n`);
    await ended;
    assert.match(text, /^HTTP\/1\.1 400 /, text);
    // accepted and answered by now, so the socket has its inode (none while in the accept queue)
    const inode = inodeOf(srv.port, sock.localPort);
    assert.ok(inode, `goosed's socket for client port ${sock.localPort} is in /proc/net/tcp`);
    assert.ok(holds(inode), 'the lingering connection is still open'); // our side is open
    let open = true;
    for (let i = 0; i < 200 && (open = holds(inode)); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(open, false, 'the server let the lingering connection go');
    sock.destroy();
  });

  it('the server is still fine', async () => {
    assert.equal((await get(srv, '/status')).status, 200);
  });
});
