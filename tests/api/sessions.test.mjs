// Sessions: create (both seeds' bodies, all three directory field names, both path prefixes),
// validation, get, list (order, paging), delete, messages, and 404s.
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, symlinkSync, rmSync, realpathSync, existsSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import path from 'node:path';
import { startServer, stopAndCheck, tempDir } from './lib/server.mjs';
import { request, get, post, del, assertError, assertAlive, assertSession } from './lib/http.mjs';

const PREFIXES = ['/api/sessions', '/sessions'];
const DIR_FIELDS = ['working_directory', 'cwd', 'working_dir'];

function postRaw(srv, p, text, contentType = 'application/json') {
  return request(srv, 'POST', p, { body: text, headers: { 'Content-Type': contentType } });
}

function assertCreated(r, want) {
  assert.equal(r.status, 201, `expected 201, got ${r.status}: ${r.text}`);
  assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
  assertSession(r.body, want);
  assert.equal(r.headers.get('location'), `/api/sessions/${r.body.id}`);
  assert.equal(r.body.message_count, 0);
  assert.equal(r.body.input_tokens, 0);
  assert.equal(r.body.output_tokens, 0);
  assert.equal(r.body.total_tokens, 0);
  assert.equal(r.body.updated_at, r.body.created_at, 'a new session was updated when it was created');
  const age = Date.now() - Date.parse(r.body.created_at);
  assert.ok(age > -2000 && age < 60_000, `created_at ${r.body.created_at} should be now`);
  return r.body;
}

/** All sessions, paging through the list. */
async function listAll(srv) {
  const all = [];
  for (let offset = 0; offset < 100_000; offset += 1000) {
    const r = await get(srv, `/api/sessions?limit=1000&offset=${offset}`);
    assert.equal(r.status, 200);
    all.push(...r.body);
    if (r.body.length < 1000) return all;
  }
  throw new Error('listAll: too many sessions');
}

describe('sessions', () => {
  let srv;
  let work; // the server's working directory, with a project in it
  let project;
  let file;

  before(async () => {
    work = tempDir('goosed-work-');
    project = path.join(work, 'project');
    mkdirSync(path.join(project, 'sub'), { recursive: true });
    file = path.join(work, 'notes.txt');
    writeFileSync(file, 'not a directory\n');
    symlinkSync(project, path.join(work, 'link'));
    srv = await startServer({ cwd: work });
  });
  after(async () => {
    await stopAndCheck(srv);
    rmSync(work, { recursive: true, force: true });
  });

  describe('create', () => {
    it("seed A's body: POST /sessions {cwd, name}", async () => {
      const body = `{\n"cwd": "${project}",\n"name": "My Session"\n}`;
      const r = await postRaw(srv, '/sessions', body);
      assertCreated(r, { name: 'My Session', working_dir: project, working_directory: project });
    });

    it("seed B's body: POST /api/sessions {name, working_directory}", async () => {
      const body = `{\n  "name": "My Project",\n  "working_directory": "${project}"\n}`;
      const r = await postRaw(srv, '/api/sessions', body);
      assertCreated(r, { name: 'My Project', working_dir: project, working_directory: project });
    });

    it("seed B's test request verbatim: {\"name\": \"test\", \"working_directory\": \"/tmp\"}", async () => {
      const r = await postRaw(srv, '/api/sessions', '{"name": "test", "working_directory": "/tmp"}');
      assertCreated(r, { name: 'test', working_dir: realpathSync('/tmp') });
    });

    for (const prefix of PREFIXES) {
      for (const field of DIR_FIELDS) {
        it(`POST ${prefix} with ${field}`, async () => {
          const name = `${field} via ${prefix}`;
          const r = await post(srv, prefix, { name, [field]: project });
          const s = assertCreated(r, { name, working_dir: project, working_directory: project });
          const g = await get(srv, r.headers.get('location'));
          assert.equal(g.status, 200);
          assert.deepEqual(g.body, s, 'GET Location returns the created session');
        });
      }
    }

    for (const prefix of PREFIXES) {
      it(`POST ${prefix} with no body: defaults`, async () => {
        const r = await request(srv, 'POST', prefix);
        assertCreated(r, { name: 'New session', working_dir: work, working_directory: work });
      });
    }

    it('POST {} : default name and the server\'s current directory', async () => {
      const r = await post(srv, '/api/sessions', {});
      assertCreated(r, { name: 'New session', working_dir: work });
    });

    it('only a name: the directory defaults', async () => {
      const r = await post(srv, '/api/sessions', { name: 'just a name' });
      assertCreated(r, { name: 'just a name', working_dir: work });
    });

    it('a relative directory is resolved against the server\'s directory', async () => {
      const r = await post(srv, '/api/sessions', { cwd: 'project/sub' });
      assertCreated(r, { working_dir: path.join(project, 'sub') });
      const r2 = await post(srv, '/api/sessions', { working_directory: './project/../project' });
      assertCreated(r2, { working_dir: project });
    });

    it('the directory is stored as its realpath (symlinks, trailing slash, dot segments)', async () => {
      const r = await post(srv, '/api/sessions', { working_dir: path.join(work, 'link') });
      assertCreated(r, { working_dir: project });
      const r2 = await post(srv, '/api/sessions', { cwd: `${project}/sub/../` });
      assertCreated(r2, { working_dir: project });
    });

    it('two directory fields with the same value are accepted', async () => {
      const r = await post(srv, '/api/sessions', { cwd: project, working_directory: project, working_dir: project });
      assertCreated(r, { working_dir: project });
    });

    it('a name of 256 characters is accepted', async () => {
      const name = 'n'.repeat(256);
      const r = await post(srv, '/api/sessions', { name });
      assertCreated(r, { name });
    });

    it('a name with non-ASCII characters and escapes comes back unchanged', async () => {
      const name = 'Projekt “Gänsefüßchen” 세션 \u{1F986} "quoted" \\ tab\t';
      const r = await post(srv, '/api/sessions', { name, cwd: project });
      const s = assertCreated(r, { name });
      const g = await get(srv, `/api/sessions/${s.id}`);
      assert.equal(g.body.name, name);
    });

    it('application/json with a charset parameter, and application/*+json, are JSON', async () => {
      const r = await postRaw(srv, '/api/sessions', '{"name":"cs"}', 'application/json; charset=utf-8');
      assertCreated(r, { name: 'cs' });
      const r2 = await postRaw(srv, '/api/sessions', '{"name":"vnd"}', 'application/vnd.goose+json');
      assertCreated(r2, { name: 'vnd' });
    });

    it('every new session gets its own id', async () => {
      const rs = await Promise.all(Array.from({ length: 10 }, () => post(srv, '/api/sessions', {})));
      const ids = new Set(rs.map((r) => assertCreated(r, {}).id));
      assert.equal(ids.size, 10);
    });
  });

  describe('create: validation', () => {
    afterEach(() => assertAlive(srv));
    for (const field of DIR_FIELDS) {
      it(`${field}: a directory that does not exist is 400 naming ${field}`, async () => {
        const r = await post(srv, '/api/sessions', { [field]: path.join(work, 'no-such-dir') });
        assertError(r, 400, 'bad_request', field);
      });

      it(`${field}: a file instead of a directory is 400 naming ${field}`, async () => {
        const r = await post(srv, '/sessions', { [field]: file });
        assertError(r, 400, 'bad_request', field);
      });

      for (const bad of [42, true, null, ['/tmp'], { path: '/tmp' }]) {
        it(`${field}: ${JSON.stringify(bad)} (not a string) is 400 naming ${field}`, async () => {
          const r = await post(srv, '/api/sessions', { [field]: bad });
          assertError(r, 400, 'bad_request', field);
        });
      }

      it(`${field}: an empty string is 400 naming ${field}`, async () => {
        const r = await post(srv, '/api/sessions', { [field]: '' });
        assertError(r, 400, 'bad_request', field);
      });
    }

    it('a relative directory that does not exist is 400', async () => {
      const r = await post(srv, '/api/sessions', { cwd: 'project/nope' });
      assertError(r, 400, 'bad_request', 'cwd');
    });

    for (const [a, b] of [['cwd', 'working_directory'], ['working_dir', 'cwd'], ['working_directory', 'working_dir']]) {
      it(`${a} and ${b} with different values is 400`, async () => {
        const r = await post(srv, '/api/sessions', { [a]: project, [b]: path.join(project, 'sub') });
        assertError(r, 400, 'bad_request', new RegExp(`${a}|${b}`));
      });
    }

    for (const bad of [42, null, false, ['x'], { x: 1 }]) {
      it(`name: ${JSON.stringify(bad)} is 400 naming name`, async () => {
        const r = await post(srv, '/api/sessions', { name: bad });
        assertError(r, 400, 'bad_request', 'name');
      });
    }

    it('name: an empty string is 400 naming name', async () => {
      const r = await post(srv, '/api/sessions', { name: '' });
      assertError(r, 400, 'bad_request', 'name');
    });

    it('name: 257 characters is 400 naming name', async () => {
      const r = await post(srv, '/api/sessions', { name: 'n'.repeat(257) });
      assertError(r, 400, 'bad_request', 'name');
    });

    for (const body of ['[]', '"a session"', '42', 'null', 'true']) {
      it(`a body that is not a JSON object (${body}) is 400`, async () => {
        const r = await postRaw(srv, '/api/sessions', body);
        assert.equal(r.status, 400, r.text);
        assert.ok(['invalid_json', 'bad_request'].includes(r.body.code), r.text);
        assert.match(r.body.error, /object/i);
      });
    }

    it('a rejected create stores nothing', async () => {
      const before = (await get(srv, '/api/sessions?limit=1000')).headers.get('x-total-count');
      await post(srv, '/api/sessions', { name: 'never stored', cwd: path.join(work, 'missing') });
      await post(srv, '/api/sessions', { name: '' });
      const r = await get(srv, '/api/sessions?limit=1000');
      assert.equal(r.headers.get('x-total-count'), before);
      assert.ok(!r.body.some((s) => s.name === 'never stored'));
    });
  });

  describe('get, messages, delete', () => {
    let s;
    before(async () => {
      s = assertCreated(await post(srv, '/api/sessions', { name: 'to read', cwd: project }), {});
    });

    for (const prefix of PREFIXES) {
      it(`GET ${prefix}/{id}`, async () => {
        const r = await get(srv, `${prefix}/${s.id}`);
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
        assertSession(r.body);
        assert.deepEqual(r.body, s);
      });

      it(`GET ${prefix}/{id}/messages of a new session is []`, async () => {
        const r = await get(srv, `${prefix}/${s.id}/messages`);
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
        assert.deepEqual(r.body, []);
      });
    }

    it('the session is in the list', async () => {
      const all = await listAll(srv);
      assert.deepEqual(all.find((x) => x.id === s.id), s);
    });

    for (const prefix of PREFIXES) {
      it(`DELETE ${prefix}/{id}: 204, then every route answers 404`, async () => {
        const c = assertCreated(await post(srv, prefix, { name: `doomed ${prefix}` }), {});
        const d = await del(srv, `${prefix}/${c.id}`);
        assert.equal(d.status, 204);
        assert.equal(d.text, '');
        for (const p of PREFIXES) {
          assertError(await get(srv, `${p}/${c.id}`), 404, 'not_found', `session '${c.id}' not found`);
          assertError(await get(srv, `${p}/${c.id}/messages`), 404, 'not_found', c.id);
          assertError(await del(srv, `${p}/${c.id}`), 404, 'not_found', c.id);
        }
        const all = await listAll(srv);
        assert.ok(!all.some((x) => x.id === c.id), 'a deleted session is not listed');
        // The others are untouched.
        assert.equal((await get(srv, `/api/sessions/${s.id}`)).status, 200);
      });
    }
  });

  describe('unknown sessions', () => {
    for (const id of [randomUUID(), 'no-such-session', '00000000-0000-4000-8000-000000000000']) {
      for (const prefix of PREFIXES) {
        it(`GET ${prefix}/${id} is 404 naming it`, async () => {
          const r = await get(srv, `${prefix}/${id}`);
          assertError(r, 404, 'not_found');
          assert.equal(r.body.error, `session '${id}' not found`);
        });
        it(`GET ${prefix}/${id}/messages is 404`, async () => {
          assertError(await get(srv, `${prefix}/${id}/messages`), 404, 'not_found', id);
        });
        it(`DELETE ${prefix}/${id} is 404`, async () => {
          assertError(await del(srv, `${prefix}/${id}`), 404, 'not_found', id);
        });
      }
    }

    it('an id with SQL in it is just an unknown id', async () => {
      const id = encodeURIComponent("x' OR '1'='1");
      const r = await get(srv, `/api/sessions/${id}`);
      assertError(r, 404, 'not_found');
      await assertAlive(srv);
    });
  });
});

describe('session list', () => {
  let srv;
  let all; // the full list, newest first
  const N = 105;

  before(async () => {
    srv = await startServer();
    const first = (await post(srv, '/api/sessions', { name: 'oldest' })).body;
    // created_at has one-second resolution: wait for the clock to pass that second so the
    // next session is strictly newer (the server runs on this host, with this clock).
    const next = Date.parse(first.created_at) + 1000 + 20;
    while (Date.now() < next) await delay(Math.min(100, next - Date.now()));
    for (let i = 1; i < N; i += 13) {
      const batch = Array.from({ length: Math.min(13, N - i) }, (_, k) => post(srv, '/api/sessions', { name: `s${i + k}` }));
      for (const r of await Promise.all(batch)) assert.equal(r.status, 201, r.text);
    }
    const r = await get(srv, '/api/sessions?limit=1000');
    assert.equal(r.status, 200);
    all = r.body;
  });
  after(() => stopAndCheck(srv));

  it('lists every session once, with X-Total-Count', async () => {
    const r = await get(srv, '/api/sessions?limit=1000');
    assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.equal(r.headers.get('x-total-count'), String(N));
    assert.equal(all.length, N);
    assert.equal(new Set(all.map((s) => s.id)).size, N);
    for (const s of all) assertSession(s);
  });

  it('newest first: a session created a second later comes first, the oldest last', () => {
    assert.equal(all[N - 1].name, 'oldest');
    assert.ok(all[0].created_at > all[N - 1].created_at);
  });

  it('ordered by created_at, newest first', () => {
    for (let i = 1; i < all.length; i++) {
      assert.ok(all[i - 1].created_at >= all[i].created_at, `${all[i - 1].created_at} listed before ${all[i].created_at}`);
    }
  });

  for (const prefix of PREFIXES) {
    it(`GET ${prefix} without parameters: the newest 100`, async () => {
      const r = await get(srv, prefix);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-total-count'), String(N));
      assert.equal(r.body.length, 100);
      assert.deepEqual(r.body.map((s) => s.id), all.slice(0, 100).map((s) => s.id));
    });
  }

  for (const [q, from, to] of [
    ['limit=1', 0, 1], ['limit=10', 0, 10], ['limit=10&offset=10', 10, 20], ['offset=100', 100, 105],
    ['limit=7&offset=100', 100, 105], ['offset=104', 104, 105], ['offset=105', 105, 105],
    ['offset=100000', 105, 105], ['limit=1000&offset=0', 0, 105], ['offset=3&limit=2', 3, 5],
  ]) {
    it(`?${q}`, async () => {
      for (const prefix of PREFIXES) {
        const r = await get(srv, `${prefix}?${q}`);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('x-total-count'), String(N), 'X-Total-Count counts every session');
        assert.deepEqual(r.body.map((s) => s.id), all.slice(from, to).map((s) => s.id));
      }
    });
  }

  for (const [q, param] of [
    ['limit=0', 'limit'], ['limit=1001', 'limit'], ['limit=-1', 'limit'], ['limit=abc', 'limit'],
    ['limit=1.5', 'limit'], ['limit=10abc', 'limit'], ['limit=99999999999999999999999', 'limit'],
    ['limit=%201', 'limit'], ['offset=-1', 'offset'], ['offset=abc', 'offset'], ['offset=2.5', 'offset'],
    ['offset=99999999999999999999999', 'offset'], ['limit=5&offset=x', 'offset'], ['limit=x&offset=5', 'limit'],
  ]) {
    it(`?${q} is 400 naming ${param}`, async () => {
      for (const prefix of PREFIXES) {
        const r = await get(srv, `${prefix}?${q}`);
        assertError(r, 400, 'bad_request', param);
      }
      await assertAlive(srv);
    });
  }

  it('unknown query parameters are ignored', async () => {
    const r = await get(srv, '/api/sessions?limit=3&sort=asc');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.map((s) => s.id), all.slice(0, 3).map((s) => s.id));
  });
});

// Paging by cursor: the same order as the offset pages, and stable while sessions come and go
// between pages (a new session never shifts a later page; a deleted one is simply not there).
describe('session list by cursor', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(() => stopAndCheck(srv));

  /** Every page from cursor '' on, following next_cursor; between(i) runs before page i+1. */
  async function pages(prefix, limit, between = async () => {}) {
    const seen = [];
    let cursor = '';
    for (let i = 0; i < 1000; i++) {
      const r = await get(srv, `${prefix}?limit=${limit}&cursor=${encodeURIComponent(cursor)}`);
      assert.equal(r.status, 200, r.text);
      assert.ok(Array.isArray(r.body.sessions), r.text);
      assert.ok(r.body.sessions.length <= limit);
      seen.push(r.body.sessions.map((x) => x.id));
      const link = r.headers.get('link');
      if (r.body.next_cursor === null) {
        assert.equal(link, null, 'no Link on the last page');
        return { seen, total: Number(r.headers.get('x-total-count')) };
      }
      assert.equal(r.body.sessions.length, limit, 'a page before the last is full');
      assert.equal(link, `<${prefix}?limit=${limit}&cursor=${r.body.next_cursor}>; rel="next"`);
      cursor = r.body.next_cursor;
      await between(i, seen.flat());
    }
    throw new Error('no last page after 1000');
  }

  it('pages through every session once, in the offset order, on both paths', async () => {
    for (let i = 0; i < 23; i++) assert.equal((await post(srv, '/api/sessions', { name: `c${i}` })).status, 201);
    const list = (await get(srv, '/api/sessions?limit=1000')).body.map((x) => x.id);
    for (const prefix of PREFIXES) {
      for (const limit of [1, 5, 23, 100]) {
        const { seen, total } = await pages(prefix, limit);
        assert.deepEqual(seen.flat(), list, `limit ${limit}`);
        assert.equal(total, list.length);
      }
    }
  });

  it('sessions created and deleted between pages: none twice, none skipped, the new ones not in later pages', async () => {
    const before = (await get(srv, '/api/sessions?limit=1000')).body.map((x) => x.id);
    const made = [];
    const deleted = new Set();
    const { seen, total } = await pages('/api/sessions', 4, async (i, listed) => {
      const r = await post(srv, '/api/sessions', { name: `between${i}` });
      assert.equal(r.status, 201);
      made.push(r.body.id);
      // delete one that has not been listed yet (the oldest left)
      const unseen = before.filter((id) => !deleted.has(id) && !listed.includes(id));
      const victim = unseen[unseen.length - 1];
      if (victim && i % 2 === 0) {
        assert.equal((await del(srv, `/api/sessions/${victim}`)).status, 204);
        deleted.add(victim);
      }
    });
    const ids = seen.flat();
    assert.equal(new Set(ids).size, ids.length, 'a session listed twice');
    assert.deepEqual(ids, before.filter((id) => !deleted.has(id)), 'every session there throughout, once, in order');
    for (const id of made) assert.ok(!ids.includes(id), 'a session made after the first page shows up on a later one');
    assert.ok(deleted.size > 0 && made.length > 0);
    assert.equal(total, before.length - deleted.size + made.length, 'X-Total-Count follows creates and deletes');
  });

  it('the offset form names the next page by cursor too', async () => {
    const r = await get(srv, '/api/sessions?limit=2&offset=0');
    assert.ok(Array.isArray(r.body));
    const next = /^<\/api\/sessions\?limit=2&cursor=([^>]+)>; rel="next"$/.exec(r.headers.get('link'));
    assert.ok(next, r.headers.get('link'));
    const r2 = await get(srv, `/api/sessions?limit=2&cursor=${next[1]}`);
    const r3 = await get(srv, '/api/sessions?limit=2&offset=2');
    assert.deepEqual(r2.body.sessions.map((x) => x.id), r3.body.map((x) => x.id));
  });

  for (const [q, what] of [
    ['cursor=abc', 'cursor'], ['cursor=12_x', 'cursor'], ['cursor=-1_01a21e47-ee02-7000-8ab4-60f6e8311bc9', 'cursor'],
    ['cursor=99999999999999999999_01a21e47-ee02-7000-8ab4-60f6e8311bc9', 'cursor'],
    ['cursor=&offset=0', 'offset'], ['cursor=&limit=0', 'limit'],
  ]) {
    it(`?${q} is 400 naming ${what}`, async () => {
      assertError(await get(srv, `/api/sessions?${q}`), 400, 'bad_request', what);
    });
  }

  it("another user's sessions are neither listed nor counted", async () => {
    const { addUser } = await import('./lib/users.mjs');
    const home = tempDir();
    const admin = await addUser(home, 'pager-a', true);
    const bob = await addUser(home, 'pager-b');
    const as = (t) => ({ headers: { Authorization: `Bearer ${t}` } });
    const other = await startServer({ home });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await post(other, '/api/sessions', { name: `a${i}` }, as(admin))).status, 201);
      assert.equal((await post(other, '/api/sessions', { name: 'b0' }, as(bob))).status, 201);
      const r = await get(other, '/api/sessions?limit=2&cursor=', as(bob));
      assert.deepEqual(r.body.sessions.map((x) => x.name), ['b0']);
      assert.equal(r.body.next_cursor, null);
      assert.equal(r.headers.get('x-total-count'), '1');
      const ra = await get(other, '/api/sessions?limit=2&cursor=', as(admin));
      assert.deepEqual(ra.body.sessions.map((x) => x.name), ['a2', 'a1']);
      assert.equal(ra.headers.get('x-total-count'), '3');
    } finally {
      await stopAndCheck(other);
    }
  });
});

describe('a deleted session', () => {
  it('leaves nothing of itself readable in goosed.db (its free space is zeroed)', async () => {
    const MARK = `deleted-session-text-${randomUUID()}`;
    const home = tempDir();
    const dir = tempDir('goosed-del-cwd-');
    let srv = await startServer({ home });
    const data = path.join(home, '.local/share/goose/sessions');
    const stored = () => ['goosed.db', 'goosed.db-wal'].map((f) => path.join(data, f)).filter(existsSync).map((f) => readFileSync(f).toString('latin1')).join('');
    try {
      const messages = Array.from({ length: 40 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: [{ type: 'text', text: `${MARK} ${i} ${'x'.repeat(2000)}` }] }));
      const imp = await post(srv, '/api/sessions/import', { format: 'goosed-session', version: 1, working_directory: dir, session: { name: MARK, working_dir: dir }, messages });
      assert.equal(imp.status, 201, imp.text);
      const keep = await post(srv, '/api/sessions', { name: 'kept', working_directory: dir });
      assert.equal(keep.status, 201, keep.text);
      await stopAndCheck(srv);
      assert.ok(stored().includes(MARK), 'stored');
      srv = await startServer({ home });
      assert.equal((await del(srv, `/api/sessions/${imp.body.id}`)).status, 204);
      await stopAndCheck(srv);
      srv = null;
      assert.ok(!stored().includes(MARK), 'a deleted session\'s name and messages are not left in the file');
      assert.ok(stored().includes('kept'));
    } finally {
      if (srv) await stopAndCheck(srv);
    }
  });
});
