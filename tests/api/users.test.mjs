// Users' own settings: each user's provider, model and API key (sealed at rest under the
// server key), an admin's default for everyone else, "always" answers kept per user, and
// max_replies_per_user. Users come from `goosed user add`; the provider is the fake, which
// records the key each request brought.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { startServer, stopAndCheck, runGoosed, tempDir } from './lib/server.mjs';
import { get, post, request, assertError } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';
import { watch } from './lib/events.mjs';
import { TOKEN_RE, addUser } from './lib/users.mjs';

const secret = (tag) => `sk-${tag}-${crypto.randomBytes(12).toString('hex')}`;
const KA = secret('alice');
const KB = secret('bob');
const KD = secret('default');

const as = (token) => ({ headers: { Authorization: `Bearer ${token}` } });
const dataDir = (home) => path.join(home, '.local/share/goose/sessions');

/** A session of token's user in their own workspace (a user who is not an admin may use no other). */
async function newSession(srv, token) {
  const r = await post(srv, '/api/sessions', { name: 'users' }, as(token));
  assert.equal(r.status, 201, r.text);
  return r.body.id;
}

/** Sends a message and waits for the JSON answer. */
const say = (srv, token, sid, content) => post(srv, `/api/sessions/${sid}/messages`, { content }, as(token));

/** Starts a message without waiting for its answer (a fetch promise). */
function sayLater(srv, token, sid, content) {
  return fetch(`${srv.url}/api/sessions/${sid}/messages`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ content }),
  });
}

/** The Authorization header and model of the fake's last OpenAI request. */
async function lastCall(fake) {
  const reqs = await fake.requests('openai');
  const r = reqs.at(-1);
  return { auth: r.headers.authorization, model: r.body.model };
}

const shell = (id, command) => ({ tool_calls: [{ id, name: 'developer__shell', arguments: { command } }] });

/** Every goosed.db* file of the data directory, as bytes. */
function dbBytes(home) {
  const dir = dataDir(home);
  return readdirSync(dir).filter((f) => f.startsWith('goosed.db')).map((f) => [f, readFileSync(path.join(dir, f))]);
}

describe('users: their own provider and keys, an admin default, their own always-allow', () => {
  let fake, srv, home, root, alice, bob, carol;
  before(async () => {
    home = tempDir();
    root = await addUser(home, 'root', true);
    alice = await addUser(home, 'alice');
    bob = await addUser(home, 'bob');
    carol = await addUser(home, 'carol');
    fake = await startFake(); // no key configured: it takes any key and records it
    srv = await startServer({
      home,
      env: { OPENAI_HOST: fake.url, GOOSE_MODE: 'approve', GOOSE_MAX_REPLIES_PER_USER: 1 },
    });
  });
  after(async () => {
    try {
      const log = srv.log() + srv.stdout();
      for (const k of [KA, KB, KD]) assert.ok(!log.includes(k), `a key (${k.slice(0, 9)}…) is in goosed's log`);
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it('no server key is made before a user keeps a key', () => {
    assert.ok(!existsSync(path.join(dataDir(home), 'server.key')));
  });

  it('nothing configured: a reply says how to configure a provider', async () => {
    const sid = await newSession(srv, carol);
    assertError(await say(srv, carol, sid, 'hi'), 503, 'provider_not_configured', /POST \/api\/providers/);
  });

  it('a user who is not an admin cannot set the default (403); an admin can', async () => {
    const body = { scope: 'default', name: 'openai', api_key: KD, model: 'gpt-default' };
    assertError(await post(srv, '/api/providers', body, as(bob)), 403, 'forbidden', /admin/);
    assertError(await post(srv, '/api/providers', { ...body, scope: 'everyone' }, as(root)), 400, 'bad_request', /scope/);
    const r = await post(srv, '/api/providers', body, as(root));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { name: 'openai', model: 'gpt-default', configured: true });
    assert.ok(!r.text.includes(KD));
    const cur = await get(srv, '/api/providers/current', as(carol));
    assert.deepEqual(cur.body, { name: 'openai', model: 'gpt-default' });
  });

  it('each user sets their own provider, model and key; GET shows each their own', async () => {
    for (const [tok, key, model] of [[alice, KA, 'gpt-a'], [bob, KB, 'gpt-b']]) {
      const r = await post(srv, '/api/providers', { name: 'openai', api_key: key, model }, as(tok));
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body, { name: 'openai', model, configured: true });
      assert.ok(!r.text.includes(key));
    }
    // the first key kept made the server key: 32 bytes, mode 0600, in the data directory
    const st = statSync(path.join(dataDir(home), 'server.key'));
    assert.equal(st.size, 32);
    assert.equal(st.mode & 0o777, 0o600);
    assert.deepEqual((await get(srv, '/api/providers/current', as(alice))).body, { name: 'openai', model: 'gpt-a' });
    assert.deepEqual((await get(srv, '/api/providers/current', as(bob))).body, { name: 'openai', model: 'gpt-b' });
    assert.deepEqual((await get(srv, '/api/providers/current', as(carol))).body, { name: 'openai', model: 'gpt-default' });
    const list = await get(srv, '/api/providers', as(alice));
    const openai = list.body.find((p) => p.name === 'openai');
    assert.equal(openai.configured, true);
    assert.equal(openai.current, true);
    assert.ok(!list.text.includes(KA));
    // a bad key is refused before anything is kept
    assertError(await post(srv, '/api/providers', { name: 'openai', api_key: 'a\nb' }, as(alice)), 400, 'bad_request', /api_key/);
  });

  it("each user's replies reach the provider with their own key and model; the others' the default", async () => {
    await fake.script([{ text: 'for alice' }, { text: 'for bob' }, { text: 'for carol' }]);
    for (const [tok, key, model, text] of [[alice, KA, 'gpt-a', 'for alice'], [bob, KB, 'gpt-b', 'for bob'], [carol, KD, 'gpt-default', 'for carol']]) {
      const sid = await newSession(srv, tok);
      const r = await say(srv, tok, sid, 'hello');
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, new RegExp(text));
      assert.deepEqual(await lastCall(fake), { auth: `Bearer ${key}`, model });
    }
  });

  it('the keys are not in the store in plain: neither goosed.db nor its WAL holds them', () => {
    const files = dbBytes(home);
    assert.ok(files.some(([f]) => f === 'goosed.db'));
    for (const [f, bytes] of files) {
      for (const k of [KA, KB]) assert.equal(bytes.indexOf(k), -1, `a user's key is in ${f}`);
    }
    // ... yet they are kept there, sealed (the next test's replies, and the restart, use them)
    assert.ok(files.some(([, bytes]) => bytes.includes('key:OPENAI_API_KEY')), 'no sealed key in the store');
    // the server's default key is the admin's, in secrets.yaml (0600), as before
    assert.ok(readFileSync(path.join(home, '.config/goose/secrets.yaml'), 'utf8').includes(KD));
  });

  it('max_replies_per_user: a second reply of the same user is 429 with Retry-After; another user still starts one', async () => {
    await fake.script([shell('call_q', 'true'), { text: 'bob goes on' }, { text: 'carol done' }]);
    const s1 = await newSession(srv, carol);
    const s2 = await newSession(srv, carol);
    const sb = await newSession(srv, bob);
    const w = await watch(srv, s1, as(carol).headers);
    const pending = sayLater(srv, carol, s1, 'run true');
    await w.until('tool_confirmation'); // carol's reply runs, waiting for her answer
    const r = await say(srv, carol, s2, 'another');
    assertError(r, 429, 'too_many_replies', /max_replies_per_user/);
    assert.match(r.headers.get('retry-after'), /^\d+$/);
    const b = await say(srv, bob, sb, 'mine');
    assert.equal(b.status, 200, b.text);
    assert.match(b.text, /bob goes on/);
    const ok = await post(srv, `/api/sessions/${s1}/tool_confirmations`, { id: 'call_q', action: 'deny' }, as(carol));
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await pending).status, 200);
    w.close();
    // once it ended, carol starts one again
    await fake.script([{ text: 'again' }]);
    assert.equal((await say(srv, carol, s2, 'again')).status, 200);
  });

  it("a user's always_allow is theirs: it is not asked of them again, but another user is still asked", async () => {
    const permFile = path.join(home, '.config/goose/permission.yaml');
    const sa = await newSession(srv, alice);
    const wa = await watch(srv, sa, as(alice).headers);
    await fake.script([shell('call_a1', 'true'), { text: 'done a1' }]);
    const pa = sayLater(srv, alice, sa, 'run it');
    await wa.until('tool_confirmation');
    assert.equal((await post(srv, `/api/sessions/${sa}/tool_confirmations`, { id: 'call_a1', action: 'always_allow' }, as(alice))).status, 200);
    assert.equal((await pa).status, 200);
    wa.close();
    // alice again: the tool runs without a question
    await fake.script([shell('call_a2', 'true'), { text: 'done a2' }]);
    const again = await say(srv, alice, sa, 'run it again');
    assert.equal(again.status, 200, again.text);
    assert.match(again.text, /done a2/);
    const sent = await fake.requests('openai');
    const toolMsg = sent.at(-1).body.messages.filter((m) => m.role === 'tool').at(-1);
    assert.equal(toolMsg.tool_call_id, 'call_a2');
    assert.doesNotMatch(JSON.stringify(toolMsg.content), /denied|declined/i);
    // the server's permission.yaml is the admin's: alice's answer is not there
    assert.ok(!existsSync(permFile) || !readFileSync(permFile, 'utf8').includes('developer__shell'));
    // bob is asked
    const sb = await newSession(srv, bob);
    const wb = await watch(srv, sb, as(bob).headers);
    await fake.script([shell('call_b1', 'true'), { text: 'done b1' }]);
    const pb = sayLater(srv, bob, sb, 'run it');
    const seen = await wb.until('tool_confirmation');
    assert.equal(JSON.parse(seen.find((e) => e.event === 'tool_confirmation').data).id, 'call_b1');
    assert.equal((await post(srv, `/api/sessions/${sb}/tool_confirmations`, { id: 'call_b1', action: 'deny' }, as(bob))).status, 200);
    assert.equal((await pb).status, 200);
    wb.close();
  });

  it("alice's always_allow is kept across a restart; a replaced server.key gives alice a clear error, not a crash", async () => {
    await stopAndCheck(srv);
    srv = await startServer({ home, env: { OPENAI_HOST: fake.url, GOOSE_MODE: 'approve', GOOSE_MAX_REPLIES_PER_USER: 1 } });
    const sa = await newSession(srv, alice);
    await fake.script([shell('call_a3', 'true'), { text: 'done a3' }]);
    const r = await say(srv, alice, sa, 'run it after the restart');
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /done a3/);
    assert.deepEqual(await lastCall(fake), { auth: `Bearer ${KA}`, model: 'gpt-a' });

    await stopAndCheck(srv);
    writeFileSync(path.join(dataDir(home), 'server.key'), crypto.randomBytes(32), { mode: 0o600 });
    srv = await startServer({ home, env: { OPENAI_HOST: fake.url, GOOSE_MODE: 'approve' } });
    const e = await say(srv, alice, sa, 'hello');
    assertError(e, 503, 'provider_not_configured', /cannot decrypt your API key OPENAI_API_KEY.*server\.key changed/);
    assert.ok(!e.text.includes(KA));
    // the server is fine, and carol (the default) is served
    assert.equal((await get(srv, '/status')).status, 200);
    await fake.script([{ text: 'carol fine' }, { text: 'alice again' }]);
    const sc = await newSession(srv, carol);
    assert.equal((await say(srv, carol, sc, 'hi')).status, 200);
    // alice sets her key again, and is served
    assert.equal((await post(srv, '/api/providers', { name: 'openai', api_key: KA, model: 'gpt-a' }, as(alice))).status, 200);
    const ok = await say(srv, alice, sa, 'hello again');
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(await lastCall(fake), { auth: `Bearer ${KA}`, model: 'gpt-a' });
  });

  it('a user forgets their own provider and keys (DELETE /api/providers/current): the default applies to them again, also after a restart', async () => {
    const r = await request(srv, 'DELETE', '/api/providers/current', as(bob));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { name: 'openai', model: 'gpt-default' });
    assert.deepEqual((await get(srv, '/api/providers/current', as(bob))).body, { name: 'openai', model: 'gpt-default' });
    // alice keeps hers; carol, who kept nothing, forgets nothing
    assert.deepEqual((await get(srv, '/api/providers/current', as(alice))).body, { name: 'openai', model: 'gpt-a' });
    assert.equal((await request(srv, 'DELETE', '/api/providers/current', as(carol))).status, 200);
    // bob's replies go out with the server's key and model, not the key he had kept
    const say1 = async () => {
      await fake.script([{ text: 'bob on the default' }]);
      const sid = await newSession(srv, bob);
      const out = await say(srv, bob, sid, 'hello');
      assert.equal(out.status, 200, out.text);
      assert.deepEqual(await lastCall(fake), { auth: `Bearer ${KD}`, model: 'gpt-default' });
    };
    await say1();
    await stopAndCheck(srv);
    srv = await startServer({ home, env: { OPENAI_HOST: fake.url, GOOSE_MODE: 'approve' } });
    assert.deepEqual((await get(srv, '/api/providers/current', as(bob))).body, { name: 'openai', model: 'gpt-default' });
    await say1(); // bob's key (KB) is gone from the store too: it would go first
  });
});

describe('the server key from GOOSE_SERVER_KEY', () => {
  it('a valid key (hex or base64) is used: no server.key is made', async () => {
    for (const key of [crypto.randomBytes(32).toString('hex'), crypto.randomBytes(32).toString('base64')]) {
      const home = tempDir();
      const tok = await addUser(home, 'dora');
      const srv = await startServer({ home, env: { GOOSE_SERVER_KEY: key } });
      try {
        const r = await post(srv, '/api/providers', { name: 'openai', api_key: KA }, as(tok));
        assert.equal(r.status, 200, r.text);
        assert.ok(!existsSync(path.join(dataDir(home), 'server.key')));
        assert.ok(!srv.log().includes(key));
      } finally {
        await stopAndCheck(srv);
      }
    }
  });

  it('a malformed key: goosed refuses to start and says why', async () => {
    const r = await runGoosed(['--port', '0'], { GOOSE_SERVER_KEY: 'not-a-key' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /GOOSE_SERVER_KEY: not a server key \(32 bytes/);
  });
});

describe('without users (the single-user and X-Secret-Key modes) nothing changes', () => {
  it('POST /api/providers sets the server provider; scope "user" is refused for the local user', async () => {
    const fake = await startFake();
    const srv = await startServer({ env: { OPENAI_HOST: fake.url } });
    try {
      const r = await post(srv, '/api/providers', { name: 'openai', api_key: KD, model: 'gpt-x' });
      assert.equal(r.status, 200, r.text);
      assert.ok(readFileSync(path.join(srv.home, '.config/goose/secrets.yaml'), 'utf8').includes(KD));
      assert.match(readFileSync(path.join(srv.home, '.config/goose/config.yaml'), 'utf8'), /GOOSE_MODEL: "?gpt-x/);
      assertError(await post(srv, '/api/providers', { name: 'openai', scope: 'user' }), 400, 'bad_request', /local user/);
      assertError(await request(srv, 'DELETE', '/api/providers/current'), 400, 'bad_request', /local user has no provider of their own/);
      const r2 = await request(srv, 'POST', '/api/providers', { json: { name: 'openai', scope: 'default' } });
      assert.equal(r2.status, 200, r2.text);
    } finally {
      await stopAndCheck(srv);
      await fake.stop();
    }
  });
});
