// The HTTP layer: 404/405/413/415/400 answers, request ids, CORS, hostile requests, the access log.
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { startServer, stopAndCheck } from './lib/server.mjs';
import { request, get, post, rawRequest, assertError, assertAlive, assertSession } from './lib/http.mjs';

const LIMIT = 2048;
const ALLOWED = 'https://app.example.com';
const ALLOWED2 = 'http://localhost:5173';
const RID = /^[A-Za-z0-9._-]{1,128}$/;

function allowSet(h) {
  return new Set((h || '').split(',').map((m) => m.trim().toUpperCase()).filter(Boolean));
}

/** A JSON object body of exactly n bytes (spaces after the object). */
function bodyOfSize(n) {
  const s = '{"name":"sized"}';
  return s + ' '.repeat(n - s.length);
}

function rawPost(path, headers, body = '') {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const head = `POST ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), b]);
}

/** Writes bytes on a new connection and closes it (no half-close) 100 ms later, without an answer. */
function sendAndDisconnect(srv, bytes) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: srv.connectHost, port: srv.port }, () => {
      sock.write(bytes, () => setTimeout(() => { sock.destroy(); resolve(); }, 100));
    });
    sock.on('data', (d) => { sock.destroy(); reject(new Error(`the server answered an incomplete request: ${d.toString('latin1').slice(0, 200)}`)); });
    sock.on('error', reject);
  });
}

describe('http', () => {
  let srv;
  before(async () => {
    srv = await startServer({ env: { GOOSE_MAX_BODY_SIZE: String(LIMIT), GOOSE_CORS_ORIGINS: `${ALLOWED},${ALLOWED2}` } });
  });
  after(() => stopAndCheck(srv));
  // Whatever a test sent, the server is still there for the next client.
  afterEach(() => assertAlive(srv));

  describe('unknown paths and methods', () => {
    for (const p of ['/nope', '/api/nope', '/api', '/api/sessions/x/y/z', '/status/x', '/api/sessions/x/messages/y', '/../../etc/passwd']) {
      it(`GET ${p} is 404 JSON`, async () => {
        const r = await get(srv, p);
        assertError(r, 404, 'not_found');
        assert.match(r.headers.get('x-request-id'), RID);
      });
    }

    it('the 404 message names the path', async () => {
      const r = await get(srv, '/no/such/thing');
      assertError(r, 404, 'not_found', '/no/such/thing');
    });

    it('POST to an unknown path with a body is 404', async () => {
      assertError(await post(srv, '/api/nothing-here', { a: 1 }), 404, 'not_found');
    });

    for (const [method, p, allowed] of [
      ['PUT', '/api/sessions', ['GET', 'POST']],
      ['DELETE', '/sessions', ['GET', 'POST']],
      ['PATCH', '/status', ['GET']],
      ['DELETE', '/api/health', ['GET']],
      ['POST', '/openapi.json', ['GET']],
      ['POST', '/api/sessions/0b7c4f0e-9a55-4a53-b1d9-1c1f1b6f0b9a', ['GET', 'DELETE']],
      ['PUT', '/sessions/some-id', ['GET', 'DELETE']],
      ['DELETE', '/api/sessions/some-id/messages', ['GET']],
    ]) {
      it(`${method} ${p} is 405 with Allow: ${allowed.join(', ')}, OPTIONS`, async () => {
        const r = await request(srv, method, p);
        assertError(r, 405, 'method_not_allowed');
        const allow = allowSet(r.headers.get('allow'));
        for (const m of [...allowed, 'OPTIONS']) assert.ok(allow.has(m), `Allow: ${r.headers.get('allow')} lacks ${m}`);
        assert.ok(!allow.has(method), `Allow: ${r.headers.get('allow')} lists ${method}`);
      });
    }
  });

  describe('path ids that are no identifier', () => {
    // A session id is a lowercase UUID; anything else names no session, whatever the route: 404
    // not_found naming it, never another code.
    // Segments that are not UTF-8 once decoded are refused before any route: 400 naming the
    // segment as sent (tests/api/edge.test.mjs has the rest of the raw-path rules).
    const cases = [
      ['GET', '/api/sessions/%FF%FE', 400, 'bad_request', 'path segment 3 ("%FF%FE")'],
      ['GET', '/sessions/%C0%AF', 400, 'bad_request', 'path segment 2 ("%C0%AF")'],
      ['GET', '/api/sessions/%ED%A0%80/messages', 400, 'bad_request', 'path segment 3 ("%ED%A0%80")'],
      ['DELETE', '/api/sessions/caf%C3%A9', 404, 'not_found', "session 'café' not found"],
      ['GET', '/api/sessions/not-a-uuid/events', 404, 'not_found', "session 'not-a-uuid' not found"],
      ['POST', '/api/sessions/0B7C4F0E-9A55-4A53-B1D9-1C1F1B6F0B9A/cancel', 404, 'not_found', "session '0B7C4F0E-9A55-4A53-B1D9-1C1F1B6F0B9A' not found"],
      ['POST', '/api/sessions/%FF/messages', 400, 'bad_request', 'path segment 3 ("%FF")'],
      ['POST', '/api/sessions/not-a-uuid/messages/stream', 404, 'not_found', "session 'not-a-uuid' not found"],
      ['POST', '/sessions/%FF/messages', 400, 'bad_request', 'path segment 2 ("%FF")'],
    ];
    for (const [method, p, status, code, message] of cases) {
      it(`${method} ${p} is ${status} ${code} naming the ${status === 404 ? 'id' : 'segment'}`, async () => {
        const body = method === 'POST' && !p.endsWith('/cancel') ? { content: 'hi' } : undefined;
        // The spec check decodes the path, which cannot be done for bytes that are not UTF-8.
        let utf8 = true;
        try { decodeURIComponent(p); } catch { utf8 = false; }
        const r = await request(srv, method, p, { ...(body ? { json: body } : {}), validate: utf8 });
        assertError(r, status, code, message);
      });
    }
  });

  describe('request bodies', () => {
    it(`a body of exactly max_body_size (${LIMIT}) bytes is accepted`, async () => {
      const r = await request(srv, 'POST', '/api/sessions', { body: bodyOfSize(LIMIT), headers: { 'Content-Type': 'application/json' } });
      assert.equal(r.status, 201, r.text);
      assertSession(r.body, { name: 'sized' });
    });

    it('one byte over max_body_size is 413', async () => {
      const r = await request(srv, 'POST', '/api/sessions', { body: bodyOfSize(LIMIT + 1), headers: { 'Content-Type': 'application/json' } });
      assertError(r, 413, 'payload_too_large');
    });

    it('a 1 MB body is 413', async () => {
      const r = await request(srv, 'POST', '/sessions', { body: bodyOfSize(1 << 20), headers: { 'Content-Type': 'application/json' } });
      assertError(r, 413, 'payload_too_large');
    });

    it('a declared Content-Length of 10 GB is 413 before any body is sent', async () => {
      const r = await rawRequest(srv, rawPost('/api/sessions', ['Content-Type: application/json', 'Content-Length: 10000000000']));
      assert.equal(r.status, 413, r.statusLine);
      assert.equal(r.json.code, 'payload_too_large');
      assert.match(r.headers['x-request-id'], RID);
    });

    it('a chunked body over the limit is 413', async () => {
      const data = bodyOfSize(LIMIT + 500);
      const chunks = [];
      for (let i = 0; i < data.length; i += 700) {
        const c = data.slice(i, i + 700);
        chunks.push(`${c.length.toString(16)}\r\n${c}\r\n`);
      }
      chunks.push('0\r\n\r\n');
      const r = await rawRequest(srv, rawPost('/api/sessions', ['Content-Type: application/json', 'Transfer-Encoding: chunked'], chunks.join('')));
      assert.equal(r.status, 413, r.statusLine);
      assert.equal(r.json.code, 'payload_too_large');
    });

    it('a chunked body that goes on past what is read and dropped (4 × max_body_size, at least 16 MiB) is 413 too, not a reset', async () => {
      const sock = net.connect(srv.port, '127.0.0.1');
      await once(sock, 'connect');
      let answer = '';
      const answered = new Promise((resolve) => sock.on('data', (d) => { answer += d; if (answer.includes('\r\n\r\n')) resolve(); }));
      sock.on('error', () => {});
      sock.write(`POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const chunk = `10000\r\n${'x'.repeat(0x10000)}\r\n`;
      let stop = false;
      answered.then(() => { stop = true; });
      // what a client does: sends until the server answers (it drops at least 16 MiB)
      for (let sent = 0; !stop && sent < 24 << 20;) {
        if (sock.destroyed) break; // the server closed after its answer: the answer came first
        if (!sock.write(chunk)) await Promise.race([once(sock, 'drain').catch(() => {}), answered]);
        else await new Promise((r) => setImmediate(r)); // the answer is read as it comes
        sent += 0x10000;
      }
      await Promise.race([answered, once(sock, 'close')]);
      sock.destroy();
      assert.match(answer, /^HTTP\/1\.1 413 /);
      assert.match(answer, /connection: close/i);
    });

    it('a chunked body whose framing has a bare LF is 400, not read otherwise than a proxy in front might', async () => {
      for (const body of ['2\n{}\n0\n\n', '2\r\n{}\n0\r\n\r\n', '2\r\n{}\r\n0\r\nX: 1\n\r\n']) {
        const r = await rawRequest(srv, rawPost('/api/sessions', ['Content-Type: application/json', 'Transfer-Encoding: chunked'], body));
        assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.statusLine}`);
        assert.match(r.json.error, /malformed chunked body/);
      }
    });

    it('a small chunked body is read like any other', async () => {
      const j = '{"name":"chunky"}';
      const r = await rawRequest(srv, rawPost('/api/sessions', ['Content-Type: application/json', 'Transfer-Encoding: chunked'],
        `5\r\n${j.slice(0, 5)}\r\n${(j.length - 5).toString(16)}\r\n${j.slice(5)}\r\n0\r\n\r\n`));
      assert.equal(r.status, 201, r.body);
      assertSession(r.json, { name: 'chunky' });
    });

    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonp', 'application/json-seq', 'text/json']) {
      it(`a JSON body sent as ${ct} is 415`, async () => {
        const r = await request(srv, 'POST', '/api/sessions', { body: '{"name":"x"}', headers: { 'Content-Type': ct } });
        assertError(r, 415, 'unsupported_media_type');
      });
    }

    it('a body without Content-Type is 415', async () => {
      const r = await rawRequest(srv, rawPost('/api/sessions', ['Content-Length: 12'], '{"name":"x"}'));
      assert.equal(r.status, 415, r.statusLine);
      assert.equal(r.json.code, 'unsupported_media_type');
    });

    it('an empty body with another Content-Type is 415 (a cross-site form posts just that)', async () => {
      const r = await request(srv, 'POST', '/api/sessions', { body: '', headers: { 'Content-Type': 'text/plain' } });
      assertError(r, 415, 'unsupported_media_type');
    });

    it('Content-Type is matched case-insensitively', async () => {
      const r = await request(srv, 'POST', '/api/sessions', { body: '{"name":"CT"}', headers: { 'Content-Type': 'Application/JSON; Charset=UTF-8' } });
      assert.equal(r.status, 201, r.text);
    });

    for (const [what, body] of [
      ['truncated', '{"name":'],
      ['a trailing comma', '{"name": "x",}'],
      ['single quotes', "{'name': 'x'}"],
      ['trailing garbage', '{"name": "x"} {"name": "y"}'],
      ['a bare word', 'hello'],
      ['an unterminated string', '{"name": "x'],
      ['a control character in a string', '{"name": "a\u0001b"}'],
      ['a lone surrogate escape', '{"name": "\\ud800"}'],
    ]) {
      it(`invalid JSON (${what}) is 400 invalid_json saying where`, async () => {
        const r = await request(srv, 'POST', '/api/sessions', { body, headers: { 'Content-Type': 'application/json' } });
        assertError(r, 400, 'invalid_json', /json/i);
        assert.match(r.body.error, /\d/, 'the message says where (a line, column or byte)');
      });
    }

    it('a string holding \\u0000 is 400 invalid_json saying so in words, not in the JSON library\'s', async () => {
      const r = await request(srv, 'POST', '/api/sessions', { body: '{"name": "a\\u0000b"}', headers: { 'Content-Type': 'application/json' } });
      assertError(r, 400, 'invalid_json', /a string holds \\u0000 \(NUL\), which is not taken \(line 1, column \d+\)/);
      assert.doesNotMatch(r.body.error, /JSON_/);
    });

    for (const [what, bytes] of [
      ['0xff 0xfe', [0xff, 0xfe]],
      ['a truncated sequence', [0xc3]],
      ['an overlong encoding', [0xc0, 0xaf]],
      ['an encoded surrogate', [0xed, 0xa0, 0x80]],
    ]) {
      it(`a body that is not UTF-8 (${what}) is 400 invalid_json mentioning UTF-8`, async () => {
        const body = Buffer.concat([Buffer.from('{"name":"a'), Buffer.from(bytes), Buffer.from('b"}')]);
        const r = await rawRequest(srv, rawPost('/api/sessions', ['Content-Type: application/json', `Content-Length: ${body.length}`], body));
        assert.equal(r.status, 400, r.statusLine);
        assert.equal(r.json.code, 'invalid_json');
        assert.match(r.json.error, /utf-?8/i);
      });
    }

    for (const body of ['[]', '[{"name":"x"}]', '"x"', '1', 'null', 'false']) {
      it(`a JSON body that is not an object (${body}) is 400`, async () => {
        const r = await request(srv, 'POST', '/api/sessions', { body, headers: { 'Content-Type': 'application/json' } });
        assert.equal(r.status, 400, r.text);
        assert.ok(['invalid_json', 'bad_request'].includes(r.body.code), r.text);
        assert.match(r.body.error, /object/i);
      });
    }

    it('duplicate keys do not crash the server', async () => {
      const r = await request(srv, 'POST', '/api/sessions', { body: '{"name":"a","name":"b"}', headers: { 'Content-Type': 'application/json' } });
      assert.ok([201, 400].includes(r.status), r.text);
    });
  });

  describe('request ids', () => {
    const cases = [
      ['GET', '/status'], ['GET', '/api/health'], ['GET', '/nope'], ['PUT', '/status'], ['POST', '/api/sessions'],
    ];
    for (const [method, p] of cases) {
      it(`${method} ${p} echoes a valid X-Request-Id`, async () => {
        const rid = `Req-${method}.${p.length}_abc-123`;
        const r = await request(srv, method, p, { headers: { 'X-Request-Id': rid } });
        assert.equal(r.headers.get('x-request-id'), rid);
      });
    }

    it('a 128-character id is echoed', async () => {
      const rid = 'a'.repeat(120) + '.-_Z0129';
      assert.equal(rid.length, 128);
      const r = await get(srv, '/status', { headers: { 'X-Request-Id': rid } });
      assert.equal(r.headers.get('x-request-id'), rid);
    });

    for (const [what, rid] of [
      ['129 characters', 'b'.repeat(129)],
      ['a space', 'bad id'],
      ['a slash', 'a/b'],
      ['a quote', 'x"y'],
      ['a colon', 'a:b'],
      ['4 KB', 'c'.repeat(4096)],
    ]) {
      it(`an id with ${what} is replaced by a fresh one`, async () => {
        const r = await get(srv, '/status', { headers: { 'X-Request-Id': rid } });
        const got = r.headers.get('x-request-id');
        assert.match(got, RID);
        assert.notEqual(got, rid);
      });
    }

    it('an id with non-ASCII bytes is replaced', async () => {
      const r = await rawRequest(srv, Buffer.concat([Buffer.from('GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Request-Id: caf'), Buffer.from([0xc3, 0xa9]), Buffer.from('\r\n\r\n')]));
      assert.equal(r.status, 200);
      assert.match(r.headers['x-request-id'], RID);
      assert.notEqual(r.headers['x-request-id'], 'café');
    });

    it('an empty id is replaced', async () => {
      const r = await rawRequest(srv, 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Request-Id: \r\n\r\n');
      assert.equal(r.status, 200);
      assert.match(r.headers['x-request-id'], RID);
    });

    it('413 and 415 answers carry the request id too', async () => {
      const a = await request(srv, 'POST', '/api/sessions', { body: bodyOfSize(LIMIT * 2), headers: { 'Content-Type': 'application/json', 'X-Request-Id': 'too-big-1' } });
      assert.equal(a.status, 413);
      assert.equal(a.headers.get('x-request-id'), 'too-big-1');
      const b = await request(srv, 'POST', '/api/sessions', { body: 'x', headers: { 'Content-Type': 'text/plain', 'X-Request-Id': 'wrong-type-1' } });
      assert.equal(b.status, 415);
      assert.equal(b.headers.get('x-request-id'), 'wrong-type-1');
    });
  });

  describe('CORS', () => {
    for (const origin of [ALLOWED, ALLOWED2]) {
      it(`an allowed Origin (${origin}) gets Access-Control-Allow-Origin and Vary: Origin`, async () => {
        const r = await get(srv, '/status', { headers: { Origin: origin } });
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('access-control-allow-origin'), origin);
        assert.match(r.headers.get('vary') || '', /\bOrigin\b/i);
      });
    }

    it('an allowed Origin is answered on JSON, created and error responses too', async () => {
      for (const r of [
        await get(srv, '/api/health', { headers: { Origin: ALLOWED } }),
        await post(srv, '/api/sessions', {}, { headers: { Origin: ALLOWED } }),
        await get(srv, '/api/nope', { headers: { Origin: ALLOWED } }),
      ]) {
        assert.equal(r.headers.get('access-control-allow-origin'), ALLOWED, `status ${r.status}`);
      }
    });

    for (const origin of ['https://evil.example', 'https://app.example.com.evil.example', 'http://app.example.com', 'null', 'https://app.example.co']) {
      it(`a denied Origin (${origin}) gets no Access-Control-Allow-Origin`, async () => {
        const r = await get(srv, '/api/health', { headers: { Origin: origin } });
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('access-control-allow-origin'), null);
      });
    }

    it('no Origin, no CORS headers', async () => {
      const r = await get(srv, '/status');
      assert.equal(r.headers.get('access-control-allow-origin'), null);
    });

    for (const [p, methods] of [['/api/sessions', ['GET', 'POST']], ['/sessions', ['GET', 'POST']], ['/api/sessions/abc', ['GET', 'DELETE']], ['/status', ['GET']]]) {
      it(`preflight OPTIONS ${p} from an allowed origin: 204 with the CORS headers`, async () => {
        const r = await request(srv, 'OPTIONS', p, {
          headers: { Origin: ALLOWED, 'Access-Control-Request-Method': methods.at(-1), 'Access-Control-Request-Headers': 'content-type, x-request-id' },
        });
        assert.equal(r.status, 204);
        assert.equal(r.text, '');
        assert.equal(r.headers.get('access-control-allow-origin'), ALLOWED);
        const am = allowSet(r.headers.get('access-control-allow-methods'));
        for (const m of methods) assert.ok(am.has(m), `Access-Control-Allow-Methods: ${r.headers.get('access-control-allow-methods')} lacks ${m}`);
        const ah = (r.headers.get('access-control-allow-headers') || '').toLowerCase();
        assert.match(ah, /content-type/);
        assert.match(ah, /x-request-id/);
        assert.match(r.headers.get('access-control-max-age') || '', /^\d+$/);
        assert.ok(Number(r.headers.get('access-control-max-age')) > 0);
      });
    }

    // (a DELETE or PATCH without a body needs no Content-Type because a page must ask this first)
    for (const [method, path] of [['POST', '/api/sessions'], ['DELETE', '/api/sessions/00000000-0000-4000-8000-000000000000'], ['PATCH', '/api/extensions/x/toggle']]) {
      it(`preflight of a ${method} from a denied origin: 204 without the CORS headers`, async () => {
        const r = await request(srv, 'OPTIONS', path, {
          headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': method },
        });
        assert.equal(r.status, 204);
        for (const h of ['access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-max-age']) {
          assert.equal(r.headers.get(h), null, `${h} on a denied preflight`);
        }
      });
    }
  });

  describe('hostile and malformed requests', () => {
    for (const line of ['GARBAGE', 'GET', 'GET /status HTTP/1.1 extra', 'GET  HTTP/1.1', '\x00\x01\x02 / HTTP/1.1']) {
      it(`a malformed request line (${JSON.stringify(line)}) is 400 or a closed connection, never served`, async () => {
        const r = await rawRequest(srv, `${line}\r\nHost: localhost\r\n\r\n`, { validate: false });
        assert.ok(r.status === null || r.status === 400, r.statusLine);
      });
    }

    it('a header line without a colon is 400', async () => {
      const r = await rawRequest(srv, 'GET /status HTTP/1.1\r\nHost: localhost\r\nNoColonHere\r\n\r\n', { validate: false });
      assert.equal(r.status, 400, r.statusLine ?? 'connection closed without an answer');
    });

    for (const cl of ['abc', '-5', '12abc', '99999999999999999999999999']) {
      it(`Content-Length: ${cl} is refused (400 or 413), not served`, async () => {
        const r = await rawRequest(srv, rawPost('/api/sessions', ['Content-Type: application/json', `Content-Length: ${cl}`], '{}'), { validate: false });
        assert.ok(r.status === 400 || r.status === 413, r.statusLine ?? 'connection closed without an answer');
      });
    }

    it('two different Content-Length headers are 400', async () => {
      const r = await rawRequest(srv, rawPost('/api/sessions', ['Content-Type: application/json', 'Content-Length: 2', 'Content-Length: 3'], '{} '), { validate: false });
      assert.equal(r.status, 400, r.statusLine ?? 'connection closed without an answer');
    });

    it('a client that disconnects in the middle of its body: nothing stored', async () => {
      const before = (await get(srv, '/api/sessions')).headers.get('x-total-count');
      await sendAndDisconnect(srv, rawPost('/api/sessions', ['Content-Type: application/json', 'Content-Length: 100'], '{"name":"short"}'));
      const after = await get(srv, '/api/sessions');
      assert.equal(after.headers.get('x-total-count'), before);
      assert.ok(!after.body.some((s) => s.name === 'short'));
    });

    it('a 64 KB request target is refused with a 4xx', async () => {
      const r = await rawRequest(srv, `GET /${'a'.repeat(65536)} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`, { validate: false });
      assert.ok(r.status >= 400 && r.status < 500, r.statusLine ?? 'connection closed without an answer');
    });

    // The request line and headers may take 16 KiB (http/server.c HEAD_MAX): headers of 15 KB
    // are served, larger ones get 431 (our JSON, once), and the server goes on.
    it('request headers: 15 KB are served, 17 KB get 431', async () => {
      const ok = await rawRequest(srv, `GET /status HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(15000)}\r\nConnection: close\r\n\r\n`, { validate: false });
      assert.equal(ok.status, 200, ok.statusLine ?? 'connection closed without an answer');
      const big = await rawRequest(srv, `GET /status HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(17000)}\r\nConnection: close\r\n\r\n`, { validate: false });
      assert.equal(big.status, 431, big.statusLine ?? 'connection closed without an answer');
      assert.equal(big.json?.code, 'headers_too_large', big.body);
      await assertAlive(srv);
    });

    // At most 128 header fields (http/h1.h H1_MAX_HEADERS): 128 are served, the 129th is a 431.
    it('header fields: 128 are served, 129 get 431', async () => {
      const fields = (n) => Array.from({ length: n - 2 }, (_, i) => `X-F${i}: ${i}\r\n`).join('');
      const head = (n) => `GET /status HTTP/1.1\r\nHost: localhost\r\n${fields(n)}Connection: close\r\n\r\n`;
      const ok = await rawRequest(srv, head(128), { validate: false });
      assert.equal(ok.status, 200, ok.statusLine ?? 'connection closed without an answer');
      const over = await rawRequest(srv, head(129), { validate: false });
      assert.equal(over.status, 431, over.statusLine ?? 'connection closed without an answer');
      assert.equal(over.json?.code, 'headers_too_large', over.body);
      await assertAlive(srv);
    });

    it('a connection closed in the middle of the headers does no harm', async () => {
      await sendAndDisconnect(srv, 'GET /status HTTP/1.1\r\nHost: localhost\r\nX-Half');
    });

    it('HTTP/1.0 without Host is served', async () => {
      const r = await rawRequest(srv, 'GET /status HTTP/1.0\r\n\r\n');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'ok');
    });
  });
});

describe('CORS with cors_origins "*" and default limits', () => {
  let srv;
  before(async () => { srv = await startServer({ configYaml: 'cors_origins: "*"\n' }); });
  after(() => stopAndCheck(srv));

  it('any Origin is allowed and echoed', async () => {
    for (const origin of ['https://a.example', 'http://localhost:1234']) {
      const r = await get(srv, '/status', { headers: { Origin: origin } });
      assert.equal(r.headers.get('access-control-allow-origin'), origin);
      assert.match(r.headers.get('vary') || '', /\bOrigin\b/i);
    }
  });

  it('preflight from any origin gets the CORS headers', async () => {
    const r = await request(srv, 'OPTIONS', '/api/sessions', { headers: { Origin: 'https://b.example', 'Access-Control-Request-Method': 'POST' } });
    assert.equal(r.status, 204);
    assert.equal(r.headers.get('access-control-allow-origin'), 'https://b.example');
    assert.ok(allowSet(r.headers.get('access-control-allow-methods')).has('POST'));
  });

  it('a JSON document nested 100 000 levels deep is refused, not a crash', async () => {
    const body = `{"name":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const r = await request(srv, 'POST', '/api/sessions', { body, headers: { 'Content-Type': 'application/json' } });
    assert.equal(r.status, 400, r.text);
    await assertAlive(srv);
  });

  it('a body of 2 MB is accepted under the default limit of 10 MB', async () => {
    const r = await request(srv, 'POST', '/api/sessions', { body: bodyOfSize(2 << 20), headers: { 'Content-Type': 'application/json' } });
    assert.equal(r.status, 201, r.text.slice(0, 200));
  });
});

describe('access log', () => {
  it('one line per request: method, path, status, request id', async () => {
    const srv = await startServer();
    const sent = [
      ['GET', '/status', 200, 'log-a1'],
      ['GET', '/api/health', 200, 'log-a2'],
      ['POST', '/api/sessions', 201, 'log-a3'],
      ['GET', '/nope', 404, 'log-a4'],
      ['PUT', '/status', 405, 'log-a5'],
      ['GET', '/api/sessions', 200, 'log-a6'],
    ];
    try {
      for (const [method, p, status, rid] of sent) {
        const r = await request(srv, method, p, { headers: { 'X-Request-Id': rid } });
        assert.equal(r.status, status);
      }
      // One without a client id: the log names the id the response carried.
      const r = await get(srv, '/status');
      sent.push(['GET', '/status', 200, r.headers.get('x-request-id')]);
      const bad = await rawRequest(srv, rawPost('/api/sessions', ['Content-Type: application/json', 'Content-Length: 10000000000', 'X-Request-Id: log-a7']));
      assert.equal(bad.status, 413);
      sent.push(['POST', '/api/sessions', 413, 'log-a7']);
    } finally {
      await stopAndCheck(srv); // every line is written once the server has exited
    }
    const lines = srv.log().split('\n').filter((l) => / access: /.test(l));
    assert.equal(lines.length, sent.length, `one access line per request:\n${lines.join('\n')}`);
    for (const [method, p, status, rid] of sent) {
      const mine = lines.filter((l) => l.endsWith(` rid=${rid}`) || l.includes(` rid=${rid} `));
      assert.equal(mine.length, 1, `access lines for rid=${rid}:\n${lines.join('\n')}`);
      const re = new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z INFO +access: 127\\.0\\.0\\.1 "${method} ${p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}" ${status} \\d+ \\d+(\\.\\d+)?ms rid=${rid}\\b`);
      assert.match(mine[0], re);
    }
  });
});
