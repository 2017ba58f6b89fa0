// Where a user's sessions work: a user who is not an admin gets a workspace of their own
// (user_workspaces/USER_ID, made on demand, mode 0700) and may make, import and fork sessions
// only there and inside allowed_roots when it is set; never in goosed's HOME, another user's
// directory or the system's. Admins and the local user choose any directory (inside
// allowed_roots when set), as before. A session a user made elsewhere before (under other
// allowed_roots, or through a link put in place since) runs no tool there.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAndCheck, tempDir, runGoosed, have } from './lib/server.mjs';
import { get, post, assertError } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';
import { addUser } from './lib/users.mjs';

const KEY = 'sk-workspaces-test-key-0123456789';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const as = (token) => (token ? { headers: { Authorization: `Bearer ${token}` } } : {});
const providerEnv = (fake, extra = {}) => ({
  GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, ...extra,
});
const workspaces = (home) => path.join(home, '.local/share/goose/workspaces');
const shellCall = (command) => ({ tool_calls: [{ id: 'call_ws', name: 'developer__shell', arguments: { command } }] });

async function create(srv, token, body) {
  return post(srv, '/api/sessions', { name: 'ws', ...body }, as(token));
}

async function created(srv, token, body) {
  const r = await create(srv, token, body);
  assert.equal(r.status, 201, r.text);
  return r.body;
}

/** Runs one shell command as the session's one tool call; resolves with the tool's result text. */
async function runShell(srv, fake, token, sid, command) {
  await fake.script([shellCall(command), { text: 'done' }]);
  const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'go' }, as(token));
  assert.equal(r.status, 200, r.text);
  const hist = await get(srv, `/api/sessions/${sid}/messages`, as(token));
  const res = hist.body.at(-2).content[0];
  assert.equal(res.type, 'tool_response', JSON.stringify(hist.body));
  return res.content[0].text;
}

/** A session document of goosed's own format, with one exchange, exported from dir. */
const exported = (dir) => ({
  format: 'goosed-session', version: 1,
  session: { name: 'moved', working_dir: dir },
  messages: [
    { role: 'user', content: [{ type: 'text', text: 'hello' }] },
    { role: 'assistant', content: [{ type: 'text', text: 'hi' }] },
  ],
});

describe('a user who is not an admin works in their own workspace', () => {
  let fake, srv, home, outside, root, alice, bob, aliceWs, bobWs;
  before(async () => {
    home = tempDir('goosed-ws-home-');
    outside = tempDir('goosed-ws-outside-');
    writeFileSync(path.join(outside, 'notes.txt'), 'someone else\'s\n');
    root = await addUser(home, 'root', true);
    alice = await addUser(home, 'alice');
    bob = await addUser(home, 'bob');
    fake = await startFake();
    srv = await startServer({ home, env: providerEnv(fake) });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it('gets their workspace when they give no directory: user_workspaces/USER_ID, mode 0700, one per user', async () => {
    const a = await created(srv, alice, {});
    aliceWs = a.working_dir;
    assert.equal(path.dirname(aliceWs), workspaces(home));
    assert.match(path.basename(aliceWs), UUID);
    assert.equal(statSync(aliceWs).mode & 0o777, 0o700);
    assert.equal(statSync(workspaces(home)).mode & 0o777, 0o700);
    assert.equal((await created(srv, alice, {})).working_dir, aliceWs, 'the same workspace again');
    bobWs = (await created(srv, bob, {})).working_dir;
    assert.notEqual(bobWs, aliceWs);
    assert.equal(path.dirname(bobWs), workspaces(home));
    // a directory of their own inside it, by its path
    mkdirSync(path.join(aliceWs, 'project'));
    assert.equal((await created(srv, alice, { working_directory: path.join(aliceWs, 'project') })).working_dir,
      path.join(aliceWs, 'project'));
  });

  it('is refused goosed\'s HOME, another user\'s workspace, the system and any other directory (400 naming it and their workspace)', async () => {
    for (const dir of [home, path.join(home, '.local/share/goose'), bobWs, '/etc', '/', outside, path.join(aliceWs, '..')]) {
      for (const field of ['working_directory', 'cwd', 'working_dir']) {
        const r = await create(srv, alice, { [field]: dir });
        assertError(r, 400, 'bad_request', new RegExp(`^${field}: .* is outside the directories you may use`));
        assert.ok(r.body.error.includes(path.resolve(dir)), r.body.error);
        assert.ok(r.body.error.includes(aliceWs), `the message names where they may work: ${r.body.error}`);
      }
    }
    // a link in their workspace to somewhere else is the somewhere else
    symlinkSync(home, path.join(aliceWs, 'to-home'));
    assertError(await create(srv, alice, { working_directory: path.join(aliceWs, 'to-home') }), 400, 'bad_request',
      `${home} is outside the directories you may use`);
    const list = await get(srv, '/api/sessions', as(alice));
    for (const s of list.body) assert.ok(s.working_dir.startsWith(aliceWs), s.working_dir);
  });

  it('their shell writes in their workspace and nowhere else', { skip: !have('bwrap') && 'bwrap is missing' }, async () => {
    const sid = (await created(srv, alice, {})).id;
    const out = await runShell(srv, fake, alice, sid,
      `echo mine > mine.txt; echo x >> ${home}/.bashrc; echo x > ${outside}/planted; echo x > ${bobWs}/planted; pwd`);
    assert.ok(out.includes(aliceWs), out);
    assert.equal(readFileSync(path.join(aliceWs, 'mine.txt'), 'utf8'), 'mine\n');
    assert.ok(!existsSync(path.join(home, '.bashrc')), 'goosed\'s ~/.bashrc was written');
    assert.ok(!existsSync(path.join(outside, 'planted')), 'a directory outside was written');
    assert.ok(!existsSync(path.join(bobWs, 'planted')), 'another user\'s workspace was written');
  });

  it('an admin still chooses any directory', async () => {
    assert.equal((await created(srv, root, { working_directory: outside })).working_dir, outside);
    assert.equal((await created(srv, root, { working_directory: home })).working_dir, home);
    assert.equal((await created(srv, root, {})).working_dir, home, 'the server\'s own directory by default');
    assert.ok(!existsSync(path.join(workspaces(home), 'root')));
  });

  it('an import obeys the same rule: into their workspace, not elsewhere', async () => {
    const r1 = await post(srv, '/api/sessions/import', exported(outside), as(alice));
    assertError(r1, 400, 'bad_request', /^session\.working_dir: .* is outside the directories you may use.*give "working_directory"/);
    const r2 = await post(srv, '/api/sessions/import', { ...exported(aliceWs), working_directory: home }, as(alice));
    assertError(r2, 400, 'bad_request', `working_directory: ${home} is outside the directories you may use`);
    const r3 = await post(srv, `/api/sessions/import?working_directory=${encodeURIComponent('/etc')}`, exported(aliceWs), as(alice));
    assertError(r3, 400, 'bad_request', 'working_directory: /etc is outside the directories you may use');
    const r4 = await post(srv, '/api/sessions/import', { ...exported(outside), working_directory: aliceWs }, as(alice));
    assert.equal(r4.status, 201, r4.text);
    assert.equal(r4.body.working_dir, aliceWs);
    const r5 = await post(srv, '/api/sessions/import', exported(outside), as(root));
    assert.equal(r5.status, 201, r5.text);
    assert.equal(r5.body.working_dir, outside, 'an admin imports where the export was made');
  });

  it('a fork of their own session stays in their workspace', async () => {
    const sid = (await created(srv, alice, {})).id;
    const r = await post(srv, `/api/sessions/${sid}/fork`, {}, as(alice));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.working_dir, aliceWs);
  });
});

describe('sessions a user made where they may no longer work', () => {
  let fake, home, outside, user, admin;
  before(async () => {
    home = tempDir('goosed-ws-old-');
    outside = tempDir('goosed-ws-old-outside-');
    user = await addUser(home, 'carol');
    admin = await addUser(home, 'root', true);
    fake = await startFake();
  });
  after(() => fake.stop());

  it('a reply runs no tool there, and says why; a fork is refused; the admin\'s session there still runs', async () => {
    // made while allowed_roots let users in there
    let srv = await startServer({ home, keepHome: true, env: providerEnv(fake, { GOOSE_ALLOWED_ROOTS: outside }) });
    let sid, adminSid;
    try {
      const s = await created(srv, user, { working_directory: outside });
      assert.equal(s.working_dir, outside);
      sid = s.id;
      adminSid = (await created(srv, admin, { working_directory: outside })).id;
      assert.match(await runShell(srv, fake, user, sid, 'echo then > then.txt; cat then.txt'), /then/);
    } finally {
      await stopAndCheck(srv);
    }
    // the admin takes allowed_roots away: the user may now work in their workspace alone
    srv = await startServer({ home, keepHome: true, env: providerEnv(fake) });
    try {
      await fake.clearRequests();
      await fake.script([shellCall('echo planted > planted.txt'), { text: 'done' }]);
      const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'go' }, as(user));
      assertError(r, 403, 'forbidden', `the session's working directory: ${outside} is outside the directories you may use`);
      assert.match(r.body.error, /its tools do not run there.*import.*allowed_roots/);
      assert.ok(!existsSync(path.join(outside, 'planted.txt')), 'the tool ran');
      assert.equal((await fake.requests('openai')).length, 0, 'the provider was asked');
      const hist = await get(srv, `/api/sessions/${sid}/messages`, as(user));
      assert.equal(hist.body.length, 4, 'the refused message was stored');
      // the session's extensions are not started there either
      assertError(await get(srv, `/api/sessions/${sid}/resources`, as(user)), 403, 'forbidden', outside);
      assertError(await post(srv, `/api/sessions/${sid}/fork`, {}, as(user)), 400, 'bad_request',
        `working_dir: ${outside} is outside the directories you may use`);
      // exported and imported into their workspace, it goes on
      const doc = await get(srv, `/api/sessions/${sid}/export`, as(user));
      assert.equal(doc.status, 200, doc.text);
      const ws = (await created(srv, user, {})).working_dir;
      const imp = await post(srv, '/api/sessions/import', { ...doc.body, working_directory: ws }, as(user));
      assert.equal(imp.status, 201, imp.text);
      // the admin's session in the same directory is theirs to use
      assert.match(await runShell(srv, fake, admin, adminSid, 'cat then.txt'), /then/);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('a directory of their workspace replaced by a link elsewhere runs no tool', async () => {
    const srv = await startServer({ home, keepHome: true, env: providerEnv(fake) });
    try {
      const ws = (await created(srv, user, {})).working_dir;
      const sub = path.join(ws, 'sub');
      mkdirSync(sub);
      const sid = (await created(srv, user, { working_directory: sub })).id;
      rmSync(sub, { recursive: true });
      symlinkSync(outside, sub); // what a command of another session of theirs in ws could do
      await fake.script([shellCall('echo planted > linked.txt'), { text: 'done' }]);
      const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'go' }, as(user));
      assertError(r, 403, 'forbidden', `${outside} is outside the directories you may use`);
      assert.ok(!existsSync(path.join(outside, 'linked.txt')), 'the tool ran in the linked directory');
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('allowed_roots and user_workspaces', () => {
  it('allowed_roots lets users in there too, and keeps admins in there; their workspace stays theirs', async () => {
    const home = tempDir('goosed-ws-roots-');
    const rootDir = tempDir('goosed-ws-root-');
    const other = tempDir('goosed-ws-other-');
    const user = await addUser(home, 'dave');
    const admin = await addUser(home, 'root', true);
    const srv = await startServer({ home, configYaml: `allowed_roots:\n  - ${rootDir}\n` });
    try {
      assert.equal((await created(srv, user, { working_directory: rootDir })).working_dir, rootDir);
      const ws = (await created(srv, user, {})).working_dir;
      assert.equal(path.dirname(ws), workspaces(home));
      const r = await create(srv, user, { working_directory: other });
      assertError(r, 400, 'bad_request', `working_directory: ${other} is outside the directories you may use`);
      assert.ok(r.body.error.includes(ws) && r.body.error.includes(`allowed_roots (${rootDir})`), r.body.error);
      assertError(await create(srv, admin, { working_directory: other }), 400, 'bad_request',
        `(allowed_roots: ${rootDir})`);
      assert.equal((await created(srv, admin, { working_directory: rootDir })).working_dir, rootDir);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('allowed_roots that hold the workspaces do not open another user\'s workspace, nor a directory holding them all', async () => {
    const home = tempDir('goosed-ws-roots-home-');
    const user = await addUser(home, 'frank');
    const other = await addUser(home, 'grace');
    mkdirSync(path.join(home, 'proj'));
    const srv = await startServer({ home, env: { GOOSE_ALLOWED_ROOTS: home } });
    try {
      const mine = (await created(srv, user, {})).working_dir;
      const theirs = (await created(srv, other, {})).working_dir;
      assert.equal(path.dirname(mine), workspaces(home));
      assert.equal((await created(srv, user, { working_directory: path.join(home, 'proj') })).working_dir, path.join(home, 'proj'));
      for (const dir of [theirs, workspaces(home), path.dirname(workspaces(home)), home]) {
        assertError(await create(srv, user, { working_directory: dir }), 400, 'bad_request',
          `working_directory: ${dir} is outside the directories you may use`);
      }
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('user_workspaces (GOOSE_USER_WORKSPACES) names the parent; inside goosed\'s data or config directory, or relative, it is refused', async () => {
    const home = tempDir('goosed-ws-cfg-');
    const parent = path.join(tempDir('goosed-ws-parent-'), 'spaces');
    const user = await addUser(home, 'erin');
    const srv = await startServer({ home, configYaml: `user_workspaces: ${parent}\n` });
    try {
      const ws = (await created(srv, user, {})).working_dir;
      assert.equal(path.dirname(ws), parent);
      assert.equal(statSync(parent).mode & 0o777, 0o700);
    } finally {
      await stopAndCheck(srv);
    }
    const inData = await runGoosed([], { HOME: home, GOOSE_USER_WORKSPACES: path.join(home, '.local/share/goose/sessions/ws') });
    assert.notEqual(inData.code, 0);
    assert.match(inData.stderr, /user_workspaces: .* is inside goosed's own data directory/);
    const inConfig = await runGoosed([], { HOME: home, GOOSE_USER_WORKSPACES: path.join(home, '.config/goose') });
    assert.notEqual(inConfig.code, 0);
    assert.match(inConfig.stderr, /user_workspaces: .* is inside goosed's own configuration directory/);
    const relative = await runGoosed([], { HOME: home, GOOSE_USER_WORKSPACES: 'spaces' });
    assert.notEqual(relative.code, 0);
    assert.match(relative.stderr, /GOOSE_USER_WORKSPACES: expected an absolute path/);
  });

  it('without users the local user still works anywhere, in the server\'s directory by default', async () => {
    const dir = tempDir('goosed-ws-local-');
    const srv = await startServer({});
    try {
      assert.equal((await created(srv, undefined, { working_directory: dir })).working_dir, dir);
      assert.equal((await created(srv, undefined, {})).working_dir, srv.cwd);
      assert.ok(!existsSync(workspaces(srv.home)), 'a workspace was made for the local user');
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('a link swapped into a workspace while a reply runs', { skip: !have('bwrap') && 'bwrap is missing' }, () => {
  it('takes no later command of that reply elsewhere: it is refused, saying so', async () => {
    const { watch } = await import('./lib/events.mjs');
    const home = tempDir('goosed-ws-swap-');
    const carol = await addUser(home, 'carol');
    const fake = await startFake();
    const srv = await startServer({ home, env: providerEnv(fake, { GOOSE_MODE: 'approve' }) });
    const outside = tempDir('goosed-ws-swap-outside-');
    try {
      const ws = (await created(srv, carol, {})).working_dir;
      const sub = path.join(ws, 'sub');
      mkdirSync(sub);
      const sid = (await created(srv, carol, { working_directory: sub })).id;
      const w = await watch(srv, sid, as(carol).headers);
      await fake.script([
        { tool_calls: [{ id: 'call_1', name: 'developer__shell', arguments: { command: 'echo one > one.txt' } }] },
        { tool_calls: [{ id: 'call_2', name: 'developer__shell', arguments: { command: 'echo two > two.txt' } }] },
        { text: 'done' },
      ]);
      const reply = post(srv, `/api/sessions/${sid}/messages`, { content: 'go' }, as(carol));
      const answer = async (id) => {
        await w.until('tool_confirmation', (d) => d.id === id);
        const r = await post(srv, `/api/sessions/${sid}/tool_confirmations`, { id, action: 'allow_once' }, as(carol));
        assert.equal(r.status, 200, r.text);
      };
      await answer('call_1');
      // between the two commands (another session of theirs could do it): sub becomes a link out
      await w.until('tool_confirmation', (d) => d.id === 'call_2');
      renameSync(sub, `${sub}-old`);
      symlinkSync(outside, sub);
      await answer('call_2');
      assert.equal((await reply).status, 200);
      w.close();
      assert.equal(readFileSync(path.join(`${sub}-old`, 'one.txt'), 'utf8'), 'one\n');
      assert.ok(!existsSync(path.join(outside, 'two.txt')), 'the second command wrote outside the workspace');
      const hist = await get(srv, `/api/sessions/${sid}/messages`, as(carol));
      const results = hist.body.flatMap((m) => m.content).filter((c) => c.type === 'tool_response');
      assert.match(JSON.stringify(results.at(-1)), /is reached through a link now/);
    } finally {
      await stopAndCheck(srv);
      await fake.stop();
    }
  });
});
