// TLS on goosed itself: tls_cert and tls_key (PEM files), or tls_self_signed (a pair made at the
// first start in the data directory, reused after). Over real sockets with node:https and
// node:tls: the certificate served is the one configured, the fingerprint printed is that of the
// certificate served, SSE and the WebSocket work through TLS, plain HTTP to the port is closed,
// and bad files stop the start with a message naming them. The test certificates are made with
// openssl (skipped without it).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, statSync, chmodSync, existsSync } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { startServer, stopAndCheck, runGoosed, tempDir, have, GOOSED_BIN } from './lib/server.mjs';
import { connect } from './lib/ws.mjs';
import { parseSSE, startFake } from '../fakes/lib.mjs';

const WAIT_MS = 10_000; // an answer (or a close) that has not come by then is a failure
const KEY = 'sk-test-key';
const FINGERPRINT = /TLS certificate SHA-256 fingerprint: ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})/;
const skip = have('openssl') ? false : 'openssl is not installed (scripts/deps.sh test)';

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A test CA and, signed by it, a certificate for localhost and 127.0.0.1; another key; an
 *  encrypted key; all in a fresh directory. */
function makeCerts() {
  const d = tempDir('goosed-tls-certs-');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=goosed test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'], d);
  openssl(['req', '-new', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], d);
  writeFileSync(path.join(d, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '1', '-days', '2',
    '-extfile', 'ext.cnf', '-out', 'server.pem'], d);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'other.key'], d);
  openssl(['pkey', '-in', 'server.key', '-aes256', '-passout', 'pass:secret', '-out', 'encrypted.key'], d);
  openssl(['x509', '-in', 'server.pem', '-outform', 'der', '-out', 'server.der'], d);
  chmodSync(path.join(d, 'server.key'), 0o600);
  const f = (n) => path.join(d, n);
  return {
    dir: d, ca: readFileSync(f('ca.pem')), cert: f('server.pem'), key: f('server.key'), otherKey: f('other.key'),
    encryptedKey: f('encrypted.key'), der: f('server.der'), caKey: f('ca.key'),
    fingerprint: new crypto.X509Certificate(readFileSync(f('server.pem'))).fingerprint256,
  };
}

/** One HTTPS request; resolves with {status, headers, text, cert (the peer's certificate)}. */
function httpsRequest(srv, method, p, { headers = {}, json, ca = srv.tlsOptions?.ca, rejectUnauthorized = true, noCa = false } = {}) {
  return new Promise((resolve, reject) => {
    const body = json === undefined ? undefined : JSON.stringify(json);
    const hdrs = { ...headers };
    if (body !== undefined || ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) hdrs['Content-Type'] ??= 'application/json';
    const req = https.request({ host: srv.connectHost, port: srv.port, method, path: p, headers: hdrs, ca: noCa ? undefined : ca, rejectUnauthorized, agent: false }, (res) => {
      const cert = res.socket.getPeerCertificate();
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text, cert }));
      res.on('error', reject);
    });
    req.setTimeout(WAIT_MS, () => req.destroy(new Error(`no answer to ${method} ${p} within ${WAIT_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The certificate a TLS handshake with the server presents, trusting anything (as a client
 *  that pins the fingerprint does before comparing it). */
async function servedCert(srv) {
  const sock = tls.connect({ host: srv.connectHost, port: srv.port, rejectUnauthorized: false });
  await once(sock, 'secureConnect');
  const cert = sock.getPeerCertificate();
  sock.destroy();
  return cert;
}

/** Resolves once the server's stdout has a line GOOSED_CERT_FINGERPRINT=<fp> (stdout and stderr
 *  are separate pipes: the listening line on stderr may be read first). */
function printedFingerprint(srv, fp) {
  const re = new RegExp(`^GOOSED_CERT_FINGERPRINT=${fp}$`, 'm');
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!re.test(srv.stdout())) return;
      clearTimeout(timer);
      srv.proc.stdout.off('data', later);
      resolve();
    };
    const later = () => setImmediate(check); // after lib/server.mjs has added the data
    const timer = setTimeout(() => {
      srv.proc.stdout.off('data', later);
      reject(new Error(`stdout has no GOOSED_CERT_FINGERPRINT=${fp}: ${JSON.stringify(srv.stdout())}`));
    }, WAIT_MS);
    srv.proc.stdout.on('data', later);
    check();
  });
}

function yaml(o) {
  return Object.entries(o).map(([k, v]) => `${k}: ${JSON.stringify(v)}\n`).join('');
}

describe('TLS with certificate and key files', { skip }, () => {
  let certs;
  let fake;
  let srv;
  let dir;
  before(async () => {
    certs = makeCerts();
    fake = await startFake({ keys: { openai: KEY } });
    dir = tempDir('goosed-tls-cwd-');
    srv = await startServer({
      // header_timeout: a plain-HTTP client is closed by the handshake's failure, not by the deadline
      configYaml: yaml({ tls_cert: certs.cert, tls_key: certs.key, header_timeout: 3600 }),
      env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY },
      tlsOptions: { ca: certs.ca },
    });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it('serves https with that certificate, and prints its fingerprint', async () => {
    assert.match(srv.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(srv.log(), /listening on https:\/\/127\.0\.0\.1:\d+/);
    const r = await httpsRequest(srv, 'GET', '/status'); // verified against the test CA
    assert.deepEqual([r.status, r.text], [200, 'ok']);
    assert.equal(r.cert.fingerprint256, certs.fingerprint, 'the certificate served is tls_cert');
    assert.equal(srv.log().match(FINGERPRINT)[1], certs.fingerprint);
    await printedFingerprint(srv, certs.fingerprint);
    // by name too: the certificate names localhost
    const byName = await httpsRequest({ ...srv, connectHost: 'localhost' }, 'GET', '/status', { headers: { Host: `localhost:${srv.port}` } });
    assert.equal(byName.status, 200);
  });

  it('a client without the CA refuses the server (it is really checked)', async () => {
    await assert.rejects(httpsRequest(srv, 'GET', '/status', { noCa: true }), /self[- ]signed|unable to (get|verify)/i);
  });

  it('the strict edge over https: own https origin allowed, the http one and rebound hosts refused', async () => {
    const own = await httpsRequest(srv, 'POST', '/api/sessions', {
      json: { name: 'tls', working_directory: dir }, headers: { Origin: `https://127.0.0.1:${srv.port}` },
    });
    assert.equal(own.status, 201, own.text);
    const plain = await httpsRequest(srv, 'POST', '/api/sessions', {
      json: { name: 'tls', working_directory: dir }, headers: { Origin: `http://127.0.0.1:${srv.port}` },
    });
    assert.equal(plain.status, 403, 'an http:// page is not this https server');
    assert.equal(JSON.parse(plain.text).code, 'forbidden_origin');
    // (the client does not check the name: the server is what is tested)
    const rebound = await httpsRequest(srv, 'GET', '/api/sessions', { headers: { Host: `evil.example:${srv.port}` }, rejectUnauthorized: false });
    assert.equal(rebound.status, 421);
  });

  it('an SSE reply streams through TLS (the first chunk before the provider is done)', async () => {
    const s = await httpsRequest(srv, 'POST', '/api/sessions', { json: { name: 'sse', working_directory: dir } });
    const id = JSON.parse(s.text).id;
    await fake.script([{ text: 'first second', chunks: 2, stall_after: 1, stall_ms: 20000 }]);
    const events = await new Promise((resolve, reject) => {
      const req = https.request({
        host: srv.connectHost, port: srv.port, method: 'POST', path: `/api/sessions/${id}/messages/stream`, ca: certs.ca, agent: false,
        headers: { 'Content-Type': 'application/json' },
      }, (res) => {
        assert.equal(res.statusCode, 200);
        assert.match(res.headers['content-type'], /^text\/event-stream/);
        let text = '';
        let cancelled = false;
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
          // the provider is stalled after its first chunk: that chunk came through TLS as it was made
          if (!cancelled && parseSSE(text).some((e) => !e.incomplete && e.event === 'message_chunk')) {
            cancelled = true;
            httpsRequest(srv, 'POST', `/api/sessions/${id}/cancel`).catch(reject);
          }
        });
        res.on('end', () => resolve(parseSSE(text)));
      });
      req.setTimeout(WAIT_MS, () => req.destroy(new Error('the SSE reply did not end')));
      req.on('error', reject);
      req.end(JSON.stringify({ content: 'go' }));
    });
    const last = events.at(-1);
    assert.equal(last.event, 'message_complete');
    assert.equal(JSON.parse(last.data).stop_reason, 'cancelled');
  });

  it('the WebSocket works through TLS: a message in, the reply out, a clean close', async () => {
    const s = await httpsRequest(srv, 'POST', '/api/sessions', { json: { name: 'ws', working_directory: dir } });
    const id = JSON.parse(s.text).id;
    await fake.script([{ text: 'Over TLS, in pieces.', chunks: 4, delay_ms: 20 }]);
    const { ws } = await connect(srv, `/api/sessions/${id}/stream`);
    ws.sendJSON({ type: 'message', content: 'hello' });
    const frames = await ws.until('message_complete');
    assert.equal(frames.filter((f) => f.type === 'content_delta').map((f) => f.delta).join(''), 'Over TLS, in pieces.');
    assert.equal(frames.at(-1).stop_reason, 'end_turn');
    // a second message on the same connection, then the close handshake
    await fake.script([{ text: 'again' }]);
    ws.sendJSON({ type: 'message', content: 'again' });
    assert.equal((await ws.until('message_complete')).at(-1).type, 'message_complete');
    const c = await ws.close(1000);
    assert.equal(c.code, 1000);
  });

  it('plain HTTP to the TLS port is closed at once (no answer, no hang)', async () => {
    const sock = net.connect({ host: srv.connectHost, port: srv.port });
    await once(sock, 'connect');
    let got = Buffer.alloc(0);
    sock.on('data', (d) => { got = Buffer.concat([got, d]); });
    sock.on('error', () => { /* a reset is a close too */ });
    const closed = once(sock, 'close');
    sock.write(`GET /status HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`);
    let timer;
    await Promise.race([closed, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('plain HTTP to the TLS port was not closed')), WAIT_MS); })]);
    clearTimeout(timer);
    assert.doesNotMatch(got.toString('latin1'), /HTTP\/1\.[01] /, 'no plain HTTP answer');
    const r = await httpsRequest(srv, 'GET', '/status');
    assert.equal(r.status, 200, 'the server still serves https');
  });
});

/** A renewal of certs' server certificate: a new key and certificate for the same names, signed
 *  by the same CA, in certs.dir as NAME.key and NAME.pem; resolves with their paths and the new
 *  certificate's fingerprint. */
function renew(certs, name) {
  const d = certs.dir;
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`,
    '-out', `${name}.csr`, '-subj', '/CN=localhost'], d);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '2', '-days', '2',
    '-extfile', 'ext.cnf', '-out', `${name}.pem`], d);
  const f = (n) => path.join(d, n);
  return { cert: f(`${name}.pem`), key: f(`${name}.key`), fingerprint: new crypto.X509Certificate(readFileSync(f(`${name}.pem`))).fingerprint256 };
}

/** GET /status on an open TLS socket (keep-alive); resolves with the response's text. */
function statusOn(sock, port) {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => done(new Error(`no answer on the open connection within ${WAIT_MS} ms: ${JSON.stringify(got)}`)), WAIT_MS);
    const onData = (d) => {
      got += d;
      if (/\r\n\r\n[\s\S]*ok$/.test(got)) done(null);
    };
    const onEnd = () => done(new Error(`the connection closed: ${JSON.stringify(got)}`));
    function done(err) {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('end', onEnd);
      if (err) reject(err); else resolve(got);
    }
    sock.setEncoding('utf8');
    sock.on('data', onData);
    sock.on('end', onEnd);
    sock.write(`GET /status HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  });
}

describe('a renewed certificate, read again on SIGHUP', { skip }, () => {
  it('new connections get the new one, open ones keep theirs, and a pair that does not load leaves it in place', async () => {
    const certs = makeCerts();
    const live = tempDir('goosed-tls-live-');
    const cert = path.join(live, 'cert.pem');
    const key = path.join(live, 'key.pem');
    writeFileSync(cert, readFileSync(certs.cert));
    writeFileSync(key, readFileSync(certs.key), { mode: 0o600 });
    const srv = await startServer({ configYaml: yaml({ tls_cert: cert, tls_key: key }), tlsOptions: { ca: certs.ca } });
    try {
      const open = tls.connect({ host: srv.connectHost, port: srv.port, ca: certs.ca });
      await once(open, 'secureConnect');
      assert.match(await statusOn(open, srv.port), /^HTTP\/1\.1 200/);
      assert.equal(open.getPeerCertificate().fingerprint256, certs.fingerprint);

      // the renewal, as certbot or cert-manager does it: the files replaced, then a SIGHUP
      const next = renew(certs, 'renewed');
      assert.notEqual(next.fingerprint, certs.fingerprint);
      writeFileSync(cert, readFileSync(next.cert));
      writeFileSync(key, readFileSync(next.key));
      let from = srv.log().length;
      srv.proc.kill('SIGHUP');
      const m = await srv.waitForLog(/SIGHUP received: TLS certificate reloaded; new connections get SHA-256 fingerprint (\S+) \(was (\S+)\)/, { from });
      assert.deepEqual([m[1], m[2]], [next.fingerprint, certs.fingerprint]);
      const r = await httpsRequest(srv, 'GET', '/status'); // a new connection, verified against the CA
      assert.deepEqual([r.status, r.text], [200, 'ok']);
      assert.equal(r.cert.fingerprint256, next.fingerprint, 'a new connection gets the renewed certificate');
      // the connection opened before goes on, with the certificate it began with
      assert.match(await statusOn(open, srv.port), /^HTTP\/1\.1 200/);
      assert.equal(open.getPeerCertificate().fingerprint256, certs.fingerprint);
      open.destroy();

      // a broken renewal (a half-written file, a key of another certificate) changes nothing
      for (const [certText, keyText, why] of [
        ['-----BEGIN CERTIFICATE-----\nnot base64\n', readFileSync(next.key), /tls_cert/],
        [readFileSync(next.cert), readFileSync(certs.otherKey), /tls_key|match/],
      ]) {
        writeFileSync(cert, certText);
        writeFileSync(key, keyText);
        from = srv.log().length;
        srv.proc.kill('SIGHUP');
        const bad = await srv.waitForLog(/SIGHUP received: the TLS certificate was not reloaded, the one served stays \(SHA-256 fingerprint (\S+)\): (.*)/, { from });
        assert.equal(bad[1], next.fingerprint);
        assert.match(bad[2], why);
        assert.equal((await servedCert(srv)).fingerprint256, next.fingerprint, 'still the last good certificate');
        assert.equal((await httpsRequest(srv, 'GET', '/status')).status, 200);
      }
    } finally {
      await stopAndCheck(srv);
    }
    assert.doesNotMatch(srv.log(), /BEGIN (EC )?PRIVATE KEY/, 'no key in the log');
  });

  it('a server without TLS logs that there is nothing to reload, and goes on', async () => {
    const srv = await startServer({});
    try {
      const from = srv.log().length;
      srv.proc.kill('SIGHUP');
      await srv.waitForLog(/SIGHUP received: nothing to reload/, { from });
      const r = await fetch(`${srv.url}/status`);
      assert.equal(await r.text(), 'ok');
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('TLS with a self-signed certificate (tls_self_signed)', { skip }, () => {
  it('made at the first start (key 0600), its printed fingerprint is the one served, the same after a restart', async () => {
    const home = tempDir('goosed-tls-home-');
    const env = { GOOSE_TLS_SELF_SIGNED: 'true' };
    const data = path.join(home, '.local/share/goose/sessions');
    const first = await startServer({ home, env });
    let printed;
    try {
      assert.match(first.url, /^https:/);
      printed = first.log().match(FINGERPRINT)[1];
      await printedFingerprint(first, printed);
      assert.match(first.log(), /made a self-signed certificate/);
      const cert = await servedCert(first);
      assert.equal(cert.fingerprint256, printed, 'the fingerprint printed is that of the certificate served');
      // stored in the data directory, the key readable by goosed's user only
      assert.equal(statSync(path.join(data, 'tls-key.pem')).mode & 0o777, 0o600);
      const stored = new crypto.X509Certificate(readFileSync(path.join(data, 'tls-cert.pem')));
      assert.equal(stored.fingerprint256, printed);
      assert.match(stored.subjectAltName, /DNS:localhost/);
      assert.match(stored.subjectAltName, /IP Address:127\.0\.0\.1/);
      assert.match(stored.subjectAltName, /IP Address:(0:0:0:0:0:0:0:1|::1)/i);
      assert.equal(stored.ca, false);
      // a client that trusts just this certificate verifies it (host and chain)
      const r = await httpsRequest(first, 'GET', '/status', { ca: readFileSync(path.join(data, 'tls-cert.pem')) });
      assert.deepEqual([r.status, r.text], [200, 'ok']);
    } finally {
      await stopAndCheck(first);
    }
    const second = await startServer({ home, env });
    try {
      assert.equal(second.log().match(FINGERPRINT)[1], printed, 'the same fingerprint after a restart');
      assert.doesNotMatch(second.log(), /made a self-signed certificate/);
      assert.equal((await servedCert(second)).fingerprint256, printed, 'the same certificate served');
    } finally {
      await stopAndCheck(second);
    }
  });

  it('names the configured host too', async () => {
    const srv = await startServer({ args: ['--host', '127.0.0.2'], env: { GOOSE_TLS_SELF_SIGNED: 'true' } });
    try {
      const cert = new crypto.X509Certificate(readFileSync(path.join(srv.home, '.local/share/goose/sessions/tls-cert.pem')));
      assert.match(cert.subjectAltName, /IP Address:127\.0\.0\.2/);
      const r = await httpsRequest(srv, 'GET', '/status', { ca: cert.toString() });
      assert.equal(r.status, 200);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('does not replace authentication: 0.0.0.0 with TLS and no auth is still refused', async () => {
    const r = await runGoosed(['--host', '0.0.0.0', '--port', '0'], { GOOSE_TLS_SELF_SIGNED: 'true' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0 with no authentication/);
    assert.doesNotMatch(r.stderr, /listening on/);
  });
});

/** A CA of its own in a fresh directory and, signed by it, a client certificate for name (and
 *  one made for a server, serverAuth only: not a client's). */
function clientCA(name) {
  const d = tempDir('goosed-tls-clients-');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=${name} CA`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'], d);
  openssl(['req', '-new', ...ec, '-keyout', 'client.key', '-out', 'client.csr', '-subj', `/CN=${name}`], d);
  writeFileSync(path.join(d, 'ext.cnf'), 'extendedKeyUsage=clientAuth\n');
  openssl(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '7', '-days', '2',
    '-extfile', 'ext.cnf', '-out', 'client.pem'], d);
  writeFileSync(path.join(d, 'server.cnf'), 'extendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '8', '-days', '2',
    '-extfile', 'server.cnf', '-out', 'server.pem'], d);
  return {
    serverCert: readFileSync(path.join(d, 'server.pem')),
    ca: path.join(d, 'ca.pem'), certFile: path.join(d, 'client.pem'), keyFile: path.join(d, 'client.key'),
    cert: readFileSync(path.join(d, 'client.pem')), key: readFileSync(path.join(d, 'client.key')),
  };
}

/** `goose session list` against srv with env added; resolves with {code, stdout, stderr}. */
function gooseList(srv, env) {
  return new Promise((resolve) => {
    execFile(path.join(path.dirname(GOOSED_BIN), 'goose'), ['session', 'list', '--url', srv.url], { env: { PATH: process.env.PATH, ...env }, timeout: WAIT_MS },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}

/** GET /status over a new TLS connection showing the client certificate `client` ({cert, key},
 *  or none); resolves with the status, rejects when the server refuses the handshake. */
function statusAs(srv, client) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: srv.connectHost, port: srv.port, path: '/status', ca: srv.tlsOptions.ca, agent: false, ...client }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.setTimeout(WAIT_MS, () => req.destroy(new Error(`no answer within ${WAIT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

describe('client certificates (tls_client_ca)', { skip }, () => {
  it("a client must show a certificate of the CA's: none, or one of another CA, fails the handshake; SIGHUP reads the CA file again", async () => {
    const certs = makeCerts();
    const team = clientCA('alice');
    const other = clientCA('mallory');
    const live = tempDir('goosed-tls-live-');
    const cas = path.join(live, 'clients.pem');
    writeFileSync(cas, readFileSync(team.ca));
    const srv = await startServer({ configYaml: yaml({ tls_cert: certs.cert, tls_key: certs.key, tls_client_ca: cas }), tlsOptions: { ca: certs.ca } });
    try {
      assert.match(srv.log(), /clients must show a certificate issued by one of the 1 CA certificate of .*clients\.pem/);
      assert.equal(await statusAs(srv, { cert: team.cert, key: team.key }), 200);
      await assert.rejects(statusAs(srv, {}), 'no client certificate');
      await assert.rejects(statusAs(srv, { cert: other.cert, key: other.key }), "another CA's");
      // the server's own certificate, of the server's CA, is not a client's either, nor one of
      // the trusted CA's made for a server
      await assert.rejects(statusAs(srv, { cert: readFileSync(certs.cert), key: readFileSync(certs.key) }), "the server CA's");
      await assert.rejects(statusAs(srv, { cert: team.serverCert, key: team.key }), "the CA's, made for a server");
      // the goose client shows one with --cert and --key (or GOOSE_SERVER_CLIENT_CERT and _KEY)
      const caFile = path.join(certs.dir, 'ca.pem');
      const without = await gooseList(srv, { GOOSE_SERVER_CACERT: caFile });
      assert.notEqual(without.code, 0, without.stdout);
      assert.match(without.stderr, /^goose session: the server at https:\/\/127\.0\.0\.1:\d+ asks for a client certificate \(.*certificate required.*\); give one its CA issued with --cert FILE/);
      const wrong = await gooseList(srv, { GOOSE_SERVER_CACERT: caFile, GOOSE_SERVER_CLIENT_CERT: other.certFile, GOOSE_SERVER_CLIENT_KEY: other.keyFile });
      assert.match(wrong.stderr, /^goose session: the server at \S+ refused the client certificate shown \(/);
      const withCert = await gooseList(srv, { GOOSE_SERVER_CACERT: caFile, GOOSE_SERVER_CLIENT_CERT: team.certFile, GOOSE_SERVER_CLIENT_KEY: team.keyFile });
      assert.equal(withCert.code, 0, withCert.stderr);

      // the CA file replaced, then a SIGHUP: the other CA's clients now, not the first's
      writeFileSync(cas, readFileSync(other.ca));
      const from = srv.log().length;
      srv.proc.kill('SIGHUP');
      await srv.waitForLog(/SIGHUP received: TLS certificate reloaded/, { from });
      assert.equal(await statusAs(srv, { cert: other.cert, key: other.key }), 200);
      await assert.rejects(statusAs(srv, { cert: team.cert, key: team.key }), 'the first CA, no longer trusted');
      // both CAs in the file: both
      writeFileSync(cas, Buffer.concat([readFileSync(team.ca), readFileSync(other.ca)]));
      const again = srv.log().length; // before the signal: its lines come after
      srv.proc.kill('SIGHUP');
      // the CA file is read (and logged) before the new credentials take over: wait for both
      await srv.waitForLog(/one of the 2 CA certificates of/, { from: again });
      await srv.waitForLog(/SIGHUP received: TLS certificate reloaded/, { from: again });
      assert.equal(await statusAs(srv, { cert: team.cert, key: team.key }), 200);
      assert.equal(await statusAs(srv, { cert: other.cert, key: other.key }), 200);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('a CA file that holds no certificate, or one without TLS served, stops the start naming it', async () => {
    const certs = makeCerts();
    const bad = path.join(certs.dir, 'not-a-ca.pem');
    writeFileSync(bad, 'hello\n');
    for (const [env, re] of [
      [{ GOOSE_TLS_CERT: certs.cert, GOOSE_TLS_KEY: certs.key, GOOSE_TLS_CLIENT_CA: bad }, /tls_client_ca .*not-a-ca\.pem: not PEM CA certificates/],
      [{ GOOSE_TLS_CERT: certs.cert, GOOSE_TLS_KEY: certs.key, GOOSE_TLS_CLIENT_CA: path.join(certs.dir, 'nope.pem') }, /tls_client_ca .*nope\.pem: cannot open: No such file/],
      [{ GOOSE_TLS_CLIENT_CA: path.join(certs.dir, 'ca.pem') }, /tls_client_ca is set but goosed serves no TLS/],
    ]) {
      const r = await runGoosed(['--port', '0'], env);
      assert.notEqual(r.code, 0, r.stderr);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /listening on/);
    }
  });
});

describe('TLS files that cannot be used stop the start, naming the file and the problem', { skip }, () => {
  let c;
  before(() => { c = makeCerts(); });

  async function refused(env, message) {
    const r = await runGoosed(['--port', '0'], env);
    assert.notEqual(r.code, 0, `goosed should refuse to start; stderr:\n${r.stderr}`);
    assert.equal(r.timedOut, false);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /listening on/);
    return r;
  }
  const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  it('a missing certificate file', async () => {
    const missing = path.join(c.dir, 'nope.pem');
    await refused({ GOOSE_TLS_CERT: missing, GOOSE_TLS_KEY: c.key }, new RegExp(`tls_cert ${esc(missing)}: cannot open: No such file`));
  });

  it('a missing key file', async () => {
    const missing = path.join(c.dir, 'nope.key');
    await refused({ GOOSE_TLS_CERT: c.cert, GOOSE_TLS_KEY: missing }, new RegExp(`tls_key ${esc(missing)}: cannot open: No such file`));
  });

  it('an unreadable key file', { skip: process.getuid?.() === 0 ? 'root reads any file' : false }, async () => {
    const k = path.join(tempDir(), 'unreadable.key');
    writeFileSync(k, readFileSync(c.key));
    chmodSync(k, 0o000);
    await refused({ GOOSE_TLS_CERT: c.cert, GOOSE_TLS_KEY: k }, new RegExp(`tls_key ${esc(k)}: cannot open: Permission denied`));
  });

  it('a key that does not match the certificate', async () => {
    await refused({ GOOSE_TLS_CERT: c.cert, GOOSE_TLS_KEY: c.otherKey },
      new RegExp(`tls_key ${esc(c.otherKey)} does not match the certificate in tls_cert ${esc(c.cert)}`));
  });

  it('a certificate that is not PEM (DER, or text)', async () => {
    await refused({ GOOSE_TLS_CERT: c.der, GOOSE_TLS_KEY: c.key }, new RegExp(`tls_cert ${esc(c.der)}: .*not a PEM`));
    const junk = path.join(tempDir(), 'junk.pem');
    writeFileSync(junk, 'hello, I am not a certificate\n');
    await refused({ GOOSE_TLS_CERT: junk, GOOSE_TLS_KEY: c.key }, new RegExp(`tls_cert ${esc(junk)}: not a PEM certificate`));
  });

  it('a PEM certificate whose body is broken', async () => {
    const broken = path.join(tempDir(), 'broken.pem');
    writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nAAAA!!!!not base64\n-----END CERTIFICATE-----\n');
    await refused({ GOOSE_TLS_CERT: broken, GOOSE_TLS_KEY: c.key }, new RegExp(`tls_cert ${esc(broken)}: cannot read the certificate`));
  });

  it('cert and key swapped', async () => {
    await refused({ GOOSE_TLS_CERT: c.key, GOOSE_TLS_KEY: c.cert }, /tls_cert .*not a PEM certificate.*swapped/);
  });

  it('an encrypted key', async () => {
    await refused({ GOOSE_TLS_CERT: c.cert, GOOSE_TLS_KEY: c.encryptedKey }, new RegExp(`tls_key ${esc(c.encryptedKey)}: the private key is encrypted`));
  });

  it('only one of the two files, or files and tls_self_signed together', async () => {
    await refused({ GOOSE_TLS_CERT: c.cert }, /tls_cert is set but tls_key is not/);
    await refused({ GOOSE_TLS_KEY: c.key }, /tls_key is set but tls_cert is not/);
    await refused({ GOOSE_TLS_CERT: c.cert, GOOSE_TLS_KEY: c.key, GOOSE_TLS_SELF_SIGNED: 'true' }, /tls_self_signed is true and tls_cert or tls_key is set too/);
  });

  it('a stored self-signed pair that was tampered with', async () => {
    const home = tempDir('goosed-tls-home-');
    const env = { HOME: home, GOOSE_TLS_SELF_SIGNED: 'true' };
    const srv = await startServer({ home, env: { GOOSE_TLS_SELF_SIGNED: 'true' } });
    await stopAndCheck(srv);
    const key = path.join(home, '.local/share/goose/sessions/tls-key.pem');
    assert.ok(existsSync(key));
    writeFileSync(key, readFileSync(c.otherKey));
    await refused(env, new RegExp(`its key ${esc(key)} does not match .*remove .* to make a new one`));
  });
});
