// Moving sessions between instances: GET /api/sessions/{id}/export, POST /api/sessions/import
// (goosed's own format and what the real Goose's `goose session export` writes) and POST
// /api/sessions/{id}/fork. Round trips through a second server, a conversation that goes on after
// the import (the fake provider refuses a malformed one), secrets left out, malformed documents
// refused with nothing made, and another user's sessions out of reach.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdirSync, realpathSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAndCheck, runGoosed, tempDir } from './lib/server.mjs';
import { get, post, request, assertError, UUID_V7 } from './lib/http.mjs';

const UUID_NIL = '00000000-0000-7000-8000-000000000000';
import { startFake } from '../fakes/lib.mjs';
import { addUser } from './lib/users.mjs';

const as = (token) => ({ headers: { Authorization: `Bearer ${token}` } });

async function newSession(srv, dir, opts) {
  const r = await post(srv, '/api/sessions', { name: 'transfer', working_directory: dir }, opts);
  assert.equal(r.status, 201, r.text);
  return r.body.id;
}

async function messages(srv, sid, opts) {
  const r = await get(srv, `/api/sessions/${sid}/messages`, opts);
  assert.equal(r.status, 200, r.text);
  return r.body;
}

async function sessionIds(srv, opts) {
  const r = await get(srv, '/api/sessions?limit=1000', opts);
  assert.equal(r.status, 200, r.text);
  return r.body.map((s) => s.id).sort();
}

const strip = (ms) => ms.map(({ role, content }) => ({ role, content }));

/** An export without what differs between two copies of one session: times. */
function timeless(doc) {
  const { exported_at, ...rest } = doc;
  assert.ok(exported_at);
  const { created_at, updated_at, ...session } = doc.session;
  return { ...rest, session, messages: doc.messages.map(({ created_at: _c, ...m }) => m) };
}

describe('session export, import and fork', () => {
  let fake, a, b, dirA, dirB;
  let sid; // a session of server a with a tool call in its history
  before(async () => {
    fake = await startFake();
    dirA = realpathSync(tempDir('goosed-transfer-a-'));
    dirB = realpathSync(tempDir('goosed-transfer-b-'));
    a = await startServer({ env: { GOOSE_PROVIDER: 'openai', OPENAI_HOST: fake.url, OPENAI_API_KEY: 'sk-transfer', GOOSE_MODE: 'auto' } });
    b = await startServer({
      env: { GOOSE_PROVIDER: 'openai', OPENAI_HOST: fake.url, OPENAI_API_KEY: 'sk-transfer', GOOSE_MODE: 'auto', GOOSE_ALLOWED_ROOTS: dirB },
    });
    sid = await newSession(a, dirA);
    await fake.script([
      { text: 'Let me look.', tool_calls: [{ id: 'call_1', name: 'developer__shell', arguments: { command: 'echo transfer-ok' } }] },
      { text: 'It said transfer-ok.' },
      { text: 'Second answer.' },
    ]);
    let r = await post(a, `/api/sessions/${sid}/messages`, { content: 'run echo' });
    assert.equal(r.status, 200, r.text);
    r = await post(a, `/api/sessions/${sid}/messages`, { content: 'and again' });
    assert.equal(r.status, 200, r.text);
  });
  after(async () => {
    try {
      await stopAndCheck(a);
      await stopAndCheck(b);
    } finally {
      await fake.stop();
    }
  });

  it('an export is one document of the goosed-session format with every message in order', async () => {
    const r = await get(a, `/api/sessions/${sid}/export`);
    assert.equal(r.status, 200, r.text);
    const doc = r.body;
    assert.equal(doc.format, 'goosed-session');
    assert.equal(doc.version, 1);
    assert.equal(doc.session.name, 'transfer');
    assert.equal(doc.session.working_dir, dirA);
    const orig = await messages(a, sid);
    assert.ok(orig.length >= 5, `expected a tool call and two answers, got ${orig.length} messages`);
    assert.equal(doc.session.message_count, orig.length);
    assert.deepEqual(strip(doc.messages), strip(orig));
    assert.ok(!r.text.includes(sid), 'the export names the session id');
    for (const m of orig) assert.ok(!r.text.includes(m.id), 'the export names a message id');
  });

  it('round trip: an import on another server has the same messages, and its export equals the original', async () => {
    const orig = (await get(a, `/api/sessions/${sid}/export`)).body;
    const before = await sessionIds(b);
    // the exported directory does not exist on b's allowed roots: refused, naming it
    assertError(await post(b, '/api/sessions/import', orig), 400, 'bad_request', /session\.working_dir.*working_directory/);
    assert.deepEqual(await sessionIds(b), before);
    const r = await post(b, '/api/sessions/import', { ...orig, working_directory: dirB });
    assert.equal(r.status, 201, r.text);
    assert.match(r.body.id, UUID_V7);
    assert.notEqual(r.body.id, sid);
    assert.equal(r.headers.get('location'), `/api/sessions/${r.body.id}`);
    assert.equal(r.body.working_dir, dirB);
    assert.equal(r.body.message_count, orig.messages.length);
    assert.equal(r.body.name, 'transfer');
    const got = await messages(b, r.body.id);
    assert.deepEqual(strip(got), strip(orig.messages));
    const again = (await get(b, `/api/sessions/${r.body.id}/export`)).body;
    assert.deepEqual(timeless(again), timeless({ ...orig, session: { ...orig.session, working_dir: dirB } }));
    // the same document imported twice makes two sessions
    const r2 = await post(b, `/api/sessions/import?working_directory=${encodeURIComponent(dirB)}`, orig);
    assert.equal(r2.status, 201, r2.text);
    assert.notEqual(r2.body.id, r.body.id);
  });

  it('a conversation goes on after an import (the provider is sent the whole, well-formed history)', async () => {
    const orig = (await get(a, `/api/sessions/${sid}/export`)).body;
    const r = await post(b, '/api/sessions/import', { ...orig, working_directory: dirB });
    assert.equal(r.status, 201, r.text);
    await fake.clearRequests();
    const refusedBefore = (await fake.stats()).refused ?? 0;
    await fake.script([{ text: 'Continued after the move.' }]);
    const m = await post(b, `/api/sessions/${r.body.id}/messages`, { content: 'still there?' });
    assert.equal(m.status, 200, m.text);
    assert.equal(m.body.content, 'Continued after the move.');
    assert.equal((await fake.stats()).refused ?? 0, refusedBefore);
    const sent = (await fake.requests('openai')).at(-1).body.messages;
    const texts = JSON.stringify(sent);
    for (const t of ['run echo', 'It said transfer-ok.', 'Second answer.', 'still there?']) assert.ok(texts.includes(t), t);
    assert.ok(sent.some((x) => x.role === 'tool'), 'the tool result was sent');
    const after = await messages(b, r.body.id);
    assert.equal(after.length, orig.messages.length + 2);
  });

  it('a reply with nothing in it (stored with content []) survives export, import and fork, and the conversation goes on', async () => {
    const id = await newSession(a, dirA);
    await fake.script([{ text: '' }, { thinking: 'only thinking', signature: '' }]);
    for (const said of ['say nothing', 'think only']) {
      const r = await post(a, `/api/sessions/${id}/messages`, { content: said });
      assert.equal(r.status, 200, r.text);
    }
    const orig = (await get(a, `/api/sessions/${id}/export`)).body;
    assert.deepEqual(orig.messages.map((m) => [m.role, m.content.map((c) => c.type)]),
      [['user', ['text']], ['assistant', []], ['user', ['text']], ['assistant', ['thinking']]]);
    const r = await post(b, '/api/sessions/import', { ...orig, working_directory: dirB });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.message_count, 4);
    assert.deepEqual(strip(await messages(b, r.body.id)), strip(orig.messages));
    const again = (await get(b, `/api/sessions/${r.body.id}/export`)).body;
    assert.deepEqual(timeless(again), timeless({ ...orig, session: { ...orig.session, working_dir: dirB } }));
    const f = await post(a, `/api/sessions/${id}/fork`, {});
    assert.equal(f.status, 201, f.text);
    assert.equal(f.body.message_count, 4, 'a fork keeps the empty reply');
    assert.deepEqual(strip(await messages(a, f.body.id)), strip(orig.messages));
    const cut = await post(a, `/api/sessions/${id}/fork`, { message_id: (await messages(a, id))[1].id });
    assert.equal(cut.status, 201, cut.text);
    assert.deepEqual(strip(await messages(a, cut.body.id)), strip(orig.messages.slice(0, 2)), 'a fork cut at the empty reply ends with it');
    const refusedBefore = (await fake.stats()).refused ?? 0;
    await fake.script([{ text: 'Here now.' }]);
    const m = await post(b, `/api/sessions/${r.body.id}/messages`, { content: 'anything?' });
    assert.equal(m.status, 200, m.text);
    assert.equal(m.body.content, 'Here now.');
    assert.equal((await fake.stats()).refused ?? 0, refusedBefore);
  });

  it('an import and a fork keep when each message was said (its created_at), in either format', async () => {
    const when = ['2024-02-29T12:34:56Z', '2024-02-29T12:35:01Z'];
    const r = await post(b, '/api/sessions/import', {
      format: 'goosed-session', version: 1, working_directory: dirB, session: { name: 'dated', working_dir: dirB },
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'when?' }], created_at: when[0] },
        { role: 'assistant', content: [{ type: 'text', text: 'then.' }], created_at: '2024-02-29T13:35:01+01:00' },
      ],
    });
    assert.equal(r.status, 201, r.text);
    const got = await messages(b, r.body.id);
    assert.deepEqual(got.map((m) => m.created_at), when);
    assert.deepEqual((await get(b, `/api/sessions/${r.body.id}/export`)).body.messages.map((m) => m.created_at), when);
    const f = await post(b, `/api/sessions/${r.body.id}/fork`, {});
    assert.equal(f.status, 201, f.text);
    assert.deepEqual((await messages(b, f.body.id)).map((m) => m.created_at), when, 'a fork keeps them too');
    // the last second RFC 3339 can show, however its offset writes it
    const last = await post(b, '/api/sessions/import', {
      format: 'goosed-session', version: 1, working_directory: dirB, session: { name: 'late', working_dir: dirB },
      messages: [{ role: 'user', content: [{ type: 'text', text: 'late' }], created_at: '9999-12-31T22:59:59-01:00' }],
    });
    assert.equal(last.status, 201, last.text);
    assert.equal((await messages(b, last.body.id))[0].created_at, '9999-12-31T23:59:59Z');
    // without one, a message takes the time of the import
    const now = await post(b, '/api/sessions/import', { format: 'goosed-session', version: 1, working_directory: dirB, session: { name: 'undated', working_dir: dirB }, messages: [{ role: 'user', content: [{ type: 'text', text: 'now' }] }] });
    const t = Date.parse((await messages(b, now.body.id))[0].created_at);
    assert.ok(Math.abs(t - Date.now()) < 120_000, 'the import\'s time');
  });

  it('a fork cut at a message that asks for tools, and an import with an answer to no call, are stored as conversations the providers take', async () => {
    const orig = await messages(a, sid);
    const asks = orig.findIndex((m) => m.role === 'assistant' && m.content.some((c) => c.type === 'tool_request'));
    assert.ok(asks >= 0);
    const call = orig[asks].content.find((c) => c.type === 'tool_request');
    const f = await post(a, `/api/sessions/${sid}/fork`, { message_id: orig[asks].id });
    assert.equal(f.status, 201, f.text);
    const forked = await messages(a, f.body.id);
    assert.equal(forked.length, asks + 2, 'the request, then its answer');
    assert.equal(f.body.message_count, asks + 2);
    const answer = forked.at(-1);
    assert.equal(answer.role, 'user');
    assert.deepEqual([answer.content[0].type, answer.content[0].id, answer.content[0].is_error], ['tool_response', call.id, true]);
    assert.match(JSON.stringify(answer.content[0].content), /did not finish/);

    const r = await post(b, '/api/sessions/import', {
      format: 'goosed-session', version: 1, working_directory: dirB, session: { name: 'odd', working_dir: dirB },
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'go' }] },
        { role: 'user', content: [{ type: 'tool_response', id: 'nobody', name: 'x__y', content: [{ type: 'text', text: 'stray' }], is_error: false }] },
        { role: 'assistant', content: [{ type: 'tool_request', id: 'c9', name: 'developer__shell', arguments: { command: 'ls' } }] },
      ],
    });
    assert.equal(r.status, 201, r.text);
    const got = await messages(b, r.body.id);
    assert.deepEqual(got.map((m) => [m.role, m.content.map((c) => c.type).join()]),
      [['user', 'text'], ['assistant', 'tool_request'], ['user', 'tool_response']], 'the stray answer dropped, the open call answered');
    assert.equal(got[2].content[0].id, 'c9');
    assert.equal(r.body.message_count, 3);
    await fake.clearRequests();
    const refusedBefore = (await fake.stats()).refused ?? 0;
    await fake.script([{ text: 'fine' }]);
    assert.equal((await post(b, `/api/sessions/${r.body.id}/messages`, { content: 'and now?' })).status, 200);
    assert.equal((await fake.stats()).refused ?? 0, refusedBefore, 'the provider takes it');
  });

  it('fork: up to and including a message, or all of them; an unknown message is 404', async () => {
    const orig = await messages(a, sid);
    const cut = orig.findIndex((m) => m.role === 'assistant' && m.content.some((c) => c.type === 'text' && c.text === 'It said transfer-ok.'));
    assert.ok(cut > 0);
    let r = await post(a, `/api/sessions/${sid}/fork`, { message_id: orig[cut].id });
    assert.equal(r.status, 201, r.text);
    assert.notEqual(r.body.id, sid);
    assert.equal(r.body.working_dir, dirA);
    assert.equal(r.body.message_count, cut + 1);
    assert.deepEqual(strip(await messages(a, r.body.id)), strip(orig.slice(0, cut + 1)));
    // the source is untouched
    assert.deepEqual(await messages(a, sid), orig);
    r = await post(a, `/api/sessions/${sid}/fork`, undefined);
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(strip(await messages(a, r.body.id)), strip(orig));
    r = await post(a, `/api/sessions/${sid}/fork`, { name: 'the copy' });
    assert.equal(r.body.name, 'the copy');
    const before = await sessionIds(a);
    assertError(await post(a, `/api/sessions/${sid}/fork`, { message_id: crypto.randomUUID() }), 404, 'not_found', /message_id: message '.*' not found/);
    assertError(await post(a, `/api/sessions/${sid}/fork`, { message_id: 3 }), 400, 'bad_request', /message_id/);
    assertError(await post(a, `/api/sessions/${crypto.randomUUID()}/fork`, {}), 404, 'not_found', /session/);
    assert.deepEqual(await sessionIds(a), before);
  });

  it('no secret of a session extension appears in its export', async () => {
    const s = await newSession(a, dirA);
    const hsecret = `Bearer hdr-${crypto.randomBytes(12).toString('hex')}`;
    const esecret = `env-${crypto.randomBytes(12).toString('hex')}`;
    let r = await post(a, `/api/sessions/${s}/extensions`, {
      name: 'remote', config: { type: 'streamable_http', uri: 'http://127.0.0.1:9/mcp', headers: { Authorization: hsecret } },
    });
    assert.equal(r.status, 200, r.text);
    r = await post(a, `/api/sessions/${s}/extensions`, { name: 'local', config: { type: 'stdio', cmd: 'true', envs: { API_TOKEN: esecret } } });
    assert.equal(r.status, 200, r.text);
    r = await get(a, `/api/sessions/${s}/export`);
    assert.equal(r.status, 200, r.text);
    for (const v of [hsecret, esecret, 'hdr-', 'sk-transfer']) assert.ok(!r.text.includes(v), `${v.slice(0, 8)}… is in the export`);
    const add = r.body.session.settings.extensions.add;
    assert.deepEqual(add.remote.headers, { Authorization: '***' });
    assert.deepEqual(add.local.envs, { API_TOKEN: '***' });
    assert.ok(!('user_id' in r.body.session));
  });

  it("nor the secrets an extension's URI or arguments hold: a password, query values, --token=, --api-key VALUE", async () => {
    const s = await newSession(a, dirA);
    const secrets = ['pw-7a1c9e', 'qv-33d0aa', 'tok-5be2f0', 'ak-91c4d7'];
    let r = await post(a, `/api/sessions/${s}/extensions`, {
      name: 'remote', config: { type: 'streamable_http', uri: `http://alice:${secrets[0]}@127.0.0.1:9/mcp?api_key=${secrets[1]}&x=1#frag` },
    });
    assert.equal(r.status, 200, r.text);
    r = await post(a, `/api/sessions/${s}/extensions`, {
      name: 'local', config: { type: 'stdio', cmd: 'true', args: ['--verbose', `--token=${secrets[2]}`, '--api-key', secrets[3], 'plain'] },
    });
    assert.equal(r.status, 200, r.text);
    r = await get(a, `/api/sessions/${s}/export`);
    assert.equal(r.status, 200, r.text);
    for (const v of secrets) assert.ok(!r.text.includes(v), `${v} is in the export`);
    const add = r.body.session.settings.extensions.add;
    assert.equal(add.remote.uri, 'http://alice:***@127.0.0.1:9/mcp?api_key=***&x=***#frag');
    assert.deepEqual(add.local.args, ['--verbose', '--token=***', '--api-key', '***', 'plain']);
  });

  it('malformed documents are refused with a message naming what is wrong, and nothing is made', async () => {
    const good = (await get(a, `/api/sessions/${sid}/export`)).body;
    const doc = (over) => ({ ...good, working_directory: dirB, ...over });
    const before = await sessionIds(b);
    const cases = [
      [doc({ format: 'other' }), 400, /format/],
      [doc({ version: 2 }), 400, /version/],
      [doc({ session: 'x' }), 400, /session/],
      [doc({ messages: {} }), 400, /messages: must be an array/],
      [doc({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }], created_at: 'yesterday' }] }), 400, /messages\[0\]\.created_at: must be an RFC 3339 time/],
      [doc({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }], created_at: '2026-02-30T10:00:00Z' }] }), 400, /messages\[0\]\.created_at/],
      [doc({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }], created_at: 1700000000 }] }), 400, /messages\[0\]\.created_at/],
      // year 10000 in UTC, and before the epoch: no RFC 3339 time of goosed's could show them
      [doc({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }], created_at: '9999-12-31T23:59:59-23:59' }] }), 400,
        /^messages\[0\]\.created_at: "9999-12-31T23:59:59-23:59" is out of range: must be from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z in UTC$/],
      [doc({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }], created_at: '1969-12-31T23:59:59Z' }] }), 400, /messages\[0\]\.created_at: .* is out of range/],
      [doc({ messages: [{ role: 'user', content: [] }] }), 400, /^messages\[0\]\.content: must be a non-empty array of content items$/],
      [doc({ messages: [{ role: 'assistant', content: {} }] }), 400, /^messages\[0\]\.content: must be an array of content items$/],
      [doc({ messages: [{ role: 'system', content: [{ type: 'text', text: 'x' }] }] }), 400, /messages\[0\]\.role/],
      [doc({ messages: [...good.messages, { role: 'user', content: 'plain' }] }), 400, new RegExp(`messages\\[${good.messages.length}\\]\\.content`)],
      [doc({ messages: [{ role: 'user', content: [{ type: 'tool_request', id: 'c', name: 'n', arguments: {} }] }] }), 400, /messages\[0\]\.content\[0\]\.type: tool_request is not allowed in a user message/],
      [doc({ messages: [{ role: 'assistant', content: [{ type: 'text', text: 7 }] }] }), 400, /messages\[0\]\.content\[0\]\.text: must be a string/],
      [doc({ messages: [{ role: 'assistant', content: [{ type: 'video' }] }] }), 400, /messages\[0\]\.content\[0\]\.type/],
      [doc({ messages: [{ role: 'user', content: [{ type: 'text', text: 'go' }] },
        { role: 'assistant', content: [{ type: 'tool_request', id: 'c1', name: 'n', arguments: {} }, { type: 'tool_request', id: 'c1', name: 'n', arguments: {} }] }] }),
      400, /messages\[1\]\.content\[1\]\.id: "c1" is the id of content\[0\] too; each tool_request of a message needs an id of its own/],
      [doc({ messages: [{ role: 'user', content: [{ type: 'tool_response', id: 'c1', content: [] }, { type: 'tool_response', id: 'c1', content: [] }] }] }),
        400, /messages\[0\]\.content\[1\]\.id: "c1" is the id of content\[0\] too/],
      [doc({ messages: [{ role: 'assistant', content: [{ type: 'tool_request', id: '', name: 'n', arguments: {} }] }] }), 400, /messages\[0\]\.content\[0\]\.id: must not be empty/],
      [doc({ messages: Array.from({ length: 10001 }, () => ({ role: 'user', content: [{ type: 'text', text: 'x' }] })) }), 413, /messages: 10001 messages, more than the 10000/],
      [doc({ session: { ...good.session, name: '' }, name: 'x'.repeat(300) }), 400, /name/],
      [{ ...good, working_directory: path.join(dirB, 'missing') }, 400, /working_directory: .*no such directory/],
      [{ ...good, working_directory: dirA }, 400, /working_directory: .*allowed_roots/],
    ];
    for (const [body, status, re] of cases) {
      const r = await post(b, '/api/sessions/import', body);
      assert.equal(r.status, status, `${re}: ${r.text}`);
      assert.match(r.body.error ?? r.body.message ?? r.text, re);
    }
    assertError(await post(b, '/api/sessions/import', undefined), 400, 'bad_request', /session document/);
    assert.deepEqual(await sessionIds(b), before);
  });

  it('the history is served from the stored text: the same JSON as the export reads through a parser, for every kind of item, whole or a page at a time', async () => {
    const weird = 'quote " backslash \\ slash / tab \t nl \n ctl \u0001 \u001f del \u007f é 中 😀 \u2028';
    const doc = {
      format: 'goosed-session', version: 1,
      session: { name: 'every item', working_dir: dirB },
      messages: [
        { role: 'user', content: [{ type: 'text', text: weird }, { type: 'text', text: '' }] },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'hmm ' + weird, signature: 'sig==' },
            { type: 'text', text: 'calling' },
            { type: 'tool_request', id: 'call_1', name: 'developer__shell', arguments: { command: 'ls', n: 1.5e-7, big: 12345678901234, neg: -0.25, deep: { a: [1, [2, [3, { b: null, t: true, f: false }]]] }, empty: {}, list: [] } },
          ],
        },
        {
          role: 'user',
          content: [{ type: 'tool_response', id: 'call_1', name: 'developer__shell', is_error: true, content: [{ type: 'text', text: weird }, { type: 'image', mimeType: 'image/png', data: 'iVBORw0KGgo=' }] }],
        },
        { role: 'assistant', content: [{ type: 'text', text: 'done' }] },
      ],
    };
    const r = await post(b, '/api/sessions/import', doc);
    assert.equal(r.status, 201, r.text);
    const id = r.body.id;
    const whole = await get(b, `/api/sessions/${id}/messages`);
    assert.equal(whole.status, 200, whole.text);
    assert.equal(whole.headers.get('content-type'), 'application/json; charset=utf-8');
    const exported = (await get(b, `/api/sessions/${id}/export`)).body.messages;
    assert.equal(whole.body.length, 4);
    assert.deepEqual(whole.body.map(({ role, content, created_at }) => ({ role, content, created_at })), exported);
    assert.deepEqual(strip(whole.body), doc.messages);
    for (const m of whole.body) assert.match(m.id, UUID_V7);
    // a page at a time, following next_cursor, while messages are appended between pages
    for (const limit of [1, 3]) {
      const seen = [];
      let cursor = '';
      for (;;) {
        const p = await get(b, `/api/sessions/${id}/messages?limit=${limit}&cursor=${cursor}`);
        assert.equal(p.status, 200, p.text);
        seen.push(...p.body.messages);
        if (p.body.next_cursor === null) {
          assert.equal(p.headers.get('link'), null);
          break;
        }
        assert.equal(p.body.messages.length, limit);
        assert.equal(p.headers.get('link'), `</api/sessions/${id}/messages?limit=${limit}&cursor=${p.body.next_cursor}>; rel="next"`);
        cursor = p.body.next_cursor;
      }
      const now = (await get(b, `/api/sessions/${id}/messages`)).body;
      assert.deepEqual(seen, now, `pages of ${limit}: every message once, in order`);
    }
    const first = await get(b, `/api/sessions/${id}/messages?limit=2`);
    assert.deepEqual(first.body, whole.body.slice(0, 2), '?limit= alone: the first page, as an array');
    assert.match(first.headers.get('link'), /cursor=\d+>; rel="next"$/);
    assertError(await get(b, `/api/sessions/${id}/messages?cursor=x1`), 400, 'bad_request', /cursor/);
    assertError(await get(b, `/api/sessions/${id}/messages?limit=0`), 400, 'bad_request', /limit/);
    assert.equal((await get(b, `/api/sessions/${UUID_NIL}/messages?cursor=`)).status, 404);
  });

  it("what the real Goose's `goose session export` writes is imported", async () => {
    const goose = {
      id: '20250101_1', name: 'from goose', working_dir: dirB, user_set_name: true, session_type: 'user',
      created_at: '2025-01-01T10:00:00Z', updated_at: '2025-01-01T10:05:00Z', extension_data: {},
      total_tokens: 30, input_tokens: 20, output_tokens: 10, accumulated_total_tokens: 30,
      accumulated_input_tokens: 20, accumulated_output_tokens: 10, schedule_id: null, recipe: null,
      user_recipe_values: null, message_count: 4,
      conversation: [
        { id: 'm1', role: 'user', created: 1735725600, content: [{ type: 'text', text: 'list files' }], metadata: { userVisible: true, agentVisible: true } },
        {
          id: 'm2', role: 'assistant', created: 1735725601, metadata: { userVisible: true, agentVisible: true },
          content: [
            { type: 'text', text: 'Listing.' },
            { type: 'toolRequest', id: 'toolu_1', toolCall: { status: 'success', value: { name: 'developer__shell', arguments: { command: 'ls' } } } },
          ],
        },
        {
          id: 'm3', role: 'user', created: 1735725602, metadata: { userVisible: true, agentVisible: true },
          content: [{ type: 'toolResponse', id: 'toolu_1', toolResult: { status: 'success', value: [{ type: 'text', text: 'a.txt' }] } }],
        },
        { id: 'm4', role: 'assistant', created: 1735725603, content: [{ type: 'text', text: 'There is a.txt.' }], metadata: { userVisible: true, agentVisible: true } },
      ],
    };
    const r = await post(b, '/api/sessions/import', goose);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.name, 'from goose');
    assert.equal(r.body.imported_from, 'goose');
    assert.deepEqual((await messages(b, r.body.id)).map((m) => m.created_at),
      ['2025-01-01T10:00:00Z', '2025-01-01T10:00:01Z', '2025-01-01T10:00:02Z', '2025-01-01T10:00:03Z'], 'the times of the Goose export');
    assert.equal(r.body.input_tokens, 20);
    const got = strip(await messages(b, r.body.id));
    assert.deepEqual(got, [
      { role: 'user', content: [{ type: 'text', text: 'list files' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'Listing.' }, { type: 'tool_request', id: 'toolu_1', name: 'developer__shell', arguments: { command: 'ls' } }] },
      { role: 'user', content: [{ type: 'tool_response', id: 'toolu_1', name: 'developer__shell', content: [{ type: 'text', text: 'a.txt' }], is_error: false }] },
      { role: 'assistant', content: [{ type: 'text', text: 'There is a.txt.' }] },
    ]);
    await fake.script([{ text: 'Goose history goes on.' }]);
    const m = await post(b, `/api/sessions/${r.body.id}/messages`, { content: 'and now?' });
    assert.equal(m.status, 200, m.text);
    assert.equal(m.body.content, 'Goose history goes on.');
    assertError(await post(b, '/api/sessions/import', { ...goose, conversation: [{ role: 'tool', content: [] }] }), 400, 'bad_request', /conversation\[0\]\.role/);
  });
});

describe('imports that would break the session list', () => {
  let srv, dir;
  before(async () => {
    dir = realpathSync(tempDir('goosed-transfer-odd-'));
    srv = await startServer();
  });
  after(async () => {
    await stopAndCheck(srv);
  });
  const doc = (over = {}) => ({
    format: 'goosed-session', version: 1, working_directory: dir,
    session: { name: 'tokens', working_dir: dir, input_tokens: 1, output_tokens: 1, ...over },
    messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
  });
  const raw = (text) => request(srv, 'POST', '/api/sessions/import', { body: text, headers: { 'Content-Type': 'application/json' } });

  it("token counts past any real use: 400 in goosed's format, capped from a Goose export; the list still answers", async () => {
    const before = await sessionIds(srv);
    const big = JSON.stringify(doc()).replace('"input_tokens":1', '"input_tokens":9223372036854775807');
    assert.match(big, /9223372036854775807/);
    assertError(await raw(big), 400, 'bad_request', /session\.input_tokens, session\.output_tokens: must be 0\.\.1000000000000000/);
    assertError(await post(srv, '/api/sessions/import', doc({ output_tokens: 1e15 + 1 })), 400, 'bad_request', /must be 0\.\./);
    assert.deepEqual(await sessionIds(srv), before);
    const goose = JSON.stringify({
      name: 'from goose', working_dir: dir, accumulated_input_tokens: 1, accumulated_output_tokens: 1,
      conversation: [{ id: 'm1', role: 'user', created: 1735725600, content: [{ type: 'text', text: 'hi' }] }],
    }).replace('"accumulated_input_tokens":1', '"accumulated_input_tokens":9223372036854775807')
      .replace('"accumulated_output_tokens":1', '"accumulated_output_tokens":9223372036854775807');
    const r = await raw(goose);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.input_tokens, 1e15);
    assert.equal(r.body.total_tokens, 2e15);
    const list = await get(srv, '/api/sessions');
    assert.equal(list.status, 200, list.text);
    assert.ok(list.body.some((x) => x.id === r.body.id));
    assert.equal((await get(srv, `/api/sessions/${r.body.id}`)).status, 200);
  });

  it('a working directory whose real path is not UTF-8 is refused, nothing is stored, and the list still answers', async () => {
    const before = await sessionIds(srv);
    const odd = Buffer.concat([Buffer.from(`${dir}/d`), Buffer.from([0xff]), Buffer.from('x')]);
    mkdirSync(odd);
    const link = path.join(dir, 'link-to-odd');
    symlinkSync(odd, link);
    assertError(await post(srv, '/api/sessions', { working_directory: link }), 400, 'bad_request', /working_directory: .*link-to-odd: its real path is not UTF-8/);
    assertError(await raw(JSON.stringify({ ...doc(), working_directory: link })), 400, 'bad_request', /its real path is not UTF-8/);
    assert.deepEqual(await sessionIds(srv), before);
    assert.equal((await get(srv, '/api/sessions')).status, 200);
  });
});

describe('another user\'s session cannot be exported or forked', () => {
  let srv, home, dir, alice, bob;
  before(async () => {
    home = tempDir();
    dir = realpathSync(tempDir('goosed-transfer-users-'));
    mkdirSync(dir, { recursive: true });
    alice = await addUser(home, 'alice');
    bob = await addUser(home, 'bob');
    srv = await startServer({ home, env: { GOOSE_MAX_SESSIONS_PER_USER: 2, GOOSE_ALLOWED_ROOTS: dir } });
  });
  after(async () => {
    await stopAndCheck(srv);
  });

  it('export and fork of a session of alice are 404 to bob; imports and forks belong to the caller', async () => {
    const s = await newSession(srv, dir, as(alice));
    assertError(await get(srv, `/api/sessions/${s}/export`, as(bob)), 404, 'not_found', /session/);
    assertError(await post(srv, `/api/sessions/${s}/fork`, {}, as(bob)), 404, 'not_found', /session/);
    const bobsBefore = await sessionIds(srv, as(bob));
    const doc = (await get(srv, `/api/sessions/${s}/export`, as(alice))).body;
    assert.equal(doc.format, 'goosed-session');
    const imp = await post(srv, '/api/sessions/import', doc, as(bob));
    assert.equal(imp.status, 201, imp.text);
    assert.deepEqual(await sessionIds(srv, as(bob)), [...bobsBefore, imp.body.id].sort());
    assertError(await get(srv, `/api/sessions/${imp.body.id}/export`, as(alice)), 404, 'not_found', /session/);
    const f = await post(srv, `/api/sessions/${s}/fork`, {}, as(alice));
    assert.equal(f.status, 201, f.text);
    assert.ok((await sessionIds(srv, as(alice))).includes(f.body.id));
    assert.ok(!(await sessionIds(srv, as(bob))).includes(f.body.id));
    assertError(await post(srv, '/api/sessions/import', doc), 401, 'unauthorized', /authentication/);
    // both count against max_sessions_per_user (2 here): alice has two, bob one
    const aliceBefore = await sessionIds(srv, as(alice));
    assertError(await post(srv, `/api/sessions/${s}/fork`, {}, as(alice)), 429, 'too_many_sessions', /max_sessions_per_user/);
    assert.deepEqual(await sessionIds(srv, as(alice)), aliceBefore);
    assert.equal((await post(srv, '/api/sessions/import', doc, as(bob))).status, 201);
    assertError(await post(srv, '/api/sessions/import', doc, as(bob)), 429, 'too_many_sessions', /max_sessions_per_user/);
  });
});
