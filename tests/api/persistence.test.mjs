// Persistence and shutdown: sessions survive a graceful restart and a kill -9 (a 201 is durable),
// SIGTERM/SIGINT finish what is in flight and exit 0.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startServer, stopAndCheck, kill9AndCheck, tempDir } from './lib/server.mjs';
import { get, post, del, rawRequest, assertError, assertSession } from './lib/http.mjs';

async function listAll(srv) {
  const r = await get(srv, '/api/sessions?limit=1000');
  assert.equal(r.status, 200);
  return r.body;
}

describe('persistence', () => {
  it('sessions survive a SIGTERM restart, unchanged; a delete does too', async (t) => {
    const home = tempDir();
    t.after(() => rmSync(home, { recursive: true, force: true }));
    const work = tempDir('goosed-work-');
    t.after(() => rmSync(work, { recursive: true, force: true }));

    let srv = await startServer({ home });
    const made = [];
    for (const [i, body] of [{ name: 'first', cwd: work }, { name: 'second', working_directory: '/tmp' }, {}, { name: 'fourth' }].entries()) {
      const r = await post(srv, i % 2 ? '/sessions' : '/api/sessions', body);
      assert.equal(r.status, 201, r.text);
      made.push(r.body);
    }
    const before = await listAll(srv);
    assert.equal((await del(srv, `/api/sessions/${made[3].id}`)).status, 204);
    await stopAndCheck(srv);
    assert.match(srv.log(), /shutdown complete/);

    srv = await startServer({ home });
    try {
      const after = await listAll(srv);
      assert.deepEqual(after, before.filter((s) => s.id !== made[3].id), 'the same sessions, same fields, same order');
      for (const s of made.slice(0, 3)) {
        const g = await get(srv, `/sessions/${s.id}`);
        assert.equal(g.status, 200);
        assert.deepEqual(g.body, s);
        assert.deepEqual((await get(srv, `/api/sessions/${s.id}/messages`)).body, []);
      }
      assertError(await get(srv, `/api/sessions/${made[3].id}`), 404, 'not_found', made[3].id);
      // The restarted server keeps writing to the same store.
      const r = await post(srv, '/api/sessions', { name: 'after restart' });
      assert.equal(r.status, 201);
      assert.equal((await listAll(srv)).length, 4);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('every session answered with 201 survives kill -9', async (t) => {
    const home = tempDir();
    t.after(() => rmSync(home, { recursive: true, force: true }));
    let srv = await startServer({ home });
    const made = [];
    // Sequential ones, then a burst of concurrent ones; the kill comes right after the last 201.
    for (let i = 0; i < 5; i++) made.push((await post(srv, '/api/sessions', { name: `seq ${i}` })).body);
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => post(srv, '/sessions', { name: `burst ${i}` })));
    for (const r of burst) {
      assert.equal(r.status, 201, r.text);
      made.push(r.body);
    }
    const gone = made[0];
    assert.equal((await del(srv, `/api/sessions/${gone.id}`)).status, 204);
    const killed = await kill9AndCheck(srv);
    assert.equal(killed.signal, 'SIGKILL');

    srv = await startServer({ home });
    try {
      const after = await listAll(srv);
      const byId = new Map(after.map((s) => [s.id, s]));
      for (const s of made.slice(1)) {
        assert.ok(byId.has(s.id), `session ${s.name} (${s.id}) was answered 201 but is gone after kill -9`);
        assertSession(byId.get(s.id));
        assert.deepEqual(byId.get(s.id), s);
      }
      assert.ok(!byId.has(gone.id), 'a delete answered 204 stays deleted after kill -9');
      assert.equal(after.length, made.length - 1);
      assert.equal((await get(srv, '/api/health')).body.store, 'ok');
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('a server killed while idle restarts with a healthy store, several times', async (t) => {
    const home = tempDir();
    t.after(() => rmSync(home, { recursive: true, force: true }));
    const ids = [];
    for (let round = 0; round < 3; round++) {
      const srv = await startServer({ home });
      const listed = await listAll(srv);
      assert.deepEqual(new Set(listed.map((s) => s.id)), new Set(ids), `round ${round}`);
      const r = await post(srv, '/api/sessions', { name: `round ${round}` });
      assert.equal(r.status, 201);
      ids.push(r.body.id);
      await kill9AndCheck(srv);
    }
    const srv = await startServer({ home });
    try {
      assert.equal((await listAll(srv)).length, 3);
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('a crash', () => {
  // goosed is not dumpable (no core file holds its keys): a crash tells its stack on stderr.
  it('says so on stderr with its stack, and goosed still ends by the signal', { skip: !!process.env.ASAN_OPTIONS && 'AddressSanitizer reports crashes itself' }, async () => {
    const srv = await startServer({});
    const r = await srv.stop('SIGSEGV');
    assert.deepEqual({ code: r.code, signal: r.signal }, { code: null, signal: 'SIGSEGV' });
    assert.match(srv.log(), /goosed: fatal signal 11 \(SIGSEGV\); this is a bug of goosed: please report it with these lines\. The stack:\n/);
    assert.match(srv.log(), /goosed\(\+0x[0-9a-f]+\)/, 'frames of goosed, by offset');
  });
});

describe('shutdown', () => {
  for (const sig of ['SIGTERM', 'SIGINT']) {
    it(`${sig}: exit 0 and "shutdown complete" in the log`, async () => {
      const srv = await startServer();
      await get(srv, '/status');
      await stopAndCheck(srv, sig);
      assert.match(srv.log(), /shutdown complete/);
      const lines = srv.log().trimEnd().split('\n');
      assert.match(lines.at(-1), /shutdown complete/, 'shutdown complete is the last line');
    });
  }

  it('SIGTERM with idle keep-alive connections open still exits promptly with 0', async () => {
    const srv = await startServer();
    // fetch keeps its connections alive; open a few.
    await Promise.all(Array.from({ length: 4 }, () => get(srv, '/api/health')));
    const t0 = Date.now();
    await stopAndCheck(srv);
    assert.ok(Date.now() - t0 < 5000, `stopping took ${Date.now() - t0} ms`);
  });

  it('a request in flight when SIGTERM arrives is finished, then the server exits 0', async (t) => {
    const home = tempDir();
    t.after(() => rmSync(home, { recursive: true, force: true }));
    const srv = await startServer({ home });
    const body = '{"name":"in flight"}';
    let sigSent;
    // Headers first, with Expect: 100-continue: the 100 says the server has the request in hand.
    // Only then SIGTERM, and only once the server says it is stopping, the body.
    const res = await rawRequest(srv, `POST /api/sessions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`, {
      timeoutMs: 8000,
      interim: (head, sock) => {
        assert.equal(head.status, 100);
        const from = srv.log().length;
        srv.proc.kill('SIGTERM');
        sigSent = srv.waitForLog(/SIGTERM|shutting down|stopping/i, { from, timeoutMs: 5000 })
          .then(() => sock.write(body));
      },
    });
    await sigSent;
    assert.equal(res.status, 201, `${res.statusLine}\n${res.body}`);
    const created = JSON.parse(res.body);
    assertSession(created, { name: 'in flight' });
    const r = await srv.exited;
    assert.deepEqual(r, { code: 0, signal: null }, srv.log());
    assert.match(srv.log(), /shutdown complete/);
    await stopAndCheck(srv);

    const again = await startServer({ home });
    try {
      const g = await get(again, `/api/sessions/${created.id}`);
      assert.equal(g.status, 200);
      assert.equal(g.body.name, 'in flight');
    } finally {
      await stopAndCheck(again);
    }
  });
});
