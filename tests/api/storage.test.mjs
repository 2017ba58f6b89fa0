// The store when the disk misbehaves: unavailable at start (XDG_DATA_HOME is a file, a read-only
// or corrupt data directory), full at run time (prlimit --fsize). The server keeps serving.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync, readFileSync, rmSync, mkdirSync, chmodSync, chownSync, statSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { startServer, stopAndCheck, tempDir, have } from './lib/server.mjs';
import { get, post, del, request, assertError, assertAlive, assertSession } from './lib/http.mjs';
import { startFake, parseSSE } from '../fakes/lib.mjs';
import { addUser } from './lib/users.mjs';

/** Every session route answers 503 storage_unavailable, and the rest of the server works. */
async function assertStoreDown(srv) {
  const h = await get(srv, '/api/health');
  assert.equal(h.status, 503, h.text);
  assert.equal(h.body.status, 'unavailable');
  assert.match(h.body.version, /^\d+\.\d+\.\d+$/);
  assert.ok(Number.isInteger(h.body.uptime_s));
  assert.equal(typeof h.body.store, 'string');
  assert.ok(h.body.store.length > 0 && h.body.store !== 'ok', `store: ${h.body.store}`);

  const id = randomUUID();
  for (const r of [
    await post(srv, '/api/sessions', { name: 'x' }),
    await post(srv, '/sessions', {}),
    await get(srv, '/api/sessions'),
    await get(srv, '/sessions?limit=5'),
    await get(srv, `/api/sessions/${id}`),
    await get(srv, `/sessions/${id}/messages`),
    await del(srv, `/api/sessions/${id}`),
  ]) {
    assertError(r, 503, 'storage_unavailable', /^storage unavailable: \S/);
  }
  const s = await get(srv, '/status');
  assert.equal(s.status, 200);
  assert.equal(s.text, 'ok');
  assert.equal((await get(srv, '/api/config')).status, 200);
  assert.equal((await get(srv, '/openapi.json')).status, 200);
}

/** The server retries opening the store on later requests, and paces its attempts (a second
 * after a failed one): asks again, bounded, while the answer is 503; the last answer. */
async function onceStoreBack(ask) {
  let r;
  for (const t0 = Date.now(); Date.now() - t0 < 5000; await delay(50)) {
    r = await ask();
    if (r.status !== 503) break;
  }
  return r;
}

/** Once the store is back (/api/health says so), it must work. */
async function assertStoreUp(srv) {
  const h = await onceStoreBack(() => get(srv, '/api/health'));
  assert.equal(h.status, 200, h.text);
  assert.equal(h.body.store, 'ok');
  const r = await post(srv, '/api/sessions', { name: 'store is back' });
  assert.equal(r.status, 201, r.text);
  assertSession(r.body, { name: 'store is back' });
  const l = await get(srv, '/api/sessions');
  assert.equal(l.status, 200);
  assert.ok(l.body.some((s) => s.id === r.body.id));
}

/** While the store cannot say whether the server has users (its file there but unreadable),
 * every route but /status answers 503 naming that and the store's reason: nobody is served as
 * the local user of a server whose users it cannot read. */
async function assertLockedOut(srv, reason) {
  const s = await get(srv, '/status');
  assert.equal(s.status, 200);
  assert.equal(s.text, 'ok');
  for (const r of [
    await get(srv, '/api/health'),
    await get(srv, '/api/config'),
    await get(srv, '/api/extensions'),
    await post(srv, '/api/sessions', { name: 'x' }),
    await get(srv, '/openapi.json'),
  ]) {
    assertError(r, 503, 'storage_unavailable', /^storage unavailable: cannot tell whether this server has users/);
    assert.match(r.body.error, reason);
  }
}

/** A new HOME for one test, removed after it. */
function ownHome(t) {
  const home = tempDir();
  t.after(() => rmSync(home, { recursive: true, force: true }));
  return home;
}

/** A HOME for a test that locks goosed.db with the sqlite3 tool, which `make test` installs
 * (scripts/deps.sh test): without it such a test fails, rather than pass by not running. */
function lockableHome(t) {
  assert.ok(have('sqlite3'), 'the sqlite3 command-line tool is missing (scripts/deps.sh test installs it)');
  return ownHome(t);
}

/** Another program holding goosed.db under home with an exclusive lock (sqlite3, in exclusive
 * locking mode, in a transaction), until release(). */
async function holdLocked(t, home) {
  const db = path.join(home, '.local/share/goose/sessions/goosed.db');
  const holder = spawn('sqlite3', ['-batch', db], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => holder.on('exit', resolve));
  t.after(() => holder.kill('SIGKILL'));
  holder.stdin.write("PRAGMA locking_mode=EXCLUSIVE;\nBEGIN EXCLUSIVE;\nSELECT 'held';\n");
  await new Promise((resolve, reject) => {
    let out = '';
    holder.stdout.on('data', (d) => { out += d; if (out.includes('held')) resolve(); });
    holder.on('exit', () => reject(new Error(`sqlite3 exited before taking the lock: ${out}`)));
  });
  return { release: async () => { holder.stdin.end(); await exited; } };
}

describe('store unavailable at start', () => {
  it('XDG_DATA_HOME is a regular file: the server starts, session routes are 503, then it recovers', async (t) => {
    const dir = tempDir();
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const xdg = path.join(dir, 'data');
    writeFileSync(xdg, 'a file, not a directory\n');
    const srv = await startServer({ env: { XDG_DATA_HOME: xdg } });
    try {
      await assertStoreDown(srv);
      // The server retries on later requests: fix the disk, and the store comes back.
      unlinkSync(xdg);
      mkdirSync(xdg);
      await assertStoreUp(srv);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('a corrupt goosed.db: 503, the file is left as it was', async (t) => {
    const home = ownHome(t);
    const dir = path.join(home, '.local/share/goose/sessions');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const db = path.join(dir, 'goosed.db');
    const junk = randomBytes(16384);
    writeFileSync(db, junk);
    const srv = await startServer({ home });
    try {
      await assertLockedOut(srv, /file is not a database|not goosed's/);
    } finally {
      await stopAndCheck(srv);
    }
    assert.deepEqual(readFileSync(db), junk, 'the server must not overwrite a file it cannot read');
  });

  it('goosed.db locked by another program: listening at once, 503 naming the lock, back when it is released', async (t) => {
    const home = lockableHome(t);
    let srv = await startServer({ home });
    const before = await post(srv, '/api/sessions', { name: 'before the lock' });
    assert.equal(before.status, 201, before.text);
    await stopAndCheck(srv);

    const lock = await holdLocked(t, home);
    srv = await startServer({ home });
    try {
      // Each of the four start-up steps that read the store (the store, authentication, the
      // users' settings, the crash repair) used to make its own attempt, waiting out SQLite's
      // 5 s busy timeout: now one attempt, and the steps within a second after it fail at once
      // with its reason (two, should start-up take over a second between them).
      const atStart = srv.log().slice(0, srv.log().search(/listening on/));
      const attempts = atStart.match(/ERROR store: .*database is locked/g)?.length ?? 0;
      assert.ok(attempts >= 1 && attempts <= 2, atStart);
      assert.match(atStart, /cannot look for replies interrupted by a crash: .*database is locked/);
      // The file may hold users: until it can be read, nobody is served as the local user.
      await assertLockedOut(srv, /database is locked/);

      await lock.release();
      await assertStoreUp(srv);
      const l = await get(srv, '/api/sessions');
      assert.ok(l.body.some((x) => x.id === before.body.id), 'the session made before the lock is there');
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('a server with users whose goosed.db is locked at start does not serve anyone as the local user', async (t) => {
    const home = lockableHome(t);
    const token = await addUser(home, 'alice', true);
    const lock = await holdLocked(t, home);
    const srv = await startServer({ home });
    try {
      assert.match(srv.log(), /cannot tell whether users exist/);
      // No token: before, the users unread, this was the local user (an admin): 200.
      await assertLockedOut(srv, /database is locked/);
      const cfg = await get(srv, '/api/config', { headers: { Authorization: `Bearer ${token}` } });
      assertError(cfg, 503, 'storage_unavailable', /database is locked/);

      await lock.release();
      const r = await onceStoreBack(() => get(srv, '/api/config'));
      assertError(r, 401, 'unauthorized', /authentication required/);
      const ok = await get(srv, '/api/config', { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(ok.status, 200, ok.text);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it("a session whose owner the store cannot tell is not acted on: another user's, reached while goosed.db is locked", async (t) => {
    const home = lockableHome(t);
    const env = { GOOSE_SERVER__SECRET_KEY: 'the-shared-secret-of-this-test' };
    const token = await addUser(home, 'alice');
    let srv = await startServer({ home, env });
    const made = await post(srv, '/api/sessions', { name: "alice's" }, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(made.status, 201, made.text);
    await stopAndCheck(srv);

    // The secret key's holder is the local user: alice's session is not theirs, and nothing
    // about a request for it is looked at before that is known (a request for another user's
    // session is 404 before its body is read). With the store locked since start, whose it is
    // cannot be read: the answer is 503 before the body is read too, not the handler's 400 for
    // a confirmation without an action, nor anything else a handler would do with it.
    const lock = await holdLocked(t, home);
    srv = await startServer({ home, env });
    const key = { headers: { 'X-Secret-Key': env.GOOSE_SERVER__SECRET_KEY } };
    const id = made.body.id;
    const unanswerable = { id: 'call_1' };
    try {
      for (const r of [
        await post(srv, `/api/sessions/${id}/tool_confirmations`, unanswerable, key),
        await post(srv, `/api/sessions/${id}/elicitations`, unanswerable, key),
        await get(srv, `/api/sessions/${id}/resources`, key),
      ]) {
        assertError(r, 503, 'storage_unavailable', /database is locked/);
      }
      await lock.release();
      const r = await onceStoreBack(() => post(srv, `/api/sessions/${id}/tool_confirmations`, unanswerable, key));
      assertError(r, 404, 'not_found', new RegExp(`session '${id}' not found`));
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('a read-only data directory: 503 until it is writable again', async (t) => {
    const isRoot = process.getuid() === 0;
    if (isRoot && !have('setpriv')) return t.skip('running as root and setpriv (util-linux) is missing');
    const home = ownHome(t);
    const data = path.join(home, '.local/share/goose/sessions');
    mkdirSync(data, { recursive: true });
    let wrap = [];
    if (isRoot) {
      // root ignores permissions: run the server as nobody, in a HOME it can enter but not write.
      for (const d of [home, path.join(home, '.local'), path.join(home, '.local/share'), path.join(home, '.local/share/goose')]) chmodSync(d, 0o755);
      chownSync(data, 65534, 65534);
      wrap = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
    }
    chmodSync(data, 0o555);
    const srv = await startServer({ home, wrap });
    try {
      await assertStoreDown(srv);
      chmodSync(data, 0o700);
      await assertStoreUp(srv);
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('store directories', () => {
  it('the directories the server creates are 0700', async () => {
    const srv = await startServer();
    try {
      await assertAlive(srv);
      for (const d of ['.local', '.local/share', '.local/share/goose', '.local/share/goose/sessions']) {
        const mode = statSync(path.join(srv.home, d)).mode & 0o777;
        assert.equal(mode.toString(8), '700', `mode of $HOME/${d}`);
      }
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('disk full', () => {
  it('writes fail with 503 storage_unavailable; reads keep working; nothing answered 201 is lost', async (t) => {
    if (!have('prlimit')) return t.skip('prlimit (util-linux) is missing');
    const home = ownHome(t);
    const srv = await startServer({ home, wrap: ['prlimit', '--fsize=200000'] });
    const made = [];
    let full;
    try {
      for (let i = 0; i < 3000 && !full; i++) {
        const r = await post(srv, '/api/sessions', { name: `fill ${i} ${'x'.repeat(200)}` });
        if (r.status === 201) made.push(r.body);
        else if (r.status === 503) full = r;
        else assert.fail(`unexpected answer while filling the disk: ${r.status} ${r.text}`);
      }
      assert.ok(full, `no 503 after ${made.length} sessions under a 200 kB file size limit`);
      assertError(full, 503, 'storage_unavailable', /^storage unavailable: \S/);
      assert.ok(made.length > 0, 'some sessions fit before the disk filled up');

      await assertAlive(srv);
      const l = await get(srv, '/api/sessions?limit=1000');
      assert.equal(l.status, 200, l.text);
      assert.equal(l.headers.get('x-total-count'), String(made.length));
      assert.deepEqual(new Set(l.body.map((s) => s.id)), new Set(made.map((s) => s.id)));
      const one = await get(srv, `/api/sessions/${made[0].id}`);
      assert.equal(one.status, 200);
      assert.deepEqual(one.body, made[0]);
      assert.deepEqual((await get(srv, `/sessions/${made.at(-1).id}/messages`)).body, []);
      // Still full: still a clean 503, never a 500 or a crash.
      const again = await request(srv, 'POST', '/sessions', { json: { name: 'y'.repeat(256) } });
      assert.ok(again.status === 503 || again.status === 201, `${again.status} ${again.text}`);
      if (again.status === 503) assert.equal(again.body.code, 'storage_unavailable');
      else made.push(again.body);
    } finally {
      await stopAndCheck(srv);
    }

    // Room again: every session answered 201 is there, and the store takes new ones.
    const srv2 = await startServer({ home });
    try {
      const l = await get(srv2, '/api/sessions?limit=1000');
      assert.equal(l.status, 200);
      assert.deepEqual(new Set(l.body.map((s) => s.id)), new Set(made.map((s) => s.id)));
      await assertStoreUp(srv2);
    } finally {
      await stopAndCheck(srv2);
    }
  });

  it('a message that cannot be stored ends its reply with storage_unavailable, and nothing half-stored', async (t) => {
    if (!have('prlimit')) return t.skip('prlimit (util-linux) is missing');
    const home = ownHome(t);
    const fake = await startFake({ keys: { openai: 'sk-full' } });
    t.after(() => fake.stop());
    await fake.script({ responses: [], default: { text: 'an answer that will not be kept' } });
    const srv = await startServer({
      home,
      wrap: ['prlimit', '--fsize=200000'],
      env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: 'sk-full' },
    });
    try {
      const s = await post(srv, '/api/sessions', { name: 'kept' });
      assert.equal(s.status, 201, s.text);
      for (let i = 0; i < 3000; i++) {
        const r = await post(srv, '/api/sessions', { name: `fill ${i} ${'x'.repeat(200)}` });
        if (r.status === 503) break;
        assert.equal(r.status, 201, r.text);
      }
      const big = 'y'.repeat(100_000); // cannot fit in what is left of a 200 kB file
      const r = await request(srv, 'POST', `/api/sessions/${s.body.id}/messages/stream`, { json: { content: big } });
      assert.equal(r.status, 200, r.text);
      const last = parseSSE(r.text).at(-1);
      assert.equal(last.event, 'error');
      assert.equal(JSON.parse(last.data).code, 'storage_unavailable');
      const j = await post(srv, `/api/sessions/${s.body.id}/messages`, { content: big });
      assertError(j, 503, 'storage_unavailable', /\S/);
      assert.deepEqual((await get(srv, `/api/sessions/${s.body.id}/messages`)).body, [], 'no message was stored');
      await assertAlive(srv);
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('a goosed.db once read-only', { skip: (process.getuid() !== 0 || !have('setpriv')) && 'needs root to run goosed as nobody (setpriv)' }, () => {
  it('leaves goosed.db-shm read-only after goosed.db is writable again: the 503 names the file', async () => {
    const home = tempDir('goosed-ro-');
    const wd = path.join(home, 'wd');
    mkdirSync(wd);
    const chownR = (p) => { chownSync(p, 65534, 65534); };
    chownR(home);
    chownR(wd);
    const wrap = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
    const start = () => startServer({ home, wrap, cwd: home });
    const sdir = path.join(home, '.local/share/goose/sessions');
    let srv = await start();
    assert.equal((await post(srv, '/api/sessions', { name: 'a', working_directory: wd })).status, 201);
    await stopAndCheck(srv);
    chmodSync(path.join(sdir, 'goosed.db'), 0o444); // read-only: SQLite makes -shm read-only too
    srv = await start();
    assert.equal((await post(srv, '/api/sessions', { name: 'b', working_directory: wd })).status, 503);
    await stopAndCheck(srv);
    chmodSync(path.join(sdir, 'goosed.db'), 0o600);
    srv = await start();
    try {
      const r = await post(srv, '/api/sessions', { name: 'c', working_directory: wd });
      if ((statSync(path.join(sdir, 'goosed.db-shm')).mode & 0o222) === 0) {
        assertError(r, 503, 'storage_unavailable', new RegExp(`goosed may not write goosed\\.db-shm in ${sdir.replace(/[.]/g, '\\.')}`));
      } else {
        assert.equal(r.status, 201, r.text); // an SQLite that made -shm writable: nothing to say
      }
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('a damaged goosed.db', () => {
  it('a read that meets the damage says it will not mend, and /api/health says so from then on', async () => {
    const home = tempDir('goosed-damaged-');
    const wd = tempDir('goosed-damaged-wd-');
    let srv = await startServer({ home });
    const ids = [];
    try {
      for (let i = 0; i < 30; i++) {
        const messages = Array.from({ length: 20 }, (_, k) => ({ role: k % 2 ? 'assistant' : 'user', content: [{ type: 'text', text: `s${i} m${k} ${'x'.repeat(500)}` }] }));
        const r = await post(srv, '/api/sessions/import', { format: 'goosed-session', version: 1, session: { name: `s${i}`, working_dir: wd }, messages });
        assert.equal(r.status, 201, r.text);
        ids.push(r.body.id);
      }
    } finally {
      await stopAndCheck(srv);
    }
    // a quarter of the file, from its middle on, zeroed (a disk that lost pages)
    const db = path.join(home, '.local/share/goose/sessions/goosed.db');
    const bytes = readFileSync(db);
    const from = Math.floor(bytes.length / 2 / 4096) * 4096;
    bytes.fill(0, from, from + Math.floor(bytes.length / 4 / 4096) * 4096);
    writeFileSync(db, bytes);
    srv = await startServer({ home });
    try {
      let damaged;
      for (const id of ids) {
        const r = await get(srv, `/api/sessions/${id}/messages`);
        if (r.status !== 200) damaged = r;
      }
      assert.ok(damaged, 'no read met the zeroed quarter of the file');
      assertError(damaged, 503, 'storage_unavailable', /the store is damaged \(.*\); it will not mend by itself: stop goosed and restore goosed\.db from a backup/);
      const h = await get(srv, '/api/health');
      assert.equal(h.status, 503);
      assert.match(h.body.store, /the store was found damaged \d+ s ago; it will not mend by itself/);
    } finally {
      await stopAndCheck(srv);
    }
  });
});
