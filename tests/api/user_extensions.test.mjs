// Users' own extensions: a user (a token of `goosed user add`, not an admin) adds, turns on and off
// and removes extensions of their own through the same routes an admin uses for config.yaml's
// set; theirs reach their replies only (the fake provider records the tools each request offered),
// within GOOSE_ALLOWLIST and what the admin allows (`user_extensions: false` refuses them); no
// other user sees or changes them; they survive a restart; their stdio servers run sandboxed. The
// admin, the X-Secret-Key, and the extension routes of a server without users behave as before.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, readdirSync, copyFileSync, mkdirSync, mkdtempSync, existsSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAndCheck, runGoosed, tempDir, have, REPO } from './lib/server.mjs';
import { get, post, del, request, assertError } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';
import { addUser } from './lib/users.mjs';
import { recordSecret } from './lib/record.mjs';

const KEY = 'sk-user-ext-0123456789';
const SECRET = 'secret-key-user-ext-0123456789';
const NODE = process.execPath;
const FAKE_MCP = path.join(REPO, 'tests/fakes/mcp/server.mjs');

const patch = (s, p, o) => request(s, 'PATCH', p, o);
const as = (token) => ({ headers: { Authorization: `Bearer ${token}` } });
const asSecret = { headers: { 'X-Secret-Key': SECRET } };
// A user's stdio server may name only the system and the session's working directory: users'
// fake MCP server is a copy in the sessions' working directory (made before the server starts).
let USER_MCP;
// a fake MCP server whose command line carries a marker (to find its process)
const fakeMcp = (marker) => ({ type: 'stdio', cmd: NODE, args: [USER_MCP, 'ok', marker], timeout: 30 });

const configYaml = (extra = '') => `GOOSE_MODEL: gpt-test
extensions:
  developer: {enabled: true, type: builtin, name: developer, timeout: 300, bundled: true}
  shared:
    enabled: true
    type: stdio
    name: shared
    cmd: ${NODE}
    args: [${FAKE_MCP}, ok, shared-marker]
    timeout: 30
  offone:
    enabled: false
    type: stdio
    name: offone
    cmd: ${NODE}
    args: [${FAKE_MCP}, ok, offone-marker]
    timeout: 30
${extra}`;

const names = (list) => list.body.extensions.map((e) => e.name);
const byName = (list, n) => list.body.extensions.find((e) => e.name === n);

describe("users' own extensions", () => {
  let fake, srv, home, dir, allowFile, root, alice, bob;
  const env = () => ({
    GOOSE_PROVIDER: 'openai', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY,
    GOOSE_ALLOWLIST: allowFile, GOOSE_SERVER__SECRET_KEY: SECRET,
    GOOSE_ALLOWED_ROOTS: dir, // users' sessions may work there too (else in their workspace only)
  });

  /** Starts a session of token's, sends one message, and answers the tools the model was offered. */
  async function toolsOffered(token) {
    const s = await post(srv, '/api/sessions', { name: 'ux', working_directory: dir }, as(token));
    assert.equal(s.status, 201, s.text);
    await fake.script([{ text: 'ok' }]);
    const r = await post(srv, `/api/sessions/${s.body.id}/messages`, { content: 'hi' }, as(token));
    assert.equal(r.status, 200, r.text);
    return (await fake.requests('openai')).at(-1).body.tools.map((t) => t.function.name);
  }

  before(async () => {
    home = tempDir();
    dir = tempDir('goosed-ux-cwd-');
    USER_MCP = path.join(dir, 'server.mjs');
    copyFileSync(FAKE_MCP, USER_MCP);
    allowFile = path.join(tempDir('goosed-ux-allow-'), 'allow.yaml');
    writeFileSync(allowFile, `extensions:\n${['shared', 'offone', 'alice', 'alice2', 'bob', 'admin']
      .map((m) => `  - id: ${m}\n    command: ${NODE} ${['shared', 'offone'].includes(m) ? FAKE_MCP : USER_MCP} ok ${m}-marker\n`).join('')}`);
    root = await addUser(home, 'root', true);
    alice = await addUser(home, 'alice');
    bob = await addUser(home, 'bob');
    fake = await startFake({ keys: { openai: KEY } });
    srv = await startServer({ home, env: env(), configYaml: configYaml() });
  });
  after(async () => {
    try { await stopAndCheck(srv); } finally { await fake.stop(); }
  });

  it('a user adds an extension of their own: 201, listed for them as theirs, for no one else, not in config.yaml', async () => {
    const r = await post(srv, '/api/extensions', { name: 'Alice X', config: fakeMcp('alice-marker') }, as(alice));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.name, 'alicex');
    assert.equal(r.body.source, 'user');
    assert.equal(r.body.enabled, true);
    const mine = await get(srv, '/api/extensions', as(alice));
    assert.deepEqual(mine.body.extensions.map((e) => [e.name, e.source, e.enabled]),
      [['developer', 'config', true], ['shared', 'config', true], ['offone', 'config', false], ['alicex', 'user', true]]);
    for (const other of [as(bob), as(root), asSecret]) {
      const l = await get(srv, '/api/extensions', other);
      assert.deepEqual(names(l), ['developer', 'shared', 'offone']);
      assert.ok(!l.text.includes('alice-marker'));
    }
    assert.ok(!readFileSync(srv.configFile, 'utf8').includes('alice'), "config.yaml is the admin's alone");
    // the same again, changed: 200, the keys given change it
    const again = await post(srv, '/api/extensions', { name: 'alicex', config: { description: 'mine' } }, as(alice));
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.description, 'mine');
    assert.deepEqual(again.body.config.args, [USER_MCP, 'ok', 'alice-marker']);
  });

  it("the user's extension reaches their replies, and no other user's", async () => {
    const a = await toolsOffered(alice);
    assert.ok(a.includes('alicex__echo') && a.includes('shared__echo') && a.includes('developer__shell'), a.join(','));
    const b = await toolsOffered(bob);
    assert.ok(!b.some((n) => n.startsWith('alicex__')), b.join(','));
    assert.ok(b.includes('shared__echo'));
    const r = await toolsOffered(root);
    assert.ok(!r.some((n) => n.startsWith('alicex__')));
    // its status and tools are listed for her, under her name only
    const mine = byName(await get(srv, '/api/extensions', as(alice)), 'alicex');
    assert.equal(mine.status, 'running');
    assert.ok(mine.tools.some((t) => t.name === 'echo'));
  });

  it('a tool of their own extension runs in their reply', async () => {
    const s = await post(srv, '/api/sessions', { name: 'ux', working_directory: dir }, as(alice));
    await fake.script([{ tool_calls: [{ id: 'e1', name: 'alicex__echo', arguments: { text: 'from alice ext' } }] }, { text: 'done' }]);
    const r = await post(srv, `/api/sessions/${s.body.id}/messages`, { content: 'echo' }, as(alice));
    assert.equal(r.status, 200, r.text);
    const tool = (await fake.requests('openai')).at(-1).body.messages.filter((m) => m.role === 'tool');
    assert.match(JSON.stringify(tool), /from alice ext/);
  });

  it("a session of theirs lists their own extension, and can leave it out", async () => {
    const s = await post(srv, '/api/sessions', { name: 'ux-off', working_directory: dir }, as(alice));
    const at = `/api/sessions/${s.body.id}/extensions`;
    const l = await get(srv, at, as(alice));
    assert.deepEqual(l.body.extensions.find((e) => e.name === 'alicex'), { name: 'alicex', type: 'stdio', source: 'user', enabled: true });
    assert.equal((await del(srv, `${at}/alicex`, as(alice))).status, 204);
    const after = await get(srv, at, as(alice));
    assert.equal(after.body.extensions.find((e) => e.name === 'alicex').enabled, false);
    await fake.script([{ text: 'ok' }]);
    assert.equal((await post(srv, `/api/sessions/${s.body.id}/messages`, { content: 'hi' }, as(alice))).status, 200);
    const offered = (await fake.requests('openai')).at(-1).body.tools.map((t) => t.function.name);
    assert.ok(!offered.some((n) => n.startsWith('alicex__')), offered.join(','));
    // back on, by name alone (its config is hers)
    assert.equal((await post(srv, at, { name: 'alicex' }, as(alice))).status, 200);
    assert.equal((await get(srv, at, as(alice))).body.extensions.find((e) => e.name === 'alicex').enabled, true);
    // bob's session knows no alicex
    const b = await post(srv, '/api/sessions', { name: 'ux-b', working_directory: dir }, as(bob));
    assertError(await del(srv, `/api/sessions/${b.body.id}/extensions/alicex`, as(bob)), 404, 'not_found');
  });

  it("a user's stdio extension runs in the sandbox", { skip: !have('bwrap') && 'bubblewrap is not installed' }, () => {
    // goosed started it under bwrap: the process whose command line holds alice's marker is bwrap's
    const lines = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map((p) => {
      try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0'); } catch { return []; }
    }).filter((argv) => argv.includes('alice-marker'));
    assert.ok(lines.length > 0, 'her server is running');
    assert.ok(lines.some((argv) => path.basename(argv[0]) === 'bwrap'), lines.map((l) => l.join(' ')).join('\n'));
  });

  it("another user cannot see, change or remove it: 404, as for one that does not exist", async () => {
    assertError(await patch(srv, '/api/extensions/alicex/toggle', { ...as(bob), json: { enabled: false } }), 404, 'not_found');
    assertError(await post(srv, '/extensions/alicex/disable', undefined, as(bob)), 404, 'not_found');
    assertError(await del(srv, '/api/extensions/alicex', as(bob)), 404, 'not_found');
    // bob's own of the same name is his, and changes nothing of hers
    const r = await post(srv, '/api/extensions', { name: 'alicex', config: fakeMcp('bob-marker') }, as(bob));
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(byName(await get(srv, '/api/extensions', as(alice)), 'alicex').config.args, [USER_MCP, 'ok', 'alice-marker']);
    assert.equal(byName(await get(srv, '/api/extensions', as(bob)), 'alicex').status, 'stopped', "her server's status is not his");
    assert.equal((await del(srv, '/api/extensions/alicex', as(bob))).status, 204);
    assert.ok(byName(await get(srv, '/api/extensions', as(alice)), 'alicex'));
    assert.ok((await toolsOffered(alice)).includes('alicex__echo'));
  });

  it("a session's own extension named like the admin's: its state and error reach no one else's list", async () => {
    const s = await post(srv, '/api/sessions', { name: 'ux-own', working_directory: dir }, as(alice));
    assert.equal(s.status, 201, s.text);
    const mine = { type: 'streamable_http', uri: 'http://127.0.0.1:1/alice-private-mcp?token=ALICE-PRIVATE-URI-TOKEN' };
    assert.equal((await post(srv, `/api/sessions/${s.body.id}/extensions`, { name: 'offone', config: mine }, as(alice))).status, 200);
    await fake.script([{ text: 'ok' }]);
    assert.equal((await post(srv, `/api/sessions/${s.body.id}/messages`, { content: 'hi' }, as(alice))).status, 200);
    for (const who of [bob, root, alice]) {
      const list = await get(srv, '/api/extensions', as(who));
      const entry = byName(list, 'offone');
      assert.equal(entry.status, 'stopped', JSON.stringify(entry)); // the admin's, never started
      assert.equal(entry.error, undefined, JSON.stringify(entry));
      assert.ok(!list.text.includes('ALICE-PRIVATE-URI-TOKEN'), list.text);
    }
  });

  it("a user turns the admin's extensions off and on for themselves only", async () => {
    let r = await patch(srv, '/api/extensions/shared/toggle', { ...as(alice), json: { enabled: false } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.enabled, false);
    assert.equal(r.body.admin_enabled, true);
    assert.equal(r.body.source, 'config');
    r = await post(srv, '/extensions/offone/enable', undefined, as(alice));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.enabled, true);
    const a = await toolsOffered(alice);
    assert.ok(!a.some((n) => n.startsWith('shared__')) && a.includes('offone__echo'), a.join(','));
    const b = await toolsOffered(bob);
    assert.ok(b.includes('shared__echo') && !b.some((n) => n.startsWith('offone__')), b.join(','));
    assert.equal(byName(await get(srv, '/api/extensions', as(bob)), 'shared').enabled, true);
    assert.match(readFileSync(srv.configFile, 'utf8'), /shared:\n {4}enabled: true/, "the admin's config is unchanged");
    // a user cannot remove the admin's; removing their choice brings the admin's back
    assertError(await del(srv, '/api/extensions/developer', as(alice)), 403, 'forbidden', /admin's.*toggle/);
    assert.equal((await del(srv, '/api/extensions/shared', as(alice))).status, 204);
    r = await patch(srv, '/api/extensions/offone/toggle', as(alice));
    assert.equal(r.body.enabled, false);
    const l = await get(srv, '/api/extensions', as(alice));
    assert.equal(byName(l, 'shared').enabled, true);
    assert.equal(byName(l, 'shared').admin_enabled, undefined, 'no choice of hers is left');
    assert.ok((await toolsOffered(alice)).includes('shared__echo'));
  });

  it("within the allowlist and the admin's bounds: the same 403 and 400 as the admin's routes", async () => {
    const evil = { name: 'evil', config: { type: 'stdio', cmd: 'bash', args: ['-c', 'id'] } };
    const msg = /'bash -c id' is not in the allowlist/;
    assertError(await post(srv, '/api/extensions', evil, as(alice)), 403, 'forbidden', msg);
    assertError(await post(srv, '/api/extensions', evil, asSecret), 403, 'forbidden', msg);
    assertError(await post(srv, '/api/extensions', { name: 'alice3', config: { ...fakeMcp('alice-marker'), args: [USER_MCP, 'ok', 'alice-marker', '--more'] } }, as(alice)),
      403, 'forbidden', /adds arguments/);
    assertError(await post(srv, '/api/extensions', { name: 'bad', config: { type: 'stdio' } }, as(alice)), 400, 'bad_request', /cmd/);
    assertError(await post(srv, '/api/extensions', { name: 'x', type: 'carrier_pigeon' }, as(alice)), 400, 'bad_request', /not supported/);
    assertError(await post(srv, '/api/extensions', { name: 'keys', config: { ...fakeMcp('alice2-marker'), env_keys: ['OPENAI_API_KEY'] } }, as(alice)),
      400, 'bad_request', /env_keys/);
    assertError(await post(srv, '/api/extensions', { name: 'developer', config: { type: 'builtin', allow_shell: true } }, as(alice)),
      403, 'forbidden', /admin's/);
    assertError(await patch(srv, '/api/extensions/nothing/toggle', as(alice)), 404, 'not_found');
    const l = await get(srv, '/api/extensions', as(alice));
    assert.deepEqual(names(l), ['developer', 'shared', 'offone', 'alicex']);
  });

  it("a session's own extensions are bounded the same for a user: no env_keys, no builtin config; the admin's are not", async () => {
    const s = await post(srv, '/api/sessions', { name: 'ux-session', working_directory: dir }, as(alice));
    assert.equal(s.status, 201, s.text);
    const at = `/api/sessions/${s.body.id}/extensions`;
    // the server's OPENAI_API_KEY handed to a process of the user's choosing
    assertError(await post(srv, at, { name: 'keys', config: { ...fakeMcp('alice2-marker'), env_keys: ['OPENAI_API_KEY'] } }, as(alice)),
      400, 'bad_request', /env_keys/);
    // the developer with the shell the admin may have turned off
    assertError(await post(srv, at, { name: 'developer', config: { type: 'builtin', name: 'developer', allow_shell: true } }, as(alice)),
      403, 'forbidden', /admin's/);
    // on creation too
    assertError(await post(srv, '/api/sessions', { working_directory: dir, extensions: [{ name: 'keys', config: { ...fakeMcp('alice2-marker'), env_keys: ['OPENAI_API_KEY'] } }] }, as(alice)),
      400, 'bad_request', /env_keys/);
    // what a user may do still works, and an admin's session takes both
    assert.equal((await post(srv, at, { name: 'mine', config: fakeMcp('alice2-marker') }, as(alice))).status, 200);
    const rs = await post(srv, '/api/sessions', { name: 'ux-root', working_directory: dir }, as(root));
    const r = await post(srv, `/api/sessions/${rs.body.id}/extensions`, { name: 'developer', config: { type: 'builtin', name: 'developer', allow_shell: false } }, as(root));
    assert.equal(r.status, 200, r.text);
  });

  it('the admin (a token or the X-Secret-Key) still changes config.yaml\'s set, as before', async () => {
    let r = await post(srv, '/api/extensions', { name: 'adminext', config: fakeMcp('admin-marker') }, as(root));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.source, 'config');
    assert.match(readFileSync(srv.configFile, 'utf8'), /adminext:/);
    r = await patch(srv, '/api/extensions/adminext/toggle', asSecret);
    assert.equal(r.body.enabled, false);
    assert.ok(names(await get(srv, '/api/extensions', as(bob))).includes('adminext'), 'every user sees the admin\'s');
    assert.equal((await del(srv, '/api/extensions/adminext', asSecret)).status, 204);
    assert.ok(!readFileSync(srv.configFile, 'utf8').includes('adminext'));
    assertError(await del(srv, '/api/extensions/adminext', as(root)), 404, 'not_found');
  });

  it("another goosed on the same data sees a user's change within a poll or two, and this one sees the other's", async () => {
    const other = await startServer({ home, env: env(), configYaml: configYaml() });
    try {
      /** Lists bob's extensions on s until pred holds (each goosed looks at the store every second). */
      const until = async (s, pred, what) => {
        for (let i = 0; ; i++) {
          const l = await get(s, '/api/extensions', as(bob));
          if (pred(names(l))) return;
          assert.ok(i < 500, `${what}: ${names(l)}`);
          await new Promise((res) => setTimeout(res, 20)); // polling what another process changed
        }
      };
      const add = await post(srv, '/api/extensions', { name: 'bobshared', config: fakeMcp('bob-marker') }, as(bob));
      assert.equal(add.status, 201, add.text);
      await until(other, (n) => n.includes('bobshared'), 'the other goosed lists it');
      const r = await del(other, '/api/extensions/bobshared', as(bob));
      assert.ok(r.status < 300, r.text);
      await until(srv, (n) => !n.includes('bobshared'), 'this goosed drops it');
      // alice's, unchanged meanwhile, are still there on both
      for (const s of [srv, other]) assert.ok(names(await get(s, '/api/extensions', as(alice))).includes('alicex'));
    } finally {
      await stopAndCheck(other);
    }
  });

  it('a restart keeps them (in the store); user_extensions: false sets them aside and refuses changes', async () => {
    await stopAndCheck(srv);
    srv = await startServer({ home, env: env(), configYaml: configYaml() });
    assert.deepEqual(byName(await get(srv, '/api/extensions', as(alice)), 'alicex').config.args, [USER_MCP, 'ok', 'alice-marker']);
    assert.ok((await toolsOffered(alice)).includes('alicex__echo'));
    await stopAndCheck(srv);
    srv = await startServer({ home, env: env(), configYaml: configYaml('user_extensions: false\n') });
    const msg = /user_extensions: false/;
    assertError(await post(srv, '/api/extensions', { name: 'alice2', config: fakeMcp('alice2-marker') }, as(alice)), 403, 'forbidden', msg);
    assertError(await patch(srv, '/api/extensions/shared/toggle', as(alice)), 403, 'forbidden', msg);
    assertError(await post(srv, '/extensions/alicex/disable', undefined, as(alice)), 403, 'forbidden', msg);
    assertError(await del(srv, '/api/extensions/alicex', as(alice)), 403, 'forbidden', msg);
    assert.deepEqual(names(await get(srv, '/api/extensions', as(alice))), ['developer', 'shared', 'offone']);
    assert.ok(!(await toolsOffered(alice)).some((n) => n.startsWith('alicex__')));
    // the admin is not bound by it
    const r = await patch(srv, '/api/extensions/offone/toggle', as(root));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.enabled, true);
  });
});

describe("a user's stdio server sees only the system and the session's working directory", { skip: !have('bwrap') && 'bubblewrap is not installed' }, () => {
  let fake, srv, home, root, alice, bob, secretFile;
  const SECRET_TEXT = 'another-users-private-key-5e1f0c';
  recordSecret(SECRET_TEXT, "user_extensions.test.mjs: a file outside alice's reach");

  before(async () => {
    home = tempDir();
    secretFile = path.join(tempDir('goosed-ux-secret-'), 'id_key');
    writeFileSync(secretFile, SECRET_TEXT);
    // the npm cache of goosed's user, with something in it: an admin's npx server gets it
    mkdirSync(path.join(home, '.npm'));
    writeFileSync(path.join(home, '.npm', 'planted'), 'x');
    root = await addUser(home, 'root', true);
    alice = await addUser(home, 'alice');
    bob = await addUser(home, 'bob');
    fake = await startFake({ keys: { openai: KEY } });
    srv = await startServer({ home, env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, GOOSE_SERVER__SECRET_KEY: SECRET } });
  });
  after(async () => {
    try { await stopAndCheck(srv); } finally { await fake.stop(); }
  });

  /** A new directory in token's workspace (a user who is not an admin may work nowhere else). */
  async function userDir(token) {
    const s = await post(srv, '/api/sessions', { name: 'ux-workspace' }, as(token));
    assert.equal(s.status, 201, s.text);
    return mkdtempSync(path.join(s.body.working_dir, 'd-'));
  }

  /** Adds config as token's own extension `name`, runs one reply in a new session made in dir
   * (which starts it), and gives back the extension as token's list shows it. */
  async function startOwn(token, name, config, dir) {
    assert.equal((await post(srv, '/api/extensions', { name, config }, as(token))).status, 201);
    const s = await post(srv, '/api/sessions', { name: 'ux-paths', working_directory: dir }, as(token));
    assert.equal(s.status, 201, s.text);
    await fake.script([{ text: 'ok' }]);
    assert.equal((await post(srv, `/api/sessions/${s.body.id}/messages`, { content: 'hi' }, as(token))).status, 200);
    return byName(await get(srv, '/api/extensions', as(token)), name);
  }

  it("a path outside them in a user's server refuses it; the admin's runs with it", async () => {
    const steal = { type: 'stdio', cmd: '/bin/sh', args: ['-c', 'cat "$0" > leaked.txt', secretFile], timeout: 30 };
    const aliceDir = await userDir(alice);
    const mine = await startOwn(alice, 'steal', steal, aliceDir);
    assert.equal(mine.status, 'failed', JSON.stringify(mine));
    assert.match(mine.error, new RegExp(`'${secretFile}' is outside the system's directories and the session's working directory`));
    assert.ok(!existsSync(path.join(aliceDir, 'leaked.txt')), 'the server never ran');
    // the same server of the admin's is started, and reads the file
    const rootDir = tempDir('goosed-ux-root-');
    await startOwn(root, 'steal', steal, rootDir);
    assert.equal(readFileSync(path.join(rootDir, 'leaked.txt'), 'utf8'), SECRET_TEXT);
    assert.ok(!srv.log().includes(SECRET_TEXT));
  });

  it("a user's server inside the session's working directory runs", async () => {
    const aliceDir = await userDir(alice);
    copyFileSync(FAKE_MCP, path.join(aliceDir, 'server.mjs'));
    const mine = await startOwn(alice, 'inside', { type: 'stdio', cmd: NODE, args: [path.join(aliceDir, 'server.mjs'), 'ok', 'inside-marker'], timeout: 30 }, aliceDir);
    assert.equal(mine.status, 'running', JSON.stringify(mine));
  });

  it("a user's npm servers get a cache of their own, not goosed's (a package planted there would run for others); the admin's get goosed's", async () => {
    // writes what it finds in ~/.npm to probe.txt, then leaves a mark of the user's there
    const probe = (who) => ({ type: 'stdio', cmd: 'npm', timeout: 30, args: ['exec', '--offline', '--yes', '--', 'node', '-e',
      'const fs=require("fs"),h=process.env.HOME+"/.npm/";fs.writeFileSync("probe.txt",JSON.stringify({planted:fs.existsSync(h+"planted"),marks:fs.readdirSync(h).filter((f)=>f.endsWith("-was-here"))}));fs.writeFileSync(h+process.argv[1]+"-was-here","")', who] });
    const run = async (token, who, name) => {
      const d = token === root ? tempDir(`goosed-ux-${who}-`) : await userDir(token);
      await startOwn(token, name, probe(who), d);
      return JSON.parse(readFileSync(path.join(d, 'probe.txt'), 'utf8'));
    };
    assert.deepEqual(await run(alice, 'alice', 'npm1'), { planted: false, marks: [] });
    assert.deepEqual(await run(alice, 'alice', 'npm2'), { planted: false, marks: ['alice-was-here'] }, 'hers, kept');
    assert.deepEqual(await run(bob, 'bob', 'npm1'), { planted: false, marks: [] }, "not alice's");
    const admin = await run(root, 'root', 'npm1');
    assert.equal(admin.planted, true, "the admin's server runs with goosed's ~/.npm");
    assert.ok(!existsSync(path.join(home, '.npm', 'alice-was-here')));
  });
});

describe('extension routes without users', () => {
  it('act on config.yaml\'s set, listed with source "config"', async () => {
    const srv = await startServer({ configYaml: 'extensions:\n  developer: {enabled: true, type: builtin, name: developer}\n' });
    try {
      const r = await patch(srv, '/api/extensions/developer/toggle');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.enabled, false);
      assert.equal(r.body.source, 'config');
      assert.match(readFileSync(srv.configFile, 'utf8'), /enabled: false/);
    } finally {
      await stopAndCheck(srv);
    }
  });
});
