// Where users' remote extensions may connect. A user who is not an admin adds an extension of
// their own (or their session's) whose URL points at goosed's own host: at a service there that
// trusts goosed for where it stands. goosed refuses the connection whatever the URL spells (an
// address, a name that resolves to one, an IPv4-mapped IPv6 address, a decimal number): the
// server never sees a request, the user sees why. An admin's extensions, and what the admin lists
// in user_extension_hosts, are reached as before; a wrong list stops goosed at start.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAndCheck, runGoosed, tempDir, have, REPO } from './lib/server.mjs';
import { get, post, request } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';
import { addUser } from './lib/users.mjs';
import { recordSecret } from './lib/record.mjs';

const KEY = 'sk-reach-0123456789';
const FAKE_HTTP_MCP = path.join(REPO, 'tests/fakes/mcp/http_server.mjs');
const as = (token) => ({ headers: { Authorization: `Bearer ${token}` } });

/** The fake streamable HTTP MCP server on 127.0.0.1: {port, seen() (its requests), stop()}. */
function startMcp(env = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [FAKE_HTTP_MCP], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stderr.on('data', (d) => { err += d; });
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) {
        resolve({
          port: Number(m[1]),
          seen: () => err.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)),
          stop: () => new Promise((res) => { proc.on('close', res); proc.kill('SIGTERM'); }),
        });
      }
    });
    proc.on('exit', (code) => reject(new Error(`the fake MCP server exited with ${code}: ${err}`)));
  });
}

/** HChaCha20 (the subkey of XChaCha20) of key (32 bytes) and nonce16. */
function hchacha20(key, nonce16) {
  const s = new Uint32Array(16);
  s.set([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);
  for (let i = 0; i < 8; i++) s[4 + i] = key.readUInt32LE(4 * i);
  for (let i = 0; i < 4; i++) s[12 + i] = nonce16.readUInt32LE(4 * i);
  const rotl = (v, c) => (v << c) | (v >>> (32 - c));
  const qr = (a, b, c, d) => {
    s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 16);
    s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 12);
    s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 8);
    s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 7);
  };
  for (let i = 0; i < 10; i++) {
    qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15);
    qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14);
  }
  const out = Buffer.alloc(32);
  [0, 1, 2, 3, 12, 13, 14, 15].forEach((w, i) => out.writeUInt32LE(s[w], 4 * i));
  return out;
}

/** A session extension's value as goosed sealed it before it bound them to the session's owner:
 * "gdsealed:1:" and base64 of [1][24-byte nonce][XChaCha20-Poly1305 of plain], under the server
 * key, its associated data naming no user ("session extension") and name ("ext/field/key"). */
function sealAsBefore(key, name, plain) {
  const nonce = randomBytes(24);
  const c = createCipheriv('chacha20-poly1305', hchacha20(key, nonce.subarray(0, 16)), Buffer.concat([Buffer.alloc(4), nonce.subarray(16)]), { authTagLength: 16 });
  c.setAAD(Buffer.from(`goosed user secret\0session extension\0${name}`), { plaintextLength: Buffer.byteLength(plain) });
  const ct = Buffer.concat([c.update(plain, 'utf8'), c.final(), c.getAuthTag()]);
  return `gdsealed:1:${Buffer.concat([Buffer.from([1]), nonce, ct]).toString('base64')}`;
}

describe("users' remote extensions reach public addresses only, unless the admin lists more", () => {
  let fake, mcp, home, dir, root, alice, bob;
  const dataDir = () => path.join(home, '.local/share/goose/sessions');
  /** goosed.db and its write-ahead log as they are on disk, to look for a secret in. */
  const stored = () => ['goosed.db', 'goosed.db-wal'].map((f) => path.join(dataDir(), f)).filter(existsSync).map((f) => readFileSync(f).toString('latin1')).join('');
  const servers = [];
  // GOOSE_ALLOWED_ROOTS: the users' sessions work in dir too (else in their workspace only)
  const env = () => ({ GOOSE_PROVIDER: 'openai', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, GOOSE_MODEL: 'gpt-test', GOOSE_ALLOWED_ROOTS: dir });

  before(async () => {
    home = tempDir();
    dir = tempDir('goosed-reach-cwd-');
    root = await addUser(home, 'root', true);
    alice = await addUser(home, 'alice');
    bob = await addUser(home, 'bob');
    fake = await startFake({ keys: { openai: KEY } });
    mcp = await startMcp();
  });
  after(async () => {
    try {
      for (const s of servers) await stopAndCheck(s);
    } finally {
      await mcp.stop();
      await fake.stop();
    }
  });

  async function start(extraEnv = {}) {
    const srv = await startServer({ home, env: { ...env(), ...extraEnv } });
    servers.push(srv);
    return srv;
  }

  /** A session of token's with the given own extensions ({name: uri}), one reply; the tools offered. */
  async function toolsWith(srv, token, exts) {
    const s = await post(srv, '/api/sessions', { name: 'reach', working_directory: dir }, as(token));
    assert.equal(s.status, 201, s.text);
    for (const [name, uri] of Object.entries(exts)) {
      const a = await post(srv, `/api/sessions/${s.body.id}/extensions`, { name, config: { type: 'streamable_http', uri, timeout: 30 } }, as(token));
      assert.equal(a.status, 200, a.text);
    }
    await fake.script([{ text: 'ok' }]);
    const r = await post(srv, `/api/sessions/${s.body.id}/messages`, { content: 'hi' }, as(token));
    assert.equal(r.status, 200, r.text);
    return ((await fake.requests('openai')).at(-1).body.tools ?? []).map((t) => t.function.name); // none: no tools offered
  }

  it("a user's session extensions on goosed's host, however the URL spells it: never connected to", async () => {
    const srv = await start();
    const p = mcp.port;
    const before = mcp.seen().length;
    const tools = await toolsWith(srv, alice, {
      byaddress: `http://127.0.0.1:${p}/mcp`,
      byname: `http://localhost:${p}/mcp`,
      mapped: `http://[::ffff:127.0.0.1]:${p}/mcp`,
      decimal: `http://2130706433:${p}/mcp`,
      zeros: `http://0.0.0.0:${p}/mcp`,
    });
    assert.ok(tools.includes('developer__shell'), tools.join(','));
    for (const n of ['byaddress', 'byname', 'mapped', 'decimal', 'zeros'])
      assert.ok(!tools.some((t) => t.startsWith(`${n}__`)), `${n} was reached: ${tools.join(',')}`);
    assert.equal(mcp.seen().length, before, 'the MCP server on goosed\'s host got a request from a user\'s extension');
    assert.match(srv.log(), /not connecting to 127\.0\.0\.1, an address of this host/);
  });

  it("a user's own extension: listed as failed, saying what the admin can do, the same words for a name that does not resolve", async () => {
    const srv = servers[0];
    const before = mcp.seen().length;
    const errors = [];
    for (const uri of [`http://localhost:${mcp.port}/mcp`, 'http://nosuch.invalid/mcp']) {
      const r = await post(srv, '/api/extensions', { name: 'mine', config: { type: 'streamable_http', uri, timeout: 30 } }, as(alice));
      assert.ok(r.status === 201 || r.status === 200, r.text);
      const tools = await toolsWith(srv, alice, {});
      assert.ok(!tools.some((t) => t.startsWith('mine__')), tools.join(','));
      const mine = (await get(srv, '/api/extensions', as(alice))).body.extensions.find((e) => e.name === 'mine');
      assert.equal(mine.status, 'failed', JSON.stringify(mine));
      assert.match(mine.error, /a user's extension may connect only to public addresses that answer \(an admin may allow others in user_extension_hosts/);
      errors.push(mine.error.replace(uri, 'URL'));
    }
    assert.equal(errors[0], errors[1], 'the user can tell an internal address from a name that does not resolve');
    assert.match(srv.log(), /nosuch\.invalid/, 'the log says what happened');
    assert.equal(mcp.seen().length, before);
    assert.equal((await request(srv, 'DELETE', '/api/extensions/mine', as(alice))).status, 204);
  });

  it("config.yaml's extension, off there and turned on by a user for a session, reaches what the admin's do", async () => {
    const srv = await startServer({
      home, env: env(),
      configYaml: `extensions:\n  internal:\n    enabled: false\n    type: streamable_http\n    name: internal\n    uri: http://127.0.0.1:${mcp.port}/mcp\n    timeout: 30\n`,
    });
    servers.push(srv);
    const s = await post(srv, '/api/sessions', { name: 'reach', working_directory: dir }, as(alice));
    assert.equal(s.status, 201, s.text);
    const on = await post(srv, `/api/sessions/${s.body.id}/extensions`, { name: 'internal', enabled: true }, as(alice));
    assert.equal(on.status, 200, on.text);
    await fake.script([{ text: 'ok' }]);
    assert.equal((await post(srv, `/api/sessions/${s.body.id}/messages`, { content: 'hi' }, as(alice))).status, 200);
    const tools = (await fake.requests('openai')).at(-1).body.tools.map((t) => t.function.name);
    assert.ok(tools.includes('internal__echo'), tools.join(','));
  });

  it('a provider whose built-in address is on this machine: a user may not choose it until an admin sets its host', async () => {
    const srv = servers[0];
    for (const name of ['ollama', 'custom']) {
      const r = await post(srv, '/api/providers', { name, api_key: 'sk-reach-alice-own-key-7f3a9', model: 'x' }, as(alice));
      assert.equal(r.status, 403, r.text);
      assert.match(r.body.error, new RegExp(`provider ${name}: its built-in address http://localhost:\\d+ is on this server's machine, where only an admin may point goosed \\(an admin can set ${name.toUpperCase()}_HOST`));
    }
    // a provider with a public address is hers to choose; the admin may choose ollama
    assert.equal((await post(srv, '/api/providers', { name: 'anthropic', api_key: 'sk-ant-alice', model: 'claude-x' }, as(alice))).status, 200);
    assert.equal((await post(srv, '/api/providers', { name: 'ollama', model: 'llama' }, as(root))).status, 200);
    // once an admin sets OLLAMA_HOST, it is open to users too
    const withHost = await start({ OLLAMA_HOST: fake.url });
    const r = await post(withHost, '/api/providers', { name: 'ollama', model: 'llama' }, as(alice));
    assert.equal(r.status, 200, r.text);
    for (const who of [alice, root]) // back to the server's, for what follows
      assert.equal((await post(srv, '/api/providers', { name: 'openai', model: 'gpt-test' }, as(who))).status, 200);
  });

  it("an admin's session extension on the same URL is reached", async () => {
    const srv = servers[0];
    const before = mcp.seen().length;
    const tools = await toolsWith(srv, root, { admins: `http://127.0.0.1:${mcp.port}/mcp` });
    assert.ok(tools.includes('admins__echo'), tools.join(','));
    assert.ok(mcp.seen().length > before);
  });

  it('user_extension_hosts lets users reach what it names: a name, or a network', async () => {
    const byName = await start({ GOOSE_USER_EXTENSION_HOSTS: 'mcp.internal, localhost' });
    let before = mcp.seen().length;
    let tools = await toolsWith(byName, alice, { named: `http://localhost:${mcp.port}/mcp`, other: `http://127.0.0.1:${mcp.port}/mcp` });
    assert.ok(tools.includes('named__echo'), tools.join(','));
    assert.ok(!tools.some((t) => t.startsWith('other__')), 'the name lets that name through, not the address by itself');
    assert.ok(mcp.seen().length > before);
    const byNet = await start({ GOOSE_USER_EXTENSION_HOSTS: '127.0.0.0/8' });
    before = mcp.seen().length;
    tools = await toolsWith(byNet, alice, { net: `http://localhost:${mcp.port}/mcp` });
    assert.ok(tools.includes('net__echo'), tools.join(','));
    assert.ok(mcp.seen().length > before);
  });

  it("the environment's proxy is not used for a user's extension; an admin's goes through it", async () => {
    const net = await import('node:net');
    const seen = [];
    const proxy = net.createServer((c) => { c.once('data', (d) => { seen.push(d.toString('latin1').split('\r\n')[0]); c.destroy(); }); });
    await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
    const purl = `http://127.0.0.1:${proxy.address().port}`;
    try {
      const srv = await start({ http_proxy: purl, HTTP_PROXY: purl, ALL_PROXY: purl, NO_PROXY: '127.0.0.1,localhost' });
      // a public address (no request reaches it offline): a user's goes direct, an admin's to the proxy
      await toolsWith(srv, alice, { direct: 'http://198.41.0.4:9/mcp' });
      assert.deepEqual(seen, [], "a user's extension went through the proxy");
      await toolsWith(srv, root, { proxied: 'http://198.41.0.4:9/mcp' });
      assert.ok(seen.some((l) => l.startsWith('POST http://198.41.0.4:9/mcp')), `the admin's did not use the proxy: ${seen}`);
    } finally {
      proxy.close();
    }
  });

  it("a user's own extension is kept sealed: its header is nowhere in goosed.db, and after a restart it still reaches the server with it", async () => {
    const TOKEN = 'reach-sealed-token-5f1c2e9a7b';
    recordSecret(TOKEN, 'extension_reach.test.mjs: a user extension\'s bearer token');
    const locked = await startMcp({ MCP_FAKE_TOKEN: TOKEN });
    try {
      let srv = await start({ GOOSE_USER_EXTENSION_HOSTS: '127.0.0.0/8' });
      const uri = `http://127.0.0.1:${locked.port}/mcp`;
      const add = await post(srv, '/api/extensions', { name: 'locked', config: { type: 'streamable_http', uri, timeout: 30, headers: { Authorization: `Bearer ${TOKEN}` } } }, as(alice));
      assert.ok(add.status === 200 || add.status === 201, add.text);
      assert.ok((await toolsWith(srv, alice, {})).includes('locked__echo'));
      assert.ok(!stored().includes(TOKEN), 'the token is not in the database as written');
      assert.ok(!stored().includes('reach-sealed'), 'nor any part of it');
      await stopAndCheck(srv);
      servers.splice(servers.indexOf(srv), 1);
      assert.ok(!stored().includes(TOKEN), 'nor once the log is checkpointed into it');
      srv = await start({ GOOSE_USER_EXTENSION_HOSTS: '127.0.0.0/8' });
      const before = locked.seen().length;
      assert.ok((await toolsWith(srv, alice, {})).includes('locked__echo'), 'taken up after the restart');
      const after = locked.seen().slice(before);
      assert.ok(after.length > 0 && after.every((r) => r.auth), JSON.stringify(after));
      const listed = (await get(srv, '/api/extensions', as(alice))).body.extensions.find((e) => e.name === 'locked');
      assert.equal(JSON.stringify(listed).includes(TOKEN), false, 'the API masks it as before');
      // under another server key it does not open: left out, with a log line saying why
      await stopAndCheck(srv);
      servers.splice(servers.indexOf(srv), 1);
      srv = await start({ GOOSE_USER_EXTENSION_HOSTS: '127.0.0.0/8', GOOSE_SERVER_KEY: 'cd'.repeat(32) });
      assert.ok(!(await toolsWith(srv, alice, {})).includes('locked__echo'), 'left out');
      assert.match(srv.log(), /extension locked: cannot be opened \(sealed under another server key\?\): left out/);
      assert.ok(!srv.log().includes(TOKEN));
      await stopAndCheck(srv);
      servers.splice(servers.indexOf(srv), 1);
      srv = await start({ GOOSE_USER_EXTENSION_HOSTS: '127.0.0.0/8' }); /* its own key again */
      assert.equal((await request(srv, 'DELETE', '/api/extensions/locked', as(alice))).status, 204);
    } finally {
      await locked.stop();
    }
  });

  it("a user's extension an earlier goosed kept as plain text is sealed at the next start, and still reaches its server", { skip: !have('sqlite3') && 'needs the sqlite3 shell to write the old form' }, async () => {
    const TOKEN = 'reach-legacy-plain-8d2a61f0c4';
    recordSecret(TOKEN, "extension_reach.test.mjs: an unsealed extension's bearer token");
    const locked = await startMcp({ MCP_FAKE_TOKEN: TOKEN });
    try {
      // no other goosed on this database: its open connection would keep the log's old frames
      for (const s of servers.splice(0)) await stopAndCheck(s);
      let srv = await start(); // the database and its users are there
      await stopAndCheck(srv);
      servers.splice(servers.indexOf(srv), 1);
      // as goosed kept a user's extension before it sealed them: the entry's JSON text
      const entry = JSON.stringify({ enabled: true, config: { type: 'streamable_http', name: 'legacy', uri: `http://127.0.0.1:${locked.port}/mcp`, timeout: 30, headers: { Authorization: `Bearer ${TOKEN}` } } });
      execFileSync('sqlite3', [path.join(dataDir(), 'goosed.db'), `INSERT INTO user_items(user_id, name, value, updated_us) SELECT id, 'ext:legacy', CAST('${entry}' AS BLOB), 1 FROM users WHERE name = 'alice'`]);
      assert.ok(stored().includes(TOKEN), 'written in the old form');
      srv = await start({ GOOSE_USER_EXTENSION_HOSTS: '127.0.0.0/8' });
      assert.match(srv.log(), /extension legacy is now kept sealed/);
      assert.ok((await toolsWith(srv, alice, {})).includes('legacy__echo'), 'still there, and reaching its server');
      assert.ok(locked.seen().length > 0 && locked.seen().every((r) => r.auth), 'with its header');
      await stopAndCheck(srv);
      servers.splice(servers.indexOf(srv), 1);
      assert.ok(!stored().includes(TOKEN), 'the plain text is gone from the file, not left in its free space');
      srv = await start({ GOOSE_USER_EXTENSION_HOSTS: '127.0.0.0/8' });
      assert.doesNotMatch(srv.log(), /extension legacy is now kept sealed/, 'sealed once');
      assert.equal((await request(srv, 'DELETE', '/api/extensions/legacy', as(alice))).status, 204);
    } finally {
      await locked.stop();
    }
  });

  it("a session's own extension is kept sealed too, and reaches its server with its header, also after a restart", async () => {
    const TOKEN = 'reach-session-sealed-4c7d1e0b93';
    recordSecret(TOKEN, 'extension_reach.test.mjs: a session extension\'s bearer token');
    const locked = await startMcp({ MCP_FAKE_TOKEN: TOKEN });
    try {
      let srv = await start();
      const s = await post(srv, '/api/sessions', { name: 'sealed', working_directory: dir }, as(root));
      assert.equal(s.status, 201, s.text);
      const add = await post(srv, `/api/sessions/${s.body.id}/extensions`, { name: 'tokened', config: { type: 'streamable_http', uri: `http://127.0.0.1:${locked.port}/mcp`, timeout: 30, headers: { Authorization: `Bearer ${TOKEN}` } } }, as(root));
      assert.equal(add.status, 200, add.text);
      const tools = async () => {
        await fake.script([{ text: 'ok' }]);
        const r = await post(srv, `/api/sessions/${s.body.id}/messages`, { content: 'hi' }, as(root));
        assert.equal(r.status, 200, r.text);
        return ((await fake.requests('openai')).at(-1).body.tools ?? []).map((t) => t.function.name);
      };
      assert.ok((await tools()).includes('tokened__echo'));
      assert.ok(!stored().includes(TOKEN) && !stored().includes('session-sealed'), 'not in the database');
      await stopAndCheck(srv);
      servers.splice(servers.indexOf(srv), 1);
      assert.ok(!stored().includes(TOKEN), 'nor once the log is checkpointed');
      srv = await start();
      const before = locked.seen().length;
      assert.ok((await tools()).includes('tokened__echo'), 'taken up after the restart');
      const seen = locked.seen().slice(before);
      assert.ok(seen.length > 0 && seen.every((r) => r.auth), JSON.stringify(seen));
      const exp = await get(srv, `/api/sessions/${s.body.id}/export`, as(root));
      assert.ok(!JSON.stringify(exp.body).includes(TOKEN) && !JSON.stringify(exp.body).includes('gdsealed'), 'the export masks it');
      // under another server key it does not open: left out, with a log line saying why
      await stopAndCheck(srv);
      servers.splice(servers.indexOf(srv), 1);
      srv = await start({ GOOSE_SERVER_KEY: 'ab'.repeat(32) });
      const seenBefore = locked.seen().length;
      assert.ok(!(await tools()).some((t) => t.startsWith('tokened__')), 'left out');
      assert.equal(locked.seen().length, seenBefore, 'never reached, with or without its header');
      assert.match(srv.log(), /extension tokened left out: cannot open tokened\.headers\.Authorization: it was sealed under another server key/);
      assert.ok(!srv.log().includes(TOKEN));
    } finally {
      await locked.stop();
    }
  });

  it("a session's own extension an earlier goosed kept as plain text is sealed once at the next start, and still reaches its server", { skip: !have('sqlite3') && 'needs the sqlite3 shell to write the old form' }, async () => {
    const TOKEN = 'reach-session-plain-52b9e07d1a';
    recordSecret(TOKEN, "extension_reach.test.mjs: an unsealed session extension's bearer token");
    const locked = await startMcp({ MCP_FAKE_TOKEN: TOKEN });
    try {
      const db = path.join(dataDir(), 'goosed.db');
      for (const s of servers.splice(0)) await stopAndCheck(s);
      let srv = await start();
      const s = await post(srv, '/api/sessions', { name: 'plain', working_directory: dir }, as(root));
      assert.equal(s.status, 201, s.text);
      await stopAndCheck(srv);
      servers.splice(servers.indexOf(srv), 1);
      // as a goosed of schema 8 kept a session's own extension (the later migrations' tables undone): its header's value as it came
      const settings = JSON.stringify({ extensions: { add: { tokened: { type: 'streamable_http', name: 'tokened', uri: `http://127.0.0.1:${locked.port}/mcp`, timeout: 30, headers: { Authorization: `Bearer ${TOKEN}` } } } } });
      execFileSync('sqlite3', [db, `DROP TRIGGER user_items_added; DROP TRIGGER user_items_changed; DROP TRIGGER user_items_removed; DROP TABLE user_items_version; DROP TRIGGER sessions_sealed; DROP TABLE sessions_unsealed; UPDATE schema_version SET version = 8; UPDATE sessions SET settings = '${settings}' WHERE id = '${s.body.id}'`]);
      assert.ok(stored().includes(TOKEN), 'written in the old form');
      srv = await start();
      assert.match(srv.log(), /the own extensions of \d+ sessions? are now kept sealed/, 'this one and those of the tests before, whose values are sealed already');
      await fake.script([{ text: 'ok' }]);
      const r = await post(srv, `/api/sessions/${s.body.id}/messages`, { content: 'hi' }, as(root));
      assert.equal(r.status, 200, r.text);
      const tools = ((await fake.requests('openai')).at(-1).body.tools ?? []).map((t) => t.function.name);
      assert.ok(tools.includes('tokened__echo'), `still there, and reaching its server: ${tools}`);
      assert.ok(locked.seen().length > 0 && locked.seen().every((q) => q.auth), 'with its header');
      await stopAndCheck(srv);
      servers.splice(servers.indexOf(srv), 1);
      assert.ok(!stored().includes(TOKEN), 'the plain text is gone from the file, not left in its free space');
      srv = await start();
      assert.doesNotMatch(srv.log(), /now kept sealed/, 'sealed once');
    } finally {
      await locked.stop();
    }
  });

  /** A reply in session id of token's at srv: the names of the tools it was offered. */
  async function replyTools(srv, token, id) {
    await fake.script([{ text: 'ok' }]);
    const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'hi' }, as(token));
    assert.equal(r.status, 200, r.text);
    return ((await fake.requests('openai')).at(-1).body.tools ?? []).map((t) => t.function.name);
  }
  /** The settings goosed.db keeps for session id (the sqlite3 shell). */
  const keptSettings = (id) => JSON.parse(execFileSync('sqlite3', [path.join(dataDir(), 'goosed.db'), `SELECT settings FROM sessions WHERE id = '${id}'`], { encoding: 'utf8' }));

  it("a session's own extension given at its creation is kept sealed: not in goosed.db as created, nor in its fork, nor after a restart; both reach the server with it", async () => {
    const TOKEN = 'reach-create-sealed-9e41b7c2d0';
    recordSecret(TOKEN, "extension_reach.test.mjs: a session extension's bearer token, given at creation");
    const locked = await startMcp({ MCP_FAKE_TOKEN: TOKEN });
    try {
      let srv = await start({ GOOSE_USER_EXTENSION_HOSTS: '127.0.0.0/8' });
      const config = { type: 'streamable_http', uri: `http://127.0.0.1:${locked.port}/mcp`, timeout: 30, headers: { Authorization: `Bearer ${TOKEN}` }, envs: {} };
      const s = await post(srv, '/api/sessions', { name: 'created', working_directory: dir, extensions: [{ name: 'tokened', config }] }, as(alice));
      assert.equal(s.status, 201, s.text);
      assert.ok(!stored().includes(TOKEN) && !stored().includes('create-sealed'), 'not in the database as created');
      const f = await post(srv, `/api/sessions/${s.body.id}/fork`, {}, as(alice));
      assert.equal(f.status, 201, f.text);
      assert.ok(!stored().includes(TOKEN), 'nor once forked');
      await stopAndCheck(srv);
      servers.splice(servers.indexOf(srv), 1);
      assert.ok(!stored().includes(TOKEN), 'nor once the log is checkpointed');
      srv = await start({ GOOSE_USER_EXTENSION_HOSTS: '127.0.0.0/8' });
      for (const id of [s.body.id, f.body.id]) {
        const before = locked.seen().length;
        assert.ok((await replyTools(srv, alice, id)).includes('tokened__echo'), `session ${id} reaches its server`);
        const seen = locked.seen().slice(before);
        assert.ok(seen.length > 0 && seen.every((q) => q.auth), `with its header: ${JSON.stringify(seen)}`);
      }
      assert.ok(!stored().includes(TOKEN), 'nor after the restart');
    } finally {
      await locked.stop();
    }
  });

  it("a sealed value is goosed's own: another user who gives one in a session of theirs is refused, naming the field, and the secret never reaches their server", async () => {
    const TOKEN = 'reach-alice-sealed-3b8f60a1e2';
    recordSecret(TOKEN, "extension_reach.test.mjs: alice's session extension's bearer token");
    const alices = await startMcp({ MCP_FAKE_TOKEN: TOKEN });
    const bobs = await startMcp({ MCP_FAKE_TOKEN: TOKEN }); // its "auth" says whether it got alice's token
    try {
      const srv = await start({ GOOSE_USER_EXTENSION_HOSTS: '127.0.0.0/8' });
      const a = await post(srv, '/api/sessions', { name: 'alice', working_directory: dir, extensions: [{ name: 'crm', config: { type: 'streamable_http', uri: `http://127.0.0.1:${alices.port}/mcp`, timeout: 30, headers: { Authorization: `Bearer ${TOKEN}` } } }] }, as(alice));
      assert.equal(a.status, 201, a.text);
      // the value as a copy of goosed.db holds it
      const blob = keptSettings(a.body.id).extensions.add.crm.headers.Authorization;
      assert.match(blob, /^gdsealed:/);
      const bobsCfg = (field) => ({ type: 'streamable_http', uri: `http://127.0.0.1:${bobs.port}/mcp`, timeout: 30, ...field });
      const refused = /crm: headers\.Authorization: a value beginning with "gdsealed:" is sealed by goosed itself and is not taken from a client: give the value itself/;
      const c = await post(srv, '/api/sessions', { name: 'bob', working_directory: dir, extensions: [{ name: 'crm', config: bobsCfg({ headers: { Authorization: blob } }) }] }, as(bob));
      assert.equal(c.status, 400, c.text);
      assert.match(c.body.error, refused);
      const b = await post(srv, '/api/sessions', { name: 'bob', working_directory: dir }, as(bob));
      assert.equal(b.status, 201, b.text);
      let r = await post(srv, `/api/sessions/${b.body.id}/extensions`, { name: 'crm', config: bobsCfg({ headers: { Authorization: blob } }) }, as(bob));
      assert.equal(r.status, 400, r.text);
      assert.match(r.body.error, refused);
      r = await post(srv, `/api/sessions/${b.body.id}/extensions`, { name: 'crm', config: bobsCfg({ headers: { Authorization: blob.replace('gdsealed:2:', 'gdsealed:1:') } }) }, as(bob));
      assert.equal(r.status, 400, r.text);
      assert.match(r.body.error, refused, "an earlier goosed's form too");
      r = await post(srv, `/api/sessions/${b.body.id}/extensions`, { name: 'crm', config: { type: 'stdio', cmd: 'true', envs: { TOKEN: blob } } }, as(bob));
      assert.equal(r.status, 400, r.text);
      assert.match(r.body.error, /crm: envs\.TOKEN: a value beginning with "gdsealed:"/);
      // nor through an extension of his own (off), turned on for his session
      const own = await post(srv, '/api/extensions', { name: 'crm', config: { ...bobsCfg({ headers: { Authorization: blob } }), enabled: false } }, as(bob));
      assert.ok(own.status === 200 || own.status === 201, own.text);
      r = await post(srv, `/api/sessions/${b.body.id}/extensions`, { name: 'crm' }, as(bob));
      assert.equal(r.status, 400, r.text);
      assert.match(r.body.error, refused);
      assert.equal((await request(srv, 'DELETE', '/api/extensions/crm', as(bob))).status, 204);
      await replyTools(srv, bob, b.body.id);
      assert.deepEqual(bobs.seen().filter((q) => q.auth), [], "alice's token reached bob's server");
      if (!have('sqlite3')) return;
      // the value copied into his session's settings behind goosed's back: sealed for alice, it does not open for bob
      const settings = JSON.stringify({ extensions: { add: { crm: { ...bobsCfg({ headers: { Authorization: blob } }), name: 'crm', enabled: true } } } });
      execFileSync('sqlite3', [path.join(dataDir(), 'goosed.db'), `UPDATE sessions SET settings = '${settings}' WHERE id = '${b.body.id}'`]);
      const from = srv.log().length;
      assert.ok(!(await replyTools(srv, bob, b.body.id)).some((t) => t.startsWith('crm__')), 'left out');
      assert.match(srv.log().slice(from), /extension crm left out: cannot open crm\.headers\.Authorization: it was sealed under another server key \(.*\) or for another user/);
      assert.deepEqual(bobs.seen().filter((q) => q.auth), [], "alice's token reached bob's server");
      assert.ok((await replyTools(srv, alice, a.body.id)).includes('crm__echo'), 'while it still opens for alice');
      assert.ok(alices.seen().length > 0 && alices.seen().every((q) => q.auth));
    } finally {
      await alices.stop();
      await bobs.stop();
    }
  });

  it("a session's own extension an earlier goosed sealed for no user in particular is sealed again for its owner at the next start, and still reaches its server", { skip: !have('sqlite3') && 'needs the sqlite3 shell to write the old form' }, async () => {
    const TOKEN = 'reach-session-old-seal-7c2e5a9f14';
    recordSecret(TOKEN, "extension_reach.test.mjs: a session extension's bearer token, sealed the earlier way");
    const locked = await startMcp({ MCP_FAKE_TOKEN: TOKEN });
    try {
      const db = path.join(dataDir(), 'goosed.db');
      for (const s of servers.splice(0)) await stopAndCheck(s);
      let srv = await start({ GOOSE_USER_EXTENSION_HOSTS: '127.0.0.0/8' });
      const uri = `http://127.0.0.1:${locked.port}/mcp`;
      // (a sealed value of its own makes the server key, when the tests before made none)
      const s = await post(srv, '/api/sessions', { name: 'old seal', working_directory: dir, extensions: [{ name: 'tokened', config: { type: 'streamable_http', uri, timeout: 30, headers: { Authorization: 'Bearer replaced' } } }] }, as(alice));
      assert.equal(s.status, 201, s.text);
      await stopAndCheck(srv);
      servers.splice(servers.indexOf(srv), 1);
      const key = readFileSync(path.join(dataDir(), 'server.key'));
      const old = JSON.stringify({ extensions: { add: { tokened: { type: 'streamable_http', name: 'tokened', uri, timeout: 30, enabled: true, headers: { Authorization: sealAsBefore(key, 'tokened/headers/Authorization', `Bearer ${TOKEN}`) } } } } });
      // as a goosed of schema 10 left it
      execFileSync('sqlite3', [db, `UPDATE sessions SET settings = '${old}' WHERE id = '${s.body.id}'; UPDATE schema_version SET version = 10`]);
      srv = await start({ GOOSE_USER_EXTENSION_HOSTS: '127.0.0.0/8' });
      assert.match(srv.log(), /the own extensions of \d+ sessions? are now kept sealed/);
      assert.match(keptSettings(s.body.id).extensions.add.tokened.headers.Authorization, /^gdsealed:2:/, 'sealed again, for alice');
      assert.ok((await replyTools(srv, alice, s.body.id)).includes('tokened__echo'), 'still there, and reaching its server');
      assert.ok(locked.seen().length > 0 && locked.seen().every((q) => q.auth), 'with its header');
      await stopAndCheck(srv);
      servers.splice(servers.indexOf(srv), 1);
      // the earlier form found where no start put it back (written since, behind goosed's back): never opened as it is
      execFileSync('sqlite3', [db, `UPDATE sessions SET settings = '${old}' WHERE id = '${s.body.id}'`]);
      srv = await start({ GOOSE_USER_EXTENSION_HOSTS: '127.0.0.0/8' });
      assert.doesNotMatch(srv.log(), /now kept sealed/, 'sealed again once, at the upgrade');
      const before = locked.seen().length;
      assert.ok(!(await replyTools(srv, alice, s.body.id)).some((t) => t.startsWith('tokened__')), 'left out');
      assert.equal(locked.seen().length, before);
      assert.match(srv.log(), /extension tokened left out: cannot open tokened\.headers\.Authorization: an earlier goosed sealed it/);
    } finally {
      await locked.stop();
    }
  });

  it('a user_extension_hosts item that is none of those: goosed does not start, and says which', async () => {
    const r = await runGoosed(['--port', '0'], { GOOSE_USER_EXTENSION_HOSTS: 'mcp.internal, 10.0.0.0/33' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /GOOSE_USER_EXTENSION_HOSTS.*"10\.0\.0\.0\/33" is not a host name, an address or a network/);
  });
});
