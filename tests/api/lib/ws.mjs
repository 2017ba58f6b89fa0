// A WebSocket client for the black-box tests (RFC 6455 over a bare socket): Node 20 has no
// WebSocket client, and the edge cases need frames no client library would send.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { validateResponse } from './openapi.mjs';

export const WAIT_MS = 10_000; // a frame that has not come by then is a failure, not something to wait for
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export const OP = { cont: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 };

/** One client frame: masked (unless mask: false), final (unless fin: false). */
export function frame(opcode, payload = '', { fin = true, mask = true } = {}) {
  const body = Buffer.from(payload);
  const n = body.length;
  let head;
  if (n < 126) {
    head = Buffer.from([0, n]);
  } else if (n < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  head[0] = (fin ? 0x80 : 0) | opcode;
  if (!mask) return Buffer.concat([head, body]);
  head[1] |= 0x80;
  const key = crypto.randomBytes(4);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([head, key, body]);
}

export function closePayload(code, reason = '') {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.from(reason)]);
}

/** The client side of an upgraded connection: parses the server's frames into a queue. */
export class WsClient {
  constructor(sock, initial) {
    this.sock = sock;
    this.buf = initial;
    this.frames = [];
    this.waiter = null;
    this.ended = false;
    this.closed = new Promise((resolve) => sock.on('close', resolve));
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.parse();
    });
    sock.on('close', () => {
      this.ended = true;
      this.notify();
    });
    sock.on('error', () => { /* a reset shows as the end of the frames */ });
    this.parse();
  }

  parse() {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const masked = (b[1] & 0x80) !== 0;
      if (masked) off += 4;
      if (b.length < off + len) break;
      const f = { fin: (b[0] & 0x80) !== 0, rsv: (b[0] >> 4) & 7, opcode: b[0] & 0x0f, masked, payload: Buffer.from(b.subarray(off, off + len)) };
      if (f.opcode === OP.close) {
        f.code = len >= 2 ? f.payload.readUInt16BE(0) : null;
        f.reason = f.payload.subarray(2).toString();
      }
      this.buf = b.subarray(off + len);
      this.frames.push(f);
    }
    this.notify();
  }

  notify() {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w();
    }
  }

  /** The next frame from the server; rejects if the connection ends first or nothing comes. */
  async frame() {
    const deadline = Date.now() + WAIT_MS;
    while (this.frames.length === 0) {
      if (this.ended) throw new Error('the connection closed while a frame was expected');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${WAIT_MS} ms`);
      let timer;
      await new Promise((resolve) => {
        this.waiter = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    const f = this.frames.shift();
    assert.equal(f.masked, false, 'server frames are never masked');
    assert.equal(f.rsv, 0, 'no extension was negotiated');
    return f;
  }

  /** The next text frame, parsed; control frames are skipped (a close is an error). */
  async json() {
    for (;;) {
      const f = await this.frame();
      if (f.opcode === OP.close) throw new Error(`closed by the server: ${f.code} ${f.reason}`);
      if (f.opcode !== OP.text) continue;
      assert.equal(f.fin, true, 'server messages are not fragmented');
      return JSON.parse(f.payload.toString('utf8'));
    }
  }

  /** The text frames up to and including the first of type `type`. */
  async until(type) {
    const got = [];
    for (;;) {
      const m = await this.json();
      got.push(m);
      if (m.type === type) return got;
    }
  }

  send(bytes) {
    this.sock.write(bytes);
  }

  sendJSON(o) {
    this.send(frame(OP.text, typeof o === 'string' ? o : JSON.stringify(o)));
  }

  /** Our close: sends it and waits for the server's answer and the end of the connection. */
  async close(code = 1000) {
    this.send(frame(OP.close, closePayload(code)));
    const f = await this.frame();
    assert.equal(f.opcode, OP.close);
    await this.closed;
    return f;
  }

  destroy() {
    this.sock.destroy();
  }
}

/**
 * Sends a WebSocket handshake for `path` (headers: extra or replacement headers; undefined
 * removes one; `extra`: bytes sent in the same write right after the request).
 * Resolves with {status, headers, ws} for a 101, or {status, headers, json} otherwise.
 */
export async function connect(srv, path, { headers = {}, extra } = {}) {
  const key = crypto.randomBytes(16).toString('base64');
  const all = {
    Host: `${srv.connectHost}:${srv.port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13',
    ...headers,
  };
  let req = `GET ${path} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(all)) if (v !== undefined) req += `${k}: ${v}\r\n`;
  req += '\r\n';
  // a server that serves https (lib/server.mjs): TLS with the test's options (its CA)
  const secure = srv.url.startsWith('https:');
  const sock = secure
    ? tls.connect({ host: srv.connectHost, port: srv.port, ...srv.tlsOptions })
    : net.connect({ host: srv.connectHost, port: srv.port });
  await once(sock, secure ? 'secureConnect' : 'connect');
  sock.write(extra ? Buffer.concat([Buffer.from(req), extra]) : req);
  let buf = Buffer.alloc(0);
  let end;
  const timer = setTimeout(() => sock.destroy(new Error(`no handshake answer within ${WAIT_MS} ms`)), WAIT_MS);
  try {
    while ((end = buf.indexOf('\r\n\r\n')) < 0) {
      const [d] = await Promise.race([once(sock, 'data'), once(sock, 'close').then(() => { throw new Error('closed during the handshake'); })]);
      buf = Buffer.concat([buf, d]);
    }
  } finally {
    clearTimeout(timer);
  }
  sock.pause();
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(lines[0].split(' ')[1]);
  const hdrs = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    hdrs[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const rest = buf.subarray(end + 4);
  validateResponse({ method: 'GET', path, status, headers: hdrs, body: status === 101 ? '' : rest.toString() });
  if (status === 101) {
    assert.equal(hdrs['sec-websocket-accept'], crypto.createHash('sha1').update(key + GUID).digest('base64'));
    assert.match(hdrs.upgrade, /^websocket$/i);
    assert.match(hdrs.connection, /upgrade/i);
    const ws = new WsClient(sock, rest);
    sock.resume();
    return { status, headers: hdrs, ws };
  }
  sock.destroy();
  throw new Error(`handshake answered ${lines[0]}: ${rest.toString()}`);
}
