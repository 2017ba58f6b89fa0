// Execution modes and tool approval: GOOSE_MODE, PATCH /api/config, tool_confirmation events
// answered over HTTP or WebSocket, "always" answers kept in permission.yaml across a restart,
// a denied tool the model is told about, and a question that survives its client leaving.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAndCheck, tempDir } from './lib/server.mjs';
import { get, post, request, assertError } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';
import { watch } from './lib/events.mjs';
import { connect } from './lib/ws.mjs';

const KEY = 'sk-approval-test';

const env = (fake, extra = {}) => ({ GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, ...extra });

async function newSession(srv, dir) {
  const r = await post(srv, '/api/sessions', { name: 'approval', working_directory: dir });
  assert.equal(r.status, 201, r.text);
  return r.body.id;
}

const shell = (id, command) => ({ tool_calls: [{ id, name: 'developer__shell', arguments: { command } }] });
const confirm = (srv, sid, id, action) => post(srv, `/api/sessions/${sid}/tool_confirmations`, { id, action });

/** The tool results the model was sent in its last request. */
async function lastToolMessages(fake) {
  const reqs = await fake.requests('openai');
  return reqs.at(-1).body.messages.filter((m) => m.role === 'tool');
}

describe('approve mode', () => {
  let fake, srv, dir;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    srv = await startServer({ env: env(fake, { GOOSE_MODE: 'approve' }) });
    dir = tempDir('goosed-approval-');
  });
  after(async () => {
    try { await stopAndCheck(srv); } finally { await fake.stop(); }
  });

  it('asks before a tool runs, runs it once allowed', async () => {
    const sid = await newSession(srv, dir);
    const w = await watch(srv, sid);
    await fake.script([shell('call_a', 'touch allowed.txt'), { text: 'made it' }]);
    const pending = fetch(`${srv.url}/api/sessions/${sid}/messages`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'make a file' }) });
    const seen = await w.until('tool_confirmation');
    const q = JSON.parse(seen.find((e) => e.event === 'tool_confirmation').data);
    assert.equal(q.id, 'call_a');
    assert.equal(q.tool, 'developer__shell');
    assert.deepEqual(q.arguments, { command: 'touch allowed.txt' });
    assert.deepEqual(q.choices, ['allow_once', 'always_allow', 'deny_once', 'always_deny', 'cancel']);
    assert.ok(!existsSync(path.join(dir, 'allowed.txt')), 'nothing runs before the answer');
    // wrong answers first: a bad action, an id that is not waiting
    assertError(await confirm(srv, sid, 'call_a', 'maybe'), 400, 'bad_request', /action/);
    assertError(await confirm(srv, sid, 'call_zzz', 'allow_once'), 404, 'not_found', /call_zzz/);
    assertError(await post(srv, `/api/sessions/${sid}/tool_confirmations`, { action: 'allow_once' }), 400, 'bad_request', /id/);
    const ok = await confirm(srv, sid, 'call_a', 'allow_once');
    assert.equal(ok.status, 200, ok.text);
    assertError(await confirm(srv, sid, 'call_a', 'allow_once'), 404, 'not_found'); // answered once
    const reply = await pending;
    assert.equal(reply.status, 200);
    const body = await reply.json();
    assert.match(JSON.stringify(body), /made it/);
    assert.ok(existsSync(path.join(dir, 'allowed.txt')));
    w.close();
  });

  it('a denied tool does not run, and the model is told the user denied it', async () => {
    const sid = await newSession(srv, dir);
    const w = await watch(srv, sid);
    await fake.script([shell('call_d', 'touch denied.txt'), { text: 'ok, I will not' }]);
    const pending = fetch(`${srv.url}/api/sessions/${sid}/messages`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'make a file' }) });
    await w.until('tool_confirmation');
    assert.equal((await confirm(srv, sid, 'call_d', 'deny')).status, 200);
    assert.equal((await pending).status, 200);
    assert.ok(!existsSync(path.join(dir, 'denied.txt')));
    const tools = await lastToolMessages(fake);
    assert.equal(tools.length, 1);
    assert.equal(tools[0].tool_call_id, 'call_d');
    assert.match(JSON.stringify(tools[0].content), /denied by the user/);
    w.close();
  });

  it('cancel as an answer ends the reply; every tool request still gets a result', async () => {
    const sid = await newSession(srv, dir);
    const w = await watch(srv, sid);
    await fake.script([{ tool_calls: [{ id: 'c1', name: 'developer__shell', arguments: { command: 'touch c1' } }, { id: 'c2', name: 'developer__shell', arguments: { command: 'touch c2' } }] }, { text: 'next' }]);
    const pending = fetch(`${srv.url}/api/sessions/${sid}/messages`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'two' }) });
    await w.until('tool_confirmation');
    assert.equal((await confirm(srv, sid, 'c1', 'cancel')).status, 200);
    const body = await (await pending).json();
    assert.equal(body.stop_reason ?? body.message?.stop_reason ?? JSON.stringify(body).match(/"stop_reason":"(\w+)"/)[1], 'cancelled');
    assert.ok(!existsSync(path.join(dir, 'c1')) && !existsSync(path.join(dir, 'c2')));
    // the next message works against the fake's rule: every tool call answered
    await fake.script([{ text: 'fine' }]);
    const again = await post(srv, `/api/sessions/${sid}/messages`, { content: 'hello again' });
    assert.equal(again.status, 200, again.text);
    w.close();
  });

  it('a question survives its client leaving, is replayed with Last-Event-ID, and can be cancelled', async () => {
    const sid = await newSession(srv, dir);
    await fake.script([shell('call_r', 'touch replay.txt'), { text: 'unused' }]);
    const w = await watch(srv, sid);
    const ctl = new AbortController();
    fetch(`${srv.url}/api/sessions/${sid}/messages/stream`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'go' }), signal: ctl.signal }).catch(() => {});
    const seen = await w.until('tool_confirmation');
    w.close();
    ctl.abort(); // every client is gone
    const before = seen.find((e) => e.event === 'tool_confirmation');
    const firstId = Number(seen[0].id);
    const w2 = await watch(srv, sid, { 'Last-Event-ID': String(firstId - 1) });
    const replay = await w2.until('tool_confirmation');
    assert.equal(replay.find((e) => e.event === 'tool_confirmation').data, before.data);
    const c = await post(srv, `/api/sessions/${sid}/cancel`, undefined);
    assert.equal(c.status, 202, c.text);
    const end = await w2.until('message_complete');
    assert.equal(JSON.parse(end.find((e) => e.event === 'message_complete').data).stop_reason, 'cancelled');
    assert.ok(!existsSync(path.join(dir, 'replay.txt')));
    w2.close();
  });

  it('an answer sent once a cancel was accepted is refused with 404, never taken and ignored', async () => {
    // The cancel's 202 and the answer race to the agent; 50 tries, the answer right after the 202.
    for (let i = 0; i < 50; i++) {
      const sid = await newSession(srv, dir);
      await fake.script([shell(`call_late${i}`, `touch late${i}.txt`), { text: 'unused' }]);
      const w = await watch(srv, sid);
      fetch(`${srv.url}/api/sessions/${sid}/messages/stream`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'go' }) }).then((r) => r.text()).catch(() => {});
      await w.until('tool_confirmation');
      const c = await post(srv, `/api/sessions/${sid}/cancel`, undefined);
      assert.equal(c.status, 202, c.text);
      const a = await confirm(srv, sid, `call_late${i}`, 'allow_once');
      assertError(a, 404, 'not_found', new RegExp(`no tool confirmation 'call_late${i}' is waiting`));
      const end = await w.until('message_complete');
      assert.equal(JSON.parse(end.find((e) => e.event === 'message_complete').data).stop_reason, 'cancelled');
      assert.ok(!existsSync(path.join(dir, `late${i}.txt`)));
      w.close();
    }
  });

  it('answers over the WebSocket too', async () => {
    const sid = await newSession(srv, dir);
    await fake.script([shell('call_ws', 'touch ws.txt'), { text: 'done over ws' }]);
    const { status, ws } = await connect(srv, `/api/sessions/${sid}/stream`);
    assert.equal(status, 101);
    ws.sendJSON({ type: 'message', content: 'do it' });
    const q = (await ws.until('tool_confirmation')).at(-1);
    assert.equal(q.id, 'call_ws');
    ws.sendJSON({ type: 'tool_confirmation', id: 'call_ws', action: 'maybe' });
    const bad = (await ws.until('error')).at(-1);
    assert.equal(bad.code, 'bad_request');
    ws.sendJSON({ type: 'tool_confirmation', id: 'call_ws', action: 'allow_once' });
    const done = (await ws.until('message_complete')).at(-1);
    assert.equal(done.stop_reason, 'end_turn');
    assert.ok(existsSync(path.join(dir, 'ws.txt')));
    ws.close();
  });
});

describe('always answers, modes through the API', () => {
  it('"always allow" and "always deny" persist in permission.yaml across a restart', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const home = tempDir('goosed-perm-home-');
    const dir = tempDir('goosed-perm-');
    try {
      let srv = await startServer({ home, env: env(fake, { GOOSE_MODE: 'approve' }) });
      let sid = await newSession(srv, dir);
      let w = await watch(srv, sid);
      await fake.script([shell('p1', 'touch p1'), { text: 'one' }]);
      let pending = post(srv, `/api/sessions/${sid}/messages`, { content: 'x' });
      await w.until('tool_confirmation');
      assert.equal((await confirm(srv, sid, 'p1', 'always_allow')).status, 200);
      assert.equal((await pending).status, 200);
      w.close();
      await stopAndCheck(srv);
      const file = path.join(home, '.config', 'goose', 'permission.yaml');
      assert.match(readFileSync(file, 'utf8'), /always_allow:\n {2}- "developer__shell"/);

      srv = await startServer({ home, env: env(fake, { GOOSE_MODE: 'approve' }) });
      sid = await newSession(srv, dir);
      w = await watch(srv, sid);
      // allowed without a question now: the reply completes by itself
      await fake.script([shell('p2', 'touch p2'), { text: 'two' }]);
      const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'y' });
      assert.equal(r.status, 200, r.text);
      assert.ok(existsSync(path.join(dir, 'p2')));
      assert.ok(!w.seen.some((e) => e.event === 'tool_confirmation'));
      // list_files is another tool: it still asks; deny it for good
      await fake.script([{ tool_calls: [{ id: 'p3', name: 'developer__list_files', arguments: {} }] }, { text: 'three' }]);
      pending = post(srv, `/api/sessions/${sid}/messages`, { content: 'z' });
      await w.until('tool_confirmation', (d) => d.id === 'p3');
      assert.equal((await confirm(srv, sid, 'p3', 'always_deny')).status, 200);
      assert.equal((await pending).status, 200);
      w.close();
      await stopAndCheck(srv);
      assert.match(readFileSync(file, 'utf8'), /never_allow:\n {2}- "developer__list_files"/);

      srv = await startServer({ home, env: env(fake, { GOOSE_MODE: 'auto' }) });
      sid = await newSession(srv, dir);
      // even in auto mode, a tool the user always denies does not run
      await fake.script([{ tool_calls: [{ id: 'p4', name: 'developer__list_files', arguments: {} }] }, { text: 'four' }]);
      assert.equal((await post(srv, `/api/sessions/${sid}/messages`, { content: 'w' })).status, 200);
      assert.match(JSON.stringify((await lastToolMessages(fake))[0].content), /does not allow/);
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it('PATCH /api/config sets the mode (seed B spelling too), keeps it in config.yaml, refuses bad input', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const srv = await startServer({ env: env(fake), configYaml: '# my settings\nGOOSE_MODEL: gpt-test\n' });
    try {
      assert.equal((await get(srv, '/api/config')).body.execution_mode, 'auto');
      const r = await request(srv, 'PATCH', '/api/config', { json: { execution_mode: 'smart_approval', auto_save: true } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.execution_mode, 'smart_approve');
      const yaml = readFileSync(srv.configFile, 'utf8');
      assert.match(yaml, /^# my settings\n/);
      assert.match(yaml, /GOOSE_MODE: "?smart_approve"?/);
      assertError(await request(srv, 'PATCH', '/api/config', { json: { execution_mode: 'yolo' } }), 400, 'bad_request', /execution_mode/);
      assertError(await request(srv, 'PATCH', '/api/config', { json: { colour: 'blue' } }), 400, 'bad_request', /colour/);
      assertError(await request(srv, 'PATCH', '/api/config', { json: { auto_save: false } }), 400, 'bad_request', /auto_save/);
      assertError(await request(srv, 'PATCH', '/api/config', { json: {} }), 400, 'bad_request');

      // smart_approve: a read-only call runs, a write asks
      const dir = tempDir('goosed-smart-');
      const sid = await newSession(srv, dir);
      const w = await watch(srv, sid);
      await fake.script([{ tool_calls: [{ id: 's1', name: 'developer__list_files', arguments: {} }, { id: 's2', name: 'developer__text_editor', arguments: { command: 'view', path: path.join(dir, 'nothing') } }, { id: 's3', name: 'developer__shell', arguments: { command: 'touch s3' } }] }, { text: 'smart' }]);
      const pending = post(srv, `/api/sessions/${sid}/messages`, { content: 'look' });
      const seen = await w.until('tool_confirmation');
      const results = seen.filter((e) => e.event === 'tool_result').map((e) => JSON.parse(e.data).id);
      assert.deepEqual(results, ['s1', 's2'], 'the read-only calls ran without asking');
      assert.equal(JSON.parse(seen.find((e) => e.event === 'tool_confirmation').data).id, 's3');
      assert.equal((await confirm(srv, sid, 's3', 'deny_once')).status, 200);
      assert.equal((await pending).status, 200);
      w.close();

      // chat: no tools offered at all
      assert.equal((await request(srv, 'PATCH', '/api/config', { json: { execution_mode: 'chat' } })).status, 200);
      await fake.script([{ text: 'just talk' }]);
      assert.equal((await post(srv, `/api/sessions/${sid}/messages`, { content: 'talk' })).status, 200);
      const last = (await fake.requests('openai')).at(-1).body;
      assert.ok(!last.tools || last.tools.length === 0, 'chat mode sends no tools');
    } finally {
      await stopAndCheck(srv);
      await fake.stop();
    }
  });

  it('a bad GOOSE_MODE stops goosed at start with a message naming it', async () => {
    const { runGoosed } = await import('./lib/server.mjs');
    const r = await runGoosed([], { GOOSE_MODE: 'yolo' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /GOOSE_MODE.*auto, approve, smart_approve or chat/);
  });
});
