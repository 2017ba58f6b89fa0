// Living beside the real Goose: its sessions.db, in the same folder as goosed's data, is never
// written, never made, and never stops goosed; goosed keeps its own goosed.db. A sessions.db an
// older goosed wrote is moved to goosed.db once, sessions kept. Needs the sqlite3 command-line tool.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAndCheck, kill9AndCheck, tempDir, have } from './lib/server.mjs';
import { get, post } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';

const APP_ID = 0x67736431; // "gsd1": PRAGMA application_id of goosed.db
const KEY = 'sk-coexistence';

/** Runs sqlite3 on db with each of cmds (SQL, or a dot-command) in turn; its output. */
const sqlite = (db, ...cmds) => execFileSync('sqlite3', ['-batch', db, ...cmds], { encoding: 'utf8' }).trim();
/** The same, read-only: a reader never checkpoints a WAL into the file when it closes. */
const sqliteRO = (db, sql) => execFileSync('sqlite3', ['-batch', '-readonly', db, sql], { encoding: 'utf8' }).trim();
const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');
const dataDir = (home) => path.join(home, '.local/share/goose/sessions');

// The shape of the real Goose's own sessions.db at its schema version 11: other tables (threads,
// thread_messages), other columns (created_at, content_json), WAL mode, one session with a message.
const REAL_GOOSE_SQL = `
PRAGMA journal_mode=WAL;
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
WITH RECURSIVE v(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM v WHERE n < 11) INSERT INTO schema_version(version) SELECT n FROM v;
CREATE TABLE sessions (id TEXT PRIMARY KEY, name TEXT DEFAULT '', description TEXT, working_dir TEXT NOT NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  total_tokens INTEGER, thread_id TEXT);
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL REFERENCES sessions(id),
  role TEXT NOT NULL, content_json TEXT NOT NULL, created_timestamp INTEGER NOT NULL, metadata_json TEXT, message_id TEXT);
CREATE TABLE threads (id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT 'New Chat', working_dir TEXT,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, metadata_json TEXT DEFAULT '{}');
CREATE TABLE thread_messages (id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL REFERENCES threads(id),
  session_id TEXT, role TEXT NOT NULL, content_json TEXT NOT NULL, created_timestamp INTEGER NOT NULL);
INSERT INTO sessions(id, name, working_dir) VALUES ('20250101_1', 'a real Goose session', '/home/me');
INSERT INTO messages(session_id, role, content_json, created_timestamp) VALUES ('20250101_1', 'user', '[{"type":"text","text":"hello"}]', 1735689600);
`;

/** A HOME whose data directory holds a real-Goose-shaped sessions.db; its path and hash. */
function homeWithRealGoose() {
  const home = tempDir();
  const dir = dataDir(home);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const db = path.join(dir, 'sessions.db');
  sqlite(db, REAL_GOOSE_SQL);
  return { home, dir, db, hash: sha256(db) };
}

/** The real Goose's file is byte for byte as it was, with nothing made beside it. */
function assertUntouched(real, what) {
  assert.equal(sha256(real.db), real.hash, `${what}: the real Goose's sessions.db changed`);
  for (const ext of ['-wal', '-shm', '-journal']) assert.ok(!existsSync(real.db + ext), `${what}: sessions.db${ext} was made`);
  assert.equal(sqlite(real.db, 'SELECT max(version) FROM schema_version'), '11');
  assert.equal(sqlite(real.db, "SELECT name FROM sessions WHERE id = '20250101_1'"), 'a real Goose session');
}

async function listAll(srv) {
  const r = await get(srv, '/api/sessions?limit=1000');
  assert.equal(r.status, 200, r.text);
  return r.body;
}

describe("beside the real Goose's sessions.db", () => {
  it('goosed keeps its own goosed.db, stores a session and a message, restarts; sessions.db is byte-identical', async (t) => {
    if (!have('sqlite3')) return t.skip('the sqlite3 command-line tool is missing (scripts/deps.sh test)');
    const real = homeWithRealGoose();
    const fake = await startFake({ keys: { openai: KEY } });
    t.after(() => fake.stop());
    await fake.script({ responses: [], default: { text: 'stored beside the real Goose' } });
    const env = { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY };

    let srv = await startServer({ home: real.home, env });
    let session, messages;
    try {
      const h = await get(srv, '/api/health');
      assert.equal(h.status, 200, h.text);
      assert.equal(h.body.store, 'ok');
      assert.doesNotMatch(srv.log(), /newer than this goosed knows/);
      assert.match(srv.log(), /sessions\.db is not goosed's \([^)]*\): left untouched/);
      const s = await post(srv, '/api/sessions', { name: 'mine', working_directory: real.home });
      assert.equal(s.status, 201, s.text);
      session = s.body;
      const m = await post(srv, `/api/sessions/${session.id}/messages`, { content: 'hello from goosed' });
      assert.equal(m.status, 200, m.text);
      messages = (await get(srv, `/api/sessions/${session.id}/messages`)).body;
      assert.deepEqual(messages.map((x) => x.role), ['user', 'assistant']);
      assert.deepEqual(messages[0].content, [{ type: 'text', text: 'hello from goosed' }]);
      assertUntouched(real, 'while goosed runs');
    } finally {
      await stopAndCheck(srv);
    }
    assertUntouched(real, 'after a stop');

    srv = await startServer({ home: real.home, env });
    try {
      const listed = await listAll(srv);
      assert.deepEqual(listed.map((s) => s.id), [session.id], "only goosed's own session: nothing read from the real Goose's file");
      assert.equal(listed[0].message_count, 2);
      assert.deepEqual((await get(srv, `/api/sessions/${session.id}/messages`)).body, messages);
    } finally {
      await stopAndCheck(srv);
    }
    assertUntouched(real, 'after a restart');

    const mine = path.join(real.dir, 'goosed.db');
    assert.equal(Number(sqlite(mine, 'PRAGMA application_id')), APP_ID, 'goosed.db is marked as goosed\'s');
    assert.equal(sqlite(mine, 'SELECT count(*) FROM messages'), '2');
  });

  it('a kill -9 leaves the real Goose\'s file alone too', async (t) => {
    if (!have('sqlite3')) return t.skip('the sqlite3 command-line tool is missing (scripts/deps.sh test)');
    const real = homeWithRealGoose();
    let srv = await startServer({ home: real.home });
    const r = await post(srv, '/api/sessions', { name: 'before the kill' });
    assert.equal(r.status, 201, r.text);
    await kill9AndCheck(srv);
    assertUntouched(real, 'after kill -9');
    srv = await startServer({ home: real.home });
    try {
      assert.deepEqual((await listAll(srv)).map((s) => s.id), [r.body.id]);
    } finally {
      await stopAndCheck(srv);
    }
    assertUntouched(real, 'after the restart');
  });

  it('a sessions.db that is not an SQLite database at all: goosed works, the file is left as it was', async (t) => {
    const home = tempDir();
    const dir = dataDir(home);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const junk = randomBytes(16384);
    writeFileSync(path.join(dir, 'sessions.db'), junk);
    const srv = await startServer({ home });
    try {
      assert.equal((await get(srv, '/api/health')).body.store, 'ok');
      assert.equal((await post(srv, '/api/sessions', { name: 'fine' })).status, 201);
    } finally {
      await stopAndCheck(srv);
    }
    assert.deepEqual(readFileSync(path.join(dir, 'sessions.db')), junk);
    assert.deepEqual(readdirSync(dir).sort(), ['goosed.db', 'sessions.db']);
  });
});

describe("goosed's own old sessions.db", () => {
  it('is moved to goosed.db once (with its WAL, after a kill -9), sessions kept', async (t) => {
    if (!have('sqlite3')) return t.skip('the sqlite3 command-line tool is missing (scripts/deps.sh test)');
    // Make what an older goosed left: its database named sessions.db, no application_id, and
    // (killed -9) the latest writes still in sessions.db-wal.
    const home = tempDir();
    const dir = dataDir(home);
    let srv = await startServer({ home });
    for (const name of ['old one', 'old two']) assert.equal((await post(srv, '/api/sessions', { name })).status, 201);
    await stopAndCheck(srv);
    srv = await startServer({ home });
    assert.equal((await post(srv, '/api/sessions', { name: 'old three, only in the WAL' })).status, 201);
    const before = await listAll(srv);
    assert.equal(before.length, 3);
    await kill9AndCheck(srv);
    for (const ext of ['', '-wal', '-shm']) {
      if (existsSync(path.join(dir, `goosed.db${ext}`))) renameSync(path.join(dir, `goosed.db${ext}`), path.join(dir, `sessions.db${ext}`));
    }
    const old = path.join(dir, 'sessions.db');
    // An older goosed set no application_id: clear it, in the WAL (no checkpoint on close).
    sqlite(old, '.dbconfig no_ckpt_on_close on', 'PRAGMA application_id = 0');
    assert.ok(existsSync(`${old}-wal`), 'the kill -9 left a WAL');
    assert.equal(sqlite(`file:${old}?immutable=1`, "SELECT count(*) FROM sessions WHERE name LIKE 'old three%'"), '0',
      'the third session is only in the WAL');
    assert.equal(sqliteRO(old, "SELECT count(*) FROM sessions WHERE name LIKE 'old three%'"), '1');
    assert.equal(Number(sqliteRO(old, 'PRAGMA application_id')), 0);
    assert.ok(existsSync(`${old}-wal`), 'still in the WAL');

    srv = await startServer({ home });
    try {
      assert.match(srv.log(), /moved goosed's database from \S*sessions\.db to \S*goosed\.db/);
      assert.deepEqual(await listAll(srv), before, 'the same sessions, same fields, same order');
      assert.equal((await post(srv, '/api/sessions', { name: 'new' })).status, 201);
    } finally {
      await stopAndCheck(srv);
    }
    assert.deepEqual(readdirSync(dir).sort(), ['goosed.db'], 'sessions.db, its -wal and -shm are gone');
    assert.equal(Number(sqlite(path.join(dir, 'goosed.db'), 'PRAGMA application_id')), APP_ID);

    // Once: the next start finds goosed.db and moves nothing.
    srv = await startServer({ home });
    try {
      assert.doesNotMatch(srv.log(), /moved goosed's database/);
      assert.equal((await listAll(srv)).length, 4);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('is left alone when goosed.db exists already', async (t) => {
    if (!have('sqlite3')) return t.skip('the sqlite3 command-line tool is missing (scripts/deps.sh test)');
    const home = tempDir();
    const dir = dataDir(home);
    let srv = await startServer({ home });
    const old = (await post(srv, '/api/sessions', { name: 'in the old file' })).body;
    await stopAndCheck(srv);
    renameSync(path.join(dir, 'goosed.db'), path.join(dir, 'sessions.db'));
    const hash = sha256(path.join(dir, 'sessions.db'));
    sqlite(path.join(dir, 'goosed.db'), 'PRAGMA user_version = 1'); // an empty goosed.db, made first
    srv = await startServer({ home });
    try {
      assert.doesNotMatch(srv.log(), /moved goosed's database/);
      assert.deepEqual(await listAll(srv), []);
      assert.equal((await get(srv, `/api/sessions/${old.id}`)).status, 404);
    } finally {
      await stopAndCheck(srv);
    }
    assert.equal(sha256(path.join(dir, 'sessions.db')), hash);
  });
});

describe("another program's WAL beside goosed.db", () => {
  it('is refused, and goosed.db is left as it was: its sessions are back once the WAL is moved away', async (t) => {
    if (!have('sqlite3')) return t.skip('the sqlite3 command-line tool is missing (scripts/deps.sh test)');
    let srv = await startServer({ keepHome: true });
    const home = srv.home;
    const dir = path.join(home, '.local', 'share', 'goose', 'sessions');
    let ids;
    try {
      for (const name of ['precious 1', 'precious 2']) assert.equal((await post(srv, '/api/sessions', { name })).status, 201);
      ids = (await listAll(srv)).map((x) => x.id).sort();
    } finally {
      await stopAndCheck(srv);
    }
    const db = path.join(dir, 'goosed.db');
    const before = createHash('sha256').update(readFileSync(db)).digest('hex');
    // another WAL-mode database whose log was never checkpointed, its WAL copied beside goosed.db
    const other = path.join(tempDir('goosed-otherdb-'), 'other.db');
    sqlite(other, '.dbconfig no_ckpt_on_close on', 'PRAGMA journal_mode=WAL;', 'CREATE TABLE t(x);', 'INSERT INTO t VALUES (1);');
    writeFileSync(`${db}-wal`, readFileSync(`${other}-wal`));
    srv = await startServer({ home, keepHome: true });
    try {
      const h = await get(srv, '/api/health');
      assert.equal(h.status, 503, h.text);
      assert.match(JSON.stringify(h.body), /goosed\.db is not goosed's database .*goosed\.db-wal/);
    } finally {
      await stopAndCheck(srv);
    }
    assert.equal(createHash('sha256').update(readFileSync(db)).digest('hex'), before, 'goosed.db was written over');
    rmSync(`${db}-wal`);
    rmSync(`${db}-shm`, { force: true });
    srv = await startServer({ home });
    try {
      assert.deepEqual((await listAll(srv)).map((x) => x.id).sort(), ids);
    } finally {
      await stopAndCheck(srv);
    }
  });
});
