// OAuth for the server's own remote extensions: a session's extension whose MCP server asks for
// a sign-in (the MCP SDK's example server with OAuth: dynamic registration, PKCE, tokens checked
// for this resource) shows the user the address as a URL elicitation; the authorization server
// sends the browser back to goosed's GET /oauth/callback, the reply goes on with the tool. The
// test is the user's client and browser.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer, stopAndCheck, tempDir, runGoosed } from './lib/server.mjs';
import { get, post, request } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';
import { watch } from './lib/events.mjs';
import { addUser } from './lib/users.mjs';
import { startOAuthServer, startExpiringServer } from './lib/mcp_oauth.mjs';
import { readFileSync, statSync } from 'node:fs';

const KEY = 'sk-oauth-server-secret-0123';
const SECRET = 'goosed-secret-key-for-the-oauth-test';
const call = (id, name, args) => ({ tool_calls: [{ id, name, arguments: args }] });
const H = { 'X-Secret-Key': SECRET };

async function toolText(fake) {
  const msgs = (await fake.requests('openai')).at(-1).body.messages.filter((m) => m.role === 'tool');
  return JSON.stringify(msgs.at(-1).content);
}

describe('a session\'s remote extension that asks for OAuth', () => {
  let fake, srv, mcp, other, dir;
  before(async () => {
    mcp = await startOAuthServer();
    other = await startOAuthServer();
    fake = await startFake({ keys: { openai: KEY } });
    dir = tempDir('goosed-oauth-cwd-');
    srv = await startServer({
      env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, GOOSE_SERVER__SECRET_KEY: SECRET, RUST_LOG: 'debug' },
      configYaml: `extensions:
  demo:
    enabled: true
    type: streamable_http
    name: demo
    uri: ${mcp.url}
    timeout: 30
`,
    });
  });
  after(async () => {
    try { await stopAndCheck(srv); } finally { await fake.stop(); await mcp.stop(); await other.stop(); }
  });

  async function newSession() {
    const r = await post(srv, '/api/sessions', { name: 'oauth', working_directory: dir }, { headers: H });
    assert.equal(r.status, 201, r.text);
    return r.body.id;
  }

  it('shows the sign-in address as a URL elicitation; the browser\'s return to /oauth/callback lets the reply call the tool', async () => {
    const sid = await newSession();
    const w = await watch(srv, sid, H);
    await fake.script([call('g1', 'demo__greet', { name: 'Ada' }), { text: 'greeted' }]);
    const reply = post(srv, `/api/sessions/${sid}/messages`, { content: 'greet Ada' }, { headers: H });
    const seen = await w.until('elicitation', (d) => d.extension === 'demo');
    const q = JSON.parse(seen.find((e) => e.event === 'elicitation').data);
    assert.equal(q.mode, 'url');
    assert.match(q.message, /demo asks you to sign in/);
    const waiting = await get(srv, `/api/sessions/${sid}/extensions`, { headers: H });
    assert.equal(waiting.body.extensions.find((e) => e.name === 'demo').status, 'signing_in');
    const authorize = new URL(q.url);
    assert.equal(authorize.searchParams.get('redirect_uri'), `${srv.url}/oauth/callback`);
    assert.equal(authorize.searchParams.get('resource'), mcp.url);
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    // a stray visit (another state) is refused and changes nothing
    const stray = await fetch(`${srv.url}/oauth/callback?code=x&state=not-this-one`);
    assert.equal(stray.status, 400);
    assert.doesNotMatch(await stray.text(), /not-this-one/, 'nothing of the request is written back');
    // the authorization server approves at once, and sends the browser back (no goosed key)
    const a = await fetch(q.url, { redirect: 'manual' });
    assert.equal(a.status, 302);
    const back = await fetch(a.headers.get('location'));
    assert.equal(back.status, 200);
    assert.match(await back.text(), /Signed in/);
    assert.equal(back.headers.get('content-security-policy'), "default-src 'none'");
    const r = await reply;
    assert.equal(r.status, 200, r.text);
    assert.match(await toolText(fake), /Hello, Ada!/);
    assert.equal((await get(srv, `/api/sessions/${sid}/extensions`, { headers: H })).body.extensions.find((e) => e.name === 'demo').status, 'running');
    // used once: the same return again is not taken
    assert.equal((await fetch(a.headers.get('location'))).status, 400);
    w.close();
  });

  it('another session of the same user uses that sign-in without asking again', async () => {
    const sid = await newSession();
    const w = await watch(srv, sid, H);
    await fake.script([call('g2', 'demo__greet', { name: 'Grace' }), { text: 'greeted' }]);
    const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'greet Grace' }, { headers: H });
    assert.equal(r.status, 200, r.text);
    assert.match(await toolText(fake), /Hello, Grace!/);
    const seen = await w.until('message_complete');
    w.close();
    assert.ok(!seen.some((e) => e.event === 'elicitation' && JSON.parse(e.data).extension === 'demo'), 'no second sign-in');
  });

  it('a declined sign-in fails the extension\'s start, told to the client as a notification; the reply still ends', async () => {
    const sid = await newSession();
    // the session's own extension, added through the API: another server, not signed in to
    const add = await post(srv, `/api/sessions/${sid}/extensions`, { name: 'other', config: { type: 'streamable_http', uri: other.url, timeout: 30 } }, { headers: H });
    assert.equal(add.status, 200, add.text);
    const w = await watch(srv, sid, H);
    await fake.script([call('o1', 'other__greet', { name: 'Bob' }), { text: 'could not' }]);
    const reply = post(srv, `/api/sessions/${sid}/messages`, { content: 'greet Bob' }, { headers: H });
    const seen = await w.until('elicitation', (d) => d.extension === 'other');
    const q = JSON.parse(seen.filter((e) => e.event === 'elicitation').map((e) => e.data).find((d) => JSON.parse(d).extension === 'other'));
    const ans = await post(srv, `/api/sessions/${sid}/elicitations`, { id: q.id, action: 'decline' }, { headers: H });
    assert.equal(ans.status, 200, ans.text);
    const r = await reply;
    assert.equal(r.status, 200, r.text);
    // the model is told the tool is not there; the client and the log why
    assert.match(await toolText(fake), /unknown tool 'other__greet'/);
    const told = await w.until('notification', (d) => d.extension === 'other');
    const note = JSON.parse(told.filter((e) => e.event === 'notification').at(-1).data);
    assert.equal(note.level, 'error');
    assert.match(note.message, /the user declined to sign in/);
    await srv.waitForLog(/other: .*the user declined to sign in/);
    const listed = (await get(srv, `/api/sessions/${sid}/extensions`, { headers: H })).body.extensions.find((e) => e.name === 'other');
    assert.equal(listed.status, 'failed');
    assert.match(listed.error, /the user declined to sign in/);
    // its address, visited after all, is no longer taken
    const a = await fetch(q.url, { redirect: 'manual' });
    assert.equal((await fetch(a.headers.get('location'))).status, 400);
    w.close();
  });

  it('no request of the extension times out while its user signs in, however slow they are', async () => {
    const sid = await newSession();
    // a second of timeout: its start (initialize) waits longer than that for the user
    const add = await post(srv, `/api/sessions/${sid}/extensions`, { name: 'slow', config: { type: 'streamable_http', uri: other.url, timeout: 1 } }, { headers: H });
    assert.equal(add.status, 200, add.text);
    const w = await watch(srv, sid, H);
    await fake.script([call('s1', 'slow__greet', { name: 'Slow' }), { text: 'greeted' }]);
    const reply = post(srv, `/api/sessions/${sid}/messages`, { content: 'greet' }, { headers: H });
    const seen = await w.until('elicitation', (d) => d.extension === 'slow');
    const q = seen.filter((e) => e.event === 'elicitation').map((e) => JSON.parse(e.data)).find((d) => d.extension === 'slow');
    await new Promise((resolve) => setTimeout(resolve, 1500)); // the user reads, types a password
    const a = await fetch(q.url, { redirect: 'manual' });
    assert.equal((await fetch(a.headers.get('location'))).status, 200);
    const r = await reply;
    assert.equal(r.status, 200, r.text);
    assert.match(await toolText(fake), /Hello, Slow!/);
    w.close();
  });

  it('signs in with a client registered beforehand (the extension\'s oauth), never shown or exported', async () => {
    const third = await startOAuthServer();
    try {
      // the admin registers goosed at the authorization server, with goosed's callback
      const reg = await fetch(`${third.auth}/register`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ client_name: 'our goosed', redirect_uris: [`${srv.url}/oauth/callback`], grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_post' }),
      });
      assert.equal(reg.status, 201);
      const client = await reg.json();
      const sid = await newSession();
      const bad = await post(srv, `/api/sessions/${sid}/extensions`, { name: 'given', config: { type: 'streamable_http', uri: third.url, oauth: { client_secret: 'x' } } }, { headers: H });
      assert.equal(bad.status, 400);
      assert.match(bad.body.error, /oauth: a client_secret or private_key goes with its client_id/);
      const add = await post(srv, `/api/sessions/${sid}/extensions`, { name: 'given', config: { type: 'streamable_http', uri: third.url, timeout: 30, oauth: { client_id: client.client_id, client_secret: client.client_secret } } }, { headers: H });
      assert.equal(add.status, 200, add.text);
      const w = await watch(srv, sid, H);
      await fake.script([call('c1', 'given__greet', { name: 'Given' }), { text: 'greeted' }]);
      const reply = post(srv, `/api/sessions/${sid}/messages`, { content: 'greet' }, { headers: H });
      const q = await signIn(w, 'given');
      assert.equal(new URL(q.url).searchParams.get('client_id'), client.client_id, 'the given client, not a new registration');
      const r = await reply;
      assert.equal(r.status, 200, r.text);
      assert.match(await toolText(fake), /Hello, Given!/);
      w.close();
      // the secret is nowhere a client can read it
      const shown = JSON.stringify((await get(srv, `/api/sessions/${sid}/extensions`, { headers: H })).body);
      const exported = (await get(srv, `/api/sessions/${sid}/export`, { headers: H })).text;
      for (const text of [shown, exported]) assert.ok(!text.includes(client.client_secret), 'the client secret is shown');
      assert.ok(!readFileSync(path.join(srv.home, '.local/share/goose/sessions/goosed.db')).toString('latin1').includes(client.client_secret), 'the client secret is in goosed.db as text');
    } finally {
      await third.stop();
    }
  });

  it('a sign-in waiting for its user does not hold up a stop: the reply ends without the extension', async () => {
    const srv2 = await startServer({
      env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY },
      configYaml: `extensions:\n  other:\n    enabled: true\n    type: streamable_http\n    name: other\n    uri: ${other.url}\n    timeout: 30\n`,
    });
    const c = await post(srv2, '/api/sessions', { name: 'stop', working_directory: dir });
    const w = await watch(srv2, c.body.id);
    await fake.script([{ text: 'no tools' }]);
    const reply = post(srv2, `/api/sessions/${c.body.id}/messages`, { content: 'hi' });
    await w.until('elicitation', (d) => d.extension === 'other');
    const stopped = stopAndCheck(srv2); // exit status 0, within the stop's bound, or it throws
    const r = await reply;
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /no tools/, 'the reply ran to its end, not cancelled by the stop');
    await stopped;
    assert.match(srv2.log(), /other: .*the server is stopping/);
    w.close();
  });

  it('keeps the tokens out of its log and answers', async () => {
    const tokens = [...mcp.output().matchAll(/token: '([^']+)'/g)].map((m) => m[1]);
    assert.ok(tokens.length > 0, 'the example server logged no token');
    for (const tok of tokens) assert.ok(!srv.log().includes(tok), 'a token reached goosed\'s log');
    const r = await request(srv, 'GET', '/oauth/callback');
    assert.equal(r.status, 400);
    assert.match(r.text, /No sign-in waits for this page/);
  });
});

/** Signs in through the elicitation w saw for extension name: the authorization server approves
 * at once and the "browser" follows its redirect to goosed. Returns the elicitation. */
async function signIn(w, name) {
  const seen = await w.until('elicitation', (d) => d.extension === name);
  const q = seen.filter((e) => e.event === 'elicitation').map((e) => JSON.parse(e.data)).find((d) => d.extension === name);
  const a = await fetch(q.url, { redirect: 'manual' });
  assert.equal(a.status, 302);
  const back = await fetch(a.headers.get('location'));
  assert.equal(back.status, 200, await back.text());
  return q;
}

/** A session of who on srv asks the model to greet name through the demo extension (signing in
 * first when signin); resolves with how many elicitations its watcher saw. */
async function greetThrough(srv, fake, dir, who, name, { signin = false } = {}) {
  const c = await post(srv, '/api/sessions', { name: 'oauth', working_directory: dir }, { headers: who });
  assert.equal(c.status, 201, c.text);
  const sid = c.body.id;
  const w = await watch(srv, sid, who);
  await fake.script([call(`g-${name}`, 'demo__greet', { name }), { text: 'greeted' }]);
  const reply = post(srv, `/api/sessions/${sid}/messages`, { content: `greet ${name}` }, { headers: who });
  if (signin) {
    await signIn(w, 'demo');
  } else { // asked after all: said at once (declined, so the reply ends), not after the wait
    const first = (await w.until(['elicitation', 'message_complete'])).find((e) => ['elicitation', 'message_complete'].includes(e.event));
    if (first.event === 'elicitation') {
      await post(srv, `/api/sessions/${sid}/elicitations`, { id: JSON.parse(first.data).id, action: 'decline' }, { headers: who });
      await reply;
      assert.fail(`${name}: asked to sign in again`);
    }
  }
  const r = await reply;
  assert.equal(r.status, 200, r.text);
  const seen = await w.until('message_complete');
  w.close();
  assert.match(await toolText(fake), new RegExp(`Hello, ${name}!`));
  return seen.filter((e) => e.event === 'elicitation').length;
}

describe('sign-ins of users with an id', () => {
  let fake, mcp, home, dir, alice, bob;
  const config = () => `extensions:\n  demo:\n    enabled: true\n    type: streamable_http\n    name: demo\n    uri: ${mcp.url}\n    timeout: 30\n`;
  // GOOSE_ALLOWED_ROOTS: the users' sessions work in dir too (else in their workspace only)
  const start = () => startServer({ home, env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, GOOSE_ALLOWED_ROOTS: dir }, configYaml: config() });
  before(async () => {
    mcp = await startOAuthServer();
    fake = await startFake({ keys: { openai: KEY } });
    home = tempDir('goosed-oauth-home-');
    dir = tempDir('goosed-oauth-cwd-');
    alice = { Authorization: `Bearer ${await addUser(home, 'alice')}` };
    bob = { Authorization: `Bearer ${await addUser(home, 'bob')}` };
  });
  after(async () => { await fake.stop(); await mcp.stop(); });

  const greet = (srv, who, name, opts) => greetThrough(srv, fake, dir, who, name, opts);

  it('keeps a user\'s sign-in sealed in the store across a restart, and never lends it to another user', async () => {
    let srv = await start();
    try {
      assert.equal(await greet(srv, alice, 'Alice', { signin: true }), 1);
    } finally {
      await stopAndCheck(srv);
    }
    // the tokens are in the store sealed, not as text
    const db = readFileSync(path.join(home, '.local/share/goose/sessions/goosed.db')).toString('latin1');
    const tokens = [...mcp.output().matchAll(/token: '([^']+)'/g)].map((m) => m[1]);
    assert.ok(tokens.length > 0);
    for (const t of tokens) assert.ok(!db.includes(t), 'a token is in goosed.db as text');
    srv = await start();
    try {
      assert.equal(await greet(srv, alice, 'Again'), 0, 'alice is not asked again after the restart');
      assert.equal(await greet(srv, bob, 'Bob', { signin: true }), 1, 'bob signs in for himself');
      const log = srv.log();
      for (const t of [...mcp.output().matchAll(/token: '([^']+)'/g)].map((m) => m[1])) assert.ok(!log.includes(t), 'a token reached the log');
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('the local user\'s sign-ins (no users)', () => {
  it('are kept sealed in the data directory (0600) across a restart', async () => {
    const mcp = await startOAuthServer();
    const fake = await startFake({ keys: { openai: KEY } });
    const home = tempDir('goosed-oauth-local-');
    const dir = tempDir('goosed-oauth-cwd-');
    const start = () => startServer({ home, env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY },
      configYaml: `extensions:\n  demo:\n    enabled: true\n    type: streamable_http\n    name: demo\n    uri: ${mcp.url}\n    timeout: 30\n` });
    try {
      let srv = await start();
      try {
        assert.equal(await greetThrough(srv, fake, dir, {}, 'Local', { signin: true }), 1);
      } finally {
        await stopAndCheck(srv);
      }
      const file = path.join(home, '.local/share/goose/sessions/signins');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const kept = readFileSync(file).toString('latin1');
      const tokens = [...mcp.output().matchAll(/token: '([^']+)'/g)].map((m) => m[1]);
      assert.ok(tokens.length > 0);
      for (const t of tokens) assert.ok(!kept.includes(t), 'a token is in the file as text');
      srv = await start();
      try {
        assert.equal(await greetThrough(srv, fake, dir, {}, 'Back'), 0, 'not asked again after the restart');
      } finally {
        await stopAndCheck(srv);
      }
    } finally {
      await fake.stop();
      await mcp.stop();
    }
  });
});

describe('a kept sign-in whose token has expired', () => {
  it('is refreshed with its refresh token after a restart, without asking the user again', async () => {
    // its redirects name their issuer (RFC 9207): goosed's callback passes it on to be checked
    const exp = await startExpiringServer(4, null, { iss: 'own' });
    const fake = await startFake({ keys: { openai: KEY } });
    const home = tempDir('goosed-oauth-refresh-');
    const dir = tempDir('goosed-oauth-cwd-');
    const start = () => startServer({ home, env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY },
      configYaml: `extensions:\n  exp:\n    enabled: true\n    type: streamable_http\n    name: exp\n    uri: ${exp.url}\n    timeout: 30\n` });
    const ask = async (srv, signin) => {
      const c = await post(srv, '/api/sessions', { name: 'refresh', working_directory: dir });
      const w = await watch(srv, c.body.id);
      await fake.script([call('w1', 'exp__whoami', {}), { text: 'known' }]);
      const reply = post(srv, `/api/sessions/${c.body.id}/messages`, { content: 'who am I?' });
      if (signin) {
        await signIn(w, 'exp');
      } else {
        const first = (await w.until(['elicitation', 'message_complete'])).find((e) => ['elicitation', 'message_complete'].includes(e.event));
        if (first.event === 'elicitation') {
          await post(srv, `/api/sessions/${c.body.id}/elicitations`, { id: JSON.parse(first.data).id, action: 'decline' });
          await reply;
          assert.fail('asked to sign in again after the restart');
        }
      }
      assert.equal((await reply).status, 200);
      w.close();
      return toolText(fake);
    };
    try {
      let srv = await start();
      try {
        assert.match(await ask(srv, true), /you hold token \d+/);
      } finally {
        await stopAndCheck(srv);
      }
      const before = exp.log.length;
      srv = await start();
      try {
        assert.match(await ask(srv, false), /you hold token \d+/);
      } finally {
        await stopAndCheck(srv);
      }
      const after = exp.log.slice(before); // the restarted goosed's: its kept token expired
      assert.ok(after.includes('401 expired') && after.some((l) => l.startsWith('token refresh_token')), after.join('\n'));
      assert.ok(!after.includes('authorize'), after.join('\n'));
    } finally {
      await fake.stop();
      await exp.stop();
    }
  });
});

describe('sign-ins one user leaves waiting', () => {
  it('are at most 4: a fifth fails at once, saying so, and the others go on waiting without holding up other servers\' starts', { timeout: 60_000 }, async () => {
    const mcp = await startOAuthServer();
    const fake = await startFake({ keys: { openai: KEY } });
    const dir = tempDir('goosed-oauth-cwd-');
    const srv = await startServer({ env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY },
      configYaml: `extensions:\n  demo:\n    enabled: true\n    type: streamable_http\n    name: demo\n    uri: ${mcp.url}\n    timeout: 30\n` });
    try {
      await fake.script([{ text: 'a' }, { text: 'b' }, { text: 'c' }, { text: 'd' }, { text: 'e' }]);
      const sessions = [];
      for (let i = 0; i < 5; i++) {
        const c = await post(srv, '/api/sessions', { name: `wait ${i}`, working_directory: dir });
        sessions.push({ sid: c.body.id, w: await watch(srv, c.body.id) });
      }
      // four replies, each waiting for its sign-in
      const replies = [];
      for (const s of sessions.slice(0, 4)) {
        replies.push(post(srv, `/api/sessions/${s.sid}/messages`, { content: 'hi' }));
        await s.w.until('elicitation', (d) => d.extension === 'demo');
      }
      // the fifth: refused at once, the reply goes on without the extension
      const last = sessions[4];
      const r = await post(srv, `/api/sessions/${last.sid}/messages`, { content: 'hi' });
      assert.equal(r.status, 200, r.text);
      const told = await last.w.until('notification', (d) => d.extension === 'demo');
      assert.match(JSON.parse(told.filter((e) => e.event === 'notification').at(-1).data).message, /4 sign-ins wait for you already/);
      assert.ok(!told.some((e) => e.event === 'elicitation'), 'the fifth is not shown an address');
      // the four still wait: their extensions are signing_in
      for (const s of sessions.slice(0, 4)) {
        const ext = (await get(srv, `/api/sessions/${s.sid}/extensions`)).body.extensions.find((e) => e.name === 'demo');
        assert.equal(ext.status, 'signing_in');
      }
      await stopAndCheck(srv); // and a stop ends them
      for (const p of replies) assert.equal((await p).status, 200);
      for (const s of sessions) s.w.close();
    } finally {
      if (srv.proc.exitCode === null) await stopAndCheck(srv);
      await fake.stop();
      await mcp.stop();
    }
  });
});

describe('where the sign-in comes back: public_url', () => {
  let fake, mcp, dir;
  before(async () => {
    mcp = await startOAuthServer();
    fake = await startFake({ keys: { openai: KEY } });
    dir = tempDir('goosed-oauth-cwd-');
  });
  after(async () => { await fake.stop(); await mcp.stop(); });
  const env = (extra) => ({ GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, ...extra });
  const configYaml = () => `extensions:\n  demo:\n    enabled: true\n    type: streamable_http\n    name: demo\n    uri: ${mcp.url}\n    timeout: 30\n`;

  it('is refused at start when it is not an http(s) address', async () => {
    for (const bad of ['ftp://goose.example.com', 'https://', 'https://goose.example.com/?x=1', 'https://goose example.com']) {
      const r = await runGoosed([], { HOME: tempDir(), GOOSE_PUBLIC_URL: bad });
      assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
      assert.match(r.stderr, /GOOSE_PUBLIC_URL: expected the http:\/\/ or https:\/\/ address users reach goosed at/);
    }
  });

  it('names the redirect (its trailing slash dropped); bound elsewhere than loopback without it, no sign-in is offered', async () => {
    let srv = await startServer({ env: env({ GOOSE_PUBLIC_URL: 'https://goose.example.com/team/' }), configYaml: configYaml() });
    try {
      const c = await post(srv, '/api/sessions', { name: 'p', working_directory: dir });
      const w = await watch(srv, c.body.id);
      await fake.script([{ text: 'later' }]);
      const reply = post(srv, `/api/sessions/${c.body.id}/messages`, { content: 'hi' });
      const seen = await w.until('elicitation');
      const q = JSON.parse(seen.find((e) => e.event === 'elicitation').data);
      assert.equal(new URL(q.url).searchParams.get('redirect_uri'), 'https://goose.example.com/team/oauth/callback');
      assert.equal((await post(srv, `/api/sessions/${c.body.id}/elicitations`, { id: q.id, action: 'cancel' })).status, 200);
      assert.equal((await reply).status, 200);
      w.close();
    } finally {
      await stopAndCheck(srv);
    }
    srv = await startServer({ args: ['--host', '0.0.0.0'], env: env({ GOOSE_SERVER__SECRET_KEY: SECRET }), configYaml: configYaml() });
    try {
      const c = await post(srv, '/api/sessions', { name: 'p', working_directory: dir }, { headers: H });
      await fake.script([{ text: 'no sign-in' }]);
      const r = await post(srv, `/api/sessions/${c.body.id}/messages`, { content: 'hi' }, { headers: H });
      assert.equal(r.status, 200, r.text);
      await srv.waitForLog(/demo: .*HTTP 401|demo: .*401/);
      assert.doesNotMatch(srv.log(), /asks the user to sign in/);
    } finally {
      await stopAndCheck(srv);
    }
  });
});
