// HTTP helpers for the black-box tests: `request` over fetch (every response is checked
// against docs/openapi.json), and `rawRequest` over a bare socket for what fetch cannot send.
import assert from 'node:assert/strict';
import net from 'node:net';
import { validateResponse } from './openapi.mjs';
import { recordSecretRequest } from './record.mjs';

const RAW_TIMEOUT_MS = 5000;
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function baseUrl(server) {
  return typeof server === 'string' ? server : server.url;
}

function isJson(ct) {
  return /^application\/(?:[\w.+-]+\+)?json\b/i.test(ct || '');
}

function headersObject(h) {
  const o = {};
  for (const [k, v] of h) o[k.toLowerCase()] = v;
  return o;
}

/**
 * request(server, method, path, {json, body, headers, validate})
 *   json: a value sent as JSON (Content-Type: application/json unless headers say otherwise)
 *   body: a raw string / Buffer body
 *   neither: a POST, PUT, PATCH or DELETE still says Content-Type: application/json unless
 *   headers say otherwise
 * Resolves with {status, headers (a Headers object), body (parsed JSON, or the text), text}.
 * JSON responses must parse, and every response must be one docs/openapi.json documents
 * (lib/openapi.mjs validateResponse; validate: false to skip).
 */
export async function request(server, method, path, opts = {}) {
  const { json, body, headers = {}, validate = true } = opts;
  recordSecretRequest(json, headers);
  const init = { method, headers: { ...headers }, redirect: 'manual' };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    if (!Object.keys(init.headers).some((k) => k.toLowerCase() === 'content-type')) {
      init.headers['Content-Type'] = 'application/json';
    }
  } else if (body !== undefined) {
    init.body = body;
  } else if (STATE_CHANGING.has(method) && !Object.keys(init.headers).some((k) => k.toLowerCase() === 'content-type')) {
    // goosed refuses a state-changing request that does not say application/json, even with no
    // body (a cross-site form cannot say it): a well-behaved client always does.
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(baseUrl(server) + path, init);
  const text = await res.text();
  let parsed = text;
  const ct = res.headers.get('content-type');
  if (isJson(ct)) {
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      assert.fail(`${method} ${path} -> ${res.status}: Content-Type ${ct} but the body is not JSON (${e.message}): ${text.slice(0, 500)}`);
    }
  }
  if (validate) {
    validateResponse({ method, path, status: res.status, headers: headersObject(res.headers), body: parsed });
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

export const get = (s, p, o) => request(s, 'GET', p, o);
export const post = (s, p, json, o = {}) => request(s, 'POST', p, json === undefined ? o : { ...o, json });
export const del = (s, p, o) => request(s, 'DELETE', p, o);

/** Asserts the server still answers GET /status with 200 `ok` (after a bad request). */
export async function assertAlive(server) {
  const r = await request(server, 'GET', '/status');
  assert.equal(r.status, 200, 'GET /status after the previous request');
  assert.equal(r.text, 'ok');
}

/** Asserts a JSON error response: status, `code`, and that `error` matches `message` (a RegExp or a string it must contain). */
export function assertError(res, status, code, message) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text}`);
  assert.match(res.headers.get('content-type') || '', /^application\/json; charset=utf-8$/i);
  assert.equal(typeof res.body, 'object', `error body should be JSON: ${res.text}`);
  assert.equal(res.body.code, code, `error code: ${res.text}`);
  assert.equal(typeof res.body.error, 'string');
  assert.ok(res.body.error.length > 0, 'error message must not be empty');
  if (message instanceof RegExp) assert.match(res.body.error, message);
  else if (message !== undefined) assert.ok(res.body.error.includes(message), `error message ${JSON.stringify(res.body.error)} should mention ${JSON.stringify(message)}`);
}

function parseResponseHead(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const statusLine = lines[0];
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i < 0) continue;
    const k = l.slice(0, i).trim().toLowerCase();
    const v = l.slice(i + 1).trim();
    headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
  }
  const m = statusLine.match(/^HTTP\/\d\.\d (\d{3})/);
  return { statusLine, status: m ? Number(m[1]) : null, headers, headEnd: end + 4 };
}

/** Length of a complete chunked body starting at buf[0], or -1 while incomplete. */
function chunkedEnd(buf) {
  let pos = 0;
  for (;;) {
    const nl = buf.indexOf('\r\n', pos);
    if (nl < 0) return -1;
    const size = parseInt(buf.subarray(pos, nl).toString('latin1'), 16);
    if (Number.isNaN(size)) return -1;
    pos = nl + 2;
    if (size === 0) {
      const fin = buf.indexOf('\r\n\r\n', pos - 2);
      return fin < 0 ? -1 : fin + 4;
    }
    if (buf.length < pos + size + 2) return -1;
    pos += size + 2;
  }
}

function dechunk(buf) {
  const out = [];
  let pos = 0;
  for (;;) {
    const nl = buf.indexOf('\r\n', pos);
    const size = parseInt(buf.subarray(pos, nl).toString('latin1'), 16);
    if (!size) return Buffer.concat(out);
    out.push(buf.subarray(nl + 2, nl + 2 + size));
    pos = nl + 2 + size + 2;
  }
}

/**
 * rawRequest(server | port, bytes, {host, timeoutMs, halfClose, interim, validate})
 * Writes `bytes` (string or Buffer, or an array of them written one after another) on a fresh
 * TCP connection and reads ONE response. Interim 1xx responses are skipped (interim(head) is called
 * for each). halfClose: end our side after writing. Resolves with {statusLine, status, headers
 * (lower-case names), body (text), json (parsed when JSON), raw}; status null if the server
 * closed without answering. Rejects after timeoutMs without a complete response. Every response
 * is checked against docs/openapi.json unless validate: false (for answers the HTTP library gives
 * to requests it cannot parse, which no spec documents).
 */
export function rawRequest(server, bytes, opts = {}) {
  const { timeoutMs = RAW_TIMEOUT_MS, halfClose = false, interim, validate = true } = opts;
  const port = typeof server === 'number' ? server : server.port;
  const host = opts.host ?? (typeof server === 'object' && server.connectHost) ?? '127.0.0.1';
  const chunks = Array.isArray(bytes) ? bytes : [bytes];
  const first = Buffer.from(chunks[0]).toString('latin1');
  const reqLine = first.slice(0, first.indexOf('\r\n')).split(' ');
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const sock = net.connect({ host, port });
    const finish = (err, res) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res);
    };
    const timer = setTimeout(() => finish(new Error(`no complete response within ${timeoutMs} ms; got: ${buf.toString('latin1').slice(0, 500)}`)), timeoutMs);
    const build = (head, bodyBuf) => {
      const res = { statusLine: head.statusLine, status: head.status, headers: head.headers, body: bodyBuf.toString('utf8'), raw: buf };
      if (isJson(head.headers['content-type'])) {
        try {
          res.json = JSON.parse(res.body);
        } catch (e) {
          return finish(new Error(`${head.statusLine}: Content-Type is JSON but the body is not: ${res.body.slice(0, 300)}`));
        }
      }
      if (validate && reqLine.length >= 2) {
        try {
          validateResponse({ method: reqLine[0], path: reqLine[1], status: head.status, headers: head.headers, body: res.json ?? res.body });
        } catch (e) {
          return finish(e);
        }
      }
      finish(null, res);
    };
    const tryParse = (closed) => {
      for (;;) {
        const head = parseResponseHead(buf);
        if (!head) {
          if (closed) finish(null, { statusLine: null, status: null, headers: {}, body: buf.toString('latin1'), raw: buf });
          return;
        }
        if (head.status >= 100 && head.status < 200) {
          if (interim) {
            try {
              interim(head, sock);
            } catch (e) {
              return finish(e);
            }
          }
          buf = buf.subarray(head.headEnd);
          continue;
        }
        const rest = buf.subarray(head.headEnd);
        const noBody = reqLine[0] === 'HEAD' || head.status === 204 || head.status === 304;
        if (noBody) return build(head, Buffer.alloc(0));
        if (/chunked/i.test(head.headers['transfer-encoding'] || '')) {
          const end = chunkedEnd(rest);
          if (end >= 0) return build(head, dechunk(rest.subarray(0, end)));
        } else if (head.headers['content-length'] !== undefined) {
          const n = Number(head.headers['content-length']);
          if (rest.length >= n) return build(head, rest.subarray(0, n));
        }
        if (closed) return build(head, rest);
        return;
      }
    };
    sock.on('connect', () => {
      for (const c of chunks) sock.write(c);
      if (halfClose) sock.end();
    });
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); tryParse(false); });
    sock.on('end', () => tryParse(true));
    sock.on('close', () => tryParse(true));
    sock.on('error', (e) => {
      // A reset after a complete response, or instead of one, is an answer too.
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') tryParse(true);
      else finish(e);
    });
  });
}

// New sessions and messages get time-ordered version-7 UUIDs.
export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
export const RFC3339_S = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

/** Asserts `s` is a Session as the contract defines it; `want` fields must match exactly. */
export function assertSession(s, want = {}) {
  assert.equal(typeof s, 'object');
  for (const k of ['created_at', 'id', 'input_tokens', 'message_count', 'name', 'output_tokens',
    'total_tokens', 'updated_at', 'working_dir', 'working_directory']) {
    assert.ok(k in s, `a Session has ${k}: ${JSON.stringify(s)}`);
  }
  assert.match(s.id, UUID_V7);
  assert.equal(typeof s.name, 'string');
  assert.equal(typeof s.working_dir, 'string');
  assert.equal(s.working_directory, s.working_dir, 'working_directory and working_dir are the same value');
  assert.match(s.created_at, RFC3339_S);
  assert.match(s.updated_at, RFC3339_S);
  assert.ok(!Number.isNaN(Date.parse(s.created_at)));
  for (const k of ['message_count', 'input_tokens', 'output_tokens', 'total_tokens']) {
    assert.ok(Number.isInteger(s[k]) && s[k] >= 0, `${k}: ${s[k]}`);
  }
  for (const [k, v] of Object.entries(want)) assert.deepEqual(s[k], v, `session.${k}`);
}
