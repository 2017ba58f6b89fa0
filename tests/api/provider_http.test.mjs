// goosed's own HTTP/1.1 client for the provider requests, black-box: a provider over https
// (a TLS front for the fake provider, its CA trusted through SSL_CERT_FILE) and one whose
// certificate names another host, refused with a clear error; through an HTTP proxy (CONNECT
// for https, absolute-form for http, Proxy-Authorization from the proxy URL) and no_proxy
// bypassing it; keep-alive (sequential replies on one connection, and the cap of 1,024 idle
// connections at its edge); a provider that closes its
// idle connections, and one that closes a kept connection when the next request comes on it;
// a stall past api_timeout; a refused connection and the retry policy on it. The certificates
// are made with openssl (those tests are skipped without it).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startServer, stopAndCheck, tempDir, have } from './lib/server.mjs';
import { request, post, assertAlive } from './lib/http.mjs';
import { startFake, parseSSE } from '../fakes/lib.mjs';
import { startFront, startProxy } from '../fakes/fronts.mjs';

const KEY = 'sk-test-h1-key';
const noSsl = have('openssl') ? false : 'openssl is not installed (scripts/deps.sh test)';

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A test CA, a certificate it signs for localhost and 127.0.0.1, and one for another host. */
function makeCerts() {
  const d = tempDir('goosed-h1-certs-');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=goosed h1 test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'], d);
  const leaf = (name, san) => {
    openssl(['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], d);
    writeFileSync(path.join(d, `${name}.cnf`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', String(Date.now() % 100000),
      '-days', '2', '-extfile', `${name}.cnf`, '-out', `${name}.pem`], d);
    return { key: readFileSync(path.join(d, `${name}.key`)), cert: readFileSync(path.join(d, `${name}.pem`)) };
  };
  return { dir: d, caFile: path.join(d, 'ca.pem'), good: leaf('localhost', 'DNS:localhost,IP:127.0.0.1'), other: leaf('other', 'DNS:other.example') };
}

async function newSession(srv) {
  const r = await post(srv, '/api/sessions', { name: 'h1 test', working_directory: srv.home });
  assert.equal(r.status, 201, r.text);
  return r.body.id;
}

async function reply(srv, id, content = 'hi') {
  const r = await request(srv, 'POST', `/api/sessions/${id}/messages/stream`, { json: { content } });
  assert.equal(r.status, 200, r.text);
  return parseSSE(r.text).map((e) => ({ ...e, json: JSON.parse(e.data) }));
}

function texts(events) {
  return events.filter((e) => e.event === 'message_chunk').map((e) => e.json.text).join('');
}

/** Runs fn(srv) with goosed using the fake through host (OPENAI_HOST) and env. */
async function withGoosed(host, env, fn) {
  const srv = await startServer({
    env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: host, OPENAI_API_KEY: KEY, ...env },
  });
  try {
    await fn(srv);
    await assertAlive(srv);
  } finally {
    await stopAndCheck(srv);
  }
}

describe('provider client: https, proxies, keep-alive', { skip: noSsl }, () => {
  let fake;
  let certs;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    certs = makeCerts();
  });
  after(async () => {
    await fake?.stop();
  });

  it('https with a CA from SSL_CERT_FILE, by name (resolved, each address tried): replies on one kept connection', async () => {
    const front = await startFront({ target: fake.url, tls: certs.good });
    try {
      await withGoosed(`https://localhost:${front.port}`, { SSL_CERT_FILE: certs.caFile }, async (srv) => {
        const id = await newSession(srv);
        for (const word of ['one', 'two', 'three']) {
          await fake.script([{ text: `${word} reply` }]);
          const ev = await reply(srv, id);
          assert.equal(ev.at(-1).event, 'message_complete', JSON.stringify(ev.at(-1)));
          assert.equal(texts(ev), `${word} reply`);
        }
        assert.equal(front.stats.connections, 1, 'three sequential replies, one connection');
      });
    } finally {
      await front.close();
    }
  });

  it('a certificate for another host is refused, naming the host', async () => {
    const front = await startFront({ target: fake.url, tls: certs.other });
    try {
      await withGoosed(front.url, { SSL_CERT_FILE: certs.caFile, GOOSE_MAX_RETRIES: '0' }, async (srv) => {
        const id = await newSession(srv);
        await fake.script([{ text: 'never' }]);
        const ev = await reply(srv, id);
        assert.equal(ev.at(-1).event, 'error');
        assert.equal(ev.at(-1).json.code, 'provider_error');
        assert.match(ev.at(-1).json.error, /TLS certificate of 127\.0\.0\.1:\d+ is not trusted/);
        assert.doesNotMatch(ev.at(-1).json.error, new RegExp(KEY));
      });
    } finally {
      await front.close();
    }
  });

  it('https through an HTTP CONNECT proxy with user:password; no_proxy bypasses it', async () => {
    const front = await startFront({ target: fake.url, tls: certs.good });
    const proxy = await startProxy();
    const proxyUrl = `http://us%3Aer:p%40ss@127.0.0.1:${proxy.port}`;
    try {
      await withGoosed(`https://127.0.0.1:${front.port}`, { SSL_CERT_FILE: certs.caFile, https_proxy: proxyUrl }, async (srv) => {
        const id = await newSession(srv);
        for (const word of ['a', 'b']) {
          await fake.script([{ text: `tunnelled ${word}` }]);
          const ev = await reply(srv, id);
          assert.equal(texts(ev), `tunnelled ${word}`, JSON.stringify(ev.at(-1)));
        }
        assert.equal(proxy.stats.tunnels, 1, 'one tunnel, kept for the second reply');
        assert.deepEqual(proxy.stats.targets, [`127.0.0.1:${front.port}`]);
        assert.equal(proxy.stats.auth[0], `Basic ${Buffer.from('us:er:p@ss').toString('base64')}`);
      });
      const before = proxy.stats.tunnels;
      await withGoosed(`https://127.0.0.1:${front.port}`,
        { SSL_CERT_FILE: certs.caFile, HTTPS_PROXY: proxyUrl, NO_PROXY: 'example.com, 127.0.0.1' }, async (srv) => {
          const id = await newSession(srv);
          await fake.script([{ text: 'direct' }]);
          assert.equal(texts(await reply(srv, id)), 'direct');
        });
      assert.equal(proxy.stats.tunnels, before, 'no_proxy: not through the proxy');
    } finally {
      await proxy.close();
      await front.close();
    }
  });

  it('http through http_proxy: absolute-form requests, and the key never reaches the proxy URL', async () => {
    const proxy = await startProxy();
    try {
      await withGoosed(`${fake.url}/`, { http_proxy: `http://u:pw@127.0.0.1:${proxy.port}` }, async (srv) => {
        const id = await newSession(srv);
        await fake.script([{ text: 'proxied' }]);
        assert.equal(texts(await reply(srv, id)), 'proxied');
        assert.equal(proxy.stats.requests, 1);
        assert.equal(proxy.stats.tunnels, 0);
        assert.match(proxy.stats.targets[0], /^http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions$/);
        assert.equal(proxy.stats.auth[0], `Basic ${Buffer.from('u:pw').toString('base64')}`);
      });
    } finally {
      await proxy.close();
    }
  });
});

describe('provider client: kept connections, stalls, refusals', () => {
  let fake;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
  });
  after(async () => {
    await fake?.stop();
  });

  it('sequential replies use one connection; after the provider closes its idle connections the next reply still works', async () => {
    const front = await startFront({ target: fake.url });
    try {
      await withGoosed(front.url, {}, async (srv) => {
        const id = await newSession(srv);
        for (let i = 0; i < 4; i++) {
          await fake.script([{ text: `r${i}` }]);
          assert.equal(texts(await reply(srv, id)), `r${i}`);
        }
        assert.equal(front.stats.connections, 1);
        front.dropAll();
        await fake.script([{ text: 'after the close' }]);
        assert.equal(texts(await reply(srv, id)), 'after the close');
        assert.equal(front.stats.connections, 2);
      });
    } finally {
      await front.close();
    }
  });

  it('at most 1,024 idle connections are kept: of 1,025 replies at once, one connection is closed after, and the 1,024 kept carry the next batch', { timeout: 120000 }, async () => {
    const N = 1025;
    const front = await startFront({ target: fake.url, holdUntil: N }); // all N in flight at once
    const limits = { GOOSE_MAX_CONNECTIONS: '8192', GOOSE_MAX_CONNECTIONS_PER_CLIENT: '8192', GOOSE_MAX_REPLIES: '4096' };
    try {
      await withGoosed(front.url, limits, async (srv) => {
        const ids = await Promise.all(Array.from({ length: N }, () => newSession(srv)));
        for (const ev of await Promise.all(ids.map((id) => reply(srv, id))))
          assert.equal(ev.at(-1).event, 'message_complete', JSON.stringify(ev.at(-1)));
        assert.equal(front.stats.connections, N);
        await front.untilOpen(N - 1); // the connection over the cap is closed once idle
        assert.equal(front.open(), 1024);
        for (const ev of await Promise.all(ids.slice(0, 1024).map((id) => reply(srv, id))))
          assert.equal(ev.at(-1).event, 'message_complete', JSON.stringify(ev.at(-1)));
        assert.equal(front.stats.connections, N, '1,024 replies at once on the 1,024 kept connections');
      });
    } finally {
      await front.close();
    }
  });

  it('a kept connection closed when the next request comes is retried once on a new one, unseen', async () => {
    const front = await startFront({ target: fake.url, closeReused: true });
    try {
      await withGoosed(front.url, { GOOSE_MAX_RETRIES: '0' }, async (srv) => {
        const id = await newSession(srv);
        await fake.script([{ text: 'first' }]);
        assert.equal(texts(await reply(srv, id)), 'first');
        await fake.script([{ text: 'second' }]);
        const ev = await reply(srv, id);
        assert.equal(ev.at(-1).event, 'message_complete', JSON.stringify(ev.at(-1)));
        assert.equal(texts(ev), 'second');
        assert.equal(front.stats.closedReused, 1);
        assert.equal(front.stats.connections, 2);
      });
    } finally {
      await front.close();
    }
  });

  it('a stalled stream ends with its error after api_timeout', async () => {
    await withGoosed(fake.url, { GOOSE_API_TIMEOUT: '1', GOOSE_MAX_RETRIES: '0' }, async (srv) => {
      const id = await newSession(srv);
      await fake.script([{ text: 'a b c', chunks: 3, stall_after: 1, stall_ms: 6000 }]);
      const ev = await reply(srv, id);
      assert.equal(ev.at(-1).event, 'error');
      assert.match(ev.at(-1).json.error, /ended before it was complete \(no data from 127\.0\.0\.1:\d+ for 1 s\)/);
    });
  });

  it('a refused connection names host and port, and is retried by the retry policy', async () => {
    // a port that refuses: one just closed
    const probe = net.createServer();
    await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = probe.address().port;
    await new Promise((resolve) => probe.close(resolve));
    await withGoosed(`http://127.0.0.1:${port}`, { GOOSE_MAX_RETRIES: '1' }, async (srv) => {
      const id = await newSession(srv);
      const ev = await reply(srv, id);
      assert.equal(ev.at(-1).event, 'error');
      assert.equal(ev.at(-1).json.code, 'provider_error');
      assert.match(ev.at(-1).json.error,
        new RegExp(`cannot reach the provider at http://127\\.0\\.0\\.1:${port}: cannot connect to 127\\.0\\.0\\.1:${port}: Connection refused`));
      await srv.waitForLog(/retrying in \d+ ms \(attempt 2 of 2\)/);
    });
  });

  it('a proxy that is not http:// is refused, without quoting its URL (and password)', async () => {
    await withGoosed(fake.url, { http_proxy: 'https://u:pxsecret@127.0.0.1:9', GOOSE_MAX_RETRIES: '0' }, async (srv) => {
      const id = await newSession(srv);
      const ev = await reply(srv, id);
      assert.equal(ev.at(-1).event, 'error');
      assert.match(ev.at(-1).json.error, /the proxy in http_proxy is not usable: only http:\/\/ proxies are supported/);
      assert.doesNotMatch(ev.at(-1).json.error, /pxsecret/);
      assert.doesNotMatch(srv.log(), /pxsecret/);
    });
  });

  it('a host that cannot be resolved says so', async () => {
    await withGoosed('http://no-such-host.invalid:9', { GOOSE_MAX_RETRIES: '0' }, async (srv) => {
      const id = await newSession(srv);
      const ev = await reply(srv, id);
      assert.equal(ev.at(-1).event, 'error');
      assert.match(ev.at(-1).json.error, /cannot resolve no-such-host\.invalid/);
    });
  });
});
