// A session's own provider and model (PATCH /api/sessions/{id} {"provider", "model"}): its replies
// go to that provider with that model, other sessions keep the server's, null goes back, a
// provider that cannot be used is refused when it is chosen, and the choice survives a restart.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAndCheck, tempDir, REPO } from './lib/server.mjs';
import { withMarker, comm } from './lib/proc.mjs';
import { request, post, assertError } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';

const OA = 'sk-session-provider-openai';
const AN = 'sk-ant-session-provider';

const patch = (srv, id, body) => request(srv, 'PATCH', `/api/sessions/${id}`, { json: body });

describe("a session's own provider and model", () => {
  let fake, home, srv;
  const env = () => ({
    GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-default', OPENAI_HOST: fake.url, OPENAI_API_KEY: OA,
    ANTHROPIC_HOST: fake.url, ANTHROPIC_API_KEY: AN,
  });
  before(async () => {
    fake = await startFake({ keys: { openai: OA, anthropic: AN } });
    home = tempDir();
    srv = await startServer({ home, env: env() });
  });
  after(async () => {
    try { await stopAndCheck(srv); } finally { await fake.stop(); }
  });

  async function newSession() {
    const r = await post(srv, '/api/sessions', { working_directory: tempDir('goosed-sp-cwd-') });
    assert.equal(r.status, 201, r.text);
    return r.body.id;
  }
  /** One reply in session id; resolves with the provider request it made ({provider, body}). */
  async function reply(id) {
    await fake.clearRequests();
    await fake.script([{ text: 'ok' }]);
    const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'hi' });
    assert.equal(r.status, 200, r.text);
    const reqs = await fake.requests();
    assert.equal(reqs.length, 1);
    return reqs[0];
  }

  it("an extension's sampling request between replies is served by the session's own provider, also once changed with no reply since", async () => {
    const dir = tempDir('goosed-sp-cwd-');
    const r0 = await post(srv, '/api/sessions', { working_directory: dir });
    assert.equal(r0.status, 201, r0.text);
    const id = r0.body.id;
    assert.equal((await patch(srv, id, { provider: 'anthropic', model: 'claude-sampler' })).status, 200);
    const m = `sp-sampler-${process.pid}-${Date.now()}`;
    const add = await post(srv, `/api/sessions/${id}/extensions`, { name: 'sampler', config: { type: 'stdio', cmd: process.execPath, args: [path.join(REPO, 'tests/fakes/mcp/server.mjs'), 'samplelater', m], timeout: 30 } });
    assert.equal(add.status, 200, add.text);
    await reply(id); // starts the server; the reply is over when it returns
    const server = withMarker(m).find((p) => comm(p) !== 'bwrap');
    assert.ok(server, 'the server runs');
    await fake.clearRequests();
    await fake.script([{ text: 'sampled by the session provider' }]);
    process.kill(Number(server), 'SIGUSR1'); // it asks for a completion now, with no reply running
    const file = path.join(dir, 'sampled.json');
    for (const end = Date.now() + 10_000; !existsSync(file) || !readFileSync(file, 'utf8');) {
      assert.ok(Date.now() < end, 'the server got no answer');
      await new Promise((res) => setTimeout(res, 20));
    }
    const answer = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(answer.result?.content?.text, 'sampled by the session provider', JSON.stringify(answer));
    const reqs = await fake.requests();
    assert.deepEqual(reqs.map((q) => [q.provider, q.body.model]), [['anthropic', 'claude-sampler']]);
    assert.match(JSON.stringify(reqs[0].body.messages), /a sample between replies/);

    // changed with no reply since: the next sample goes where the session now points
    assert.equal((await patch(srv, id, { provider: 'openai', model: 'gpt-sampler-2' })).status, 200);
    unlinkSync(file);
    await fake.clearRequests();
    await fake.script([{ text: 'sampled after the change' }]);
    process.kill(Number(server), 'SIGUSR1');
    for (const end = Date.now() + 10_000; !existsSync(file) || !readFileSync(file, 'utf8');) {
      assert.ok(Date.now() < end, 'the server got no second answer');
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).result?.content?.text, 'sampled after the change');
    assert.deepEqual((await fake.requests()).map((q) => [q.provider, q.body.model]), [['openai', 'gpt-sampler-2']]);
  });

  it('a model of its own, another provider, back to the server\'s with null; other sessions untouched', async () => {
    const a = await newSession();
    const b = await newSession();
    const plain = await newSession();
    let r = await patch(srv, a, { model: 'gpt-of-session-a' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.body.provider, r.body.model, r.body.effective_provider, r.body.effective_model],
      [null, 'gpt-of-session-a', 'openai', 'gpt-of-session-a']);
    r = await patch(srv, b, { provider: 'anthropic' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.provider, 'anthropic');
    assert.equal(r.body.effective_provider, 'anthropic');
    assert.match(r.body.effective_model, /^claude/);

    let q = await reply(a);
    assert.equal(q.provider, 'openai');
    assert.equal(q.body.model, 'gpt-of-session-a');
    q = await reply(b);
    assert.equal(q.provider, 'anthropic', 'the session\'s provider');
    assert.match(q.body.model, /^claude/, 'that provider\'s own default model, not the server\'s gpt-default');
    q = await reply(plain);
    assert.deepEqual([q.provider, q.body.model], ['openai', 'gpt-default']);

    r = await patch(srv, b, { provider: 'anthropic', model: 'claude-of-session-b' });
    assert.equal(r.status, 200, r.text);
    q = await reply(b);
    assert.deepEqual([q.provider, q.body.model], ['anthropic', 'claude-of-session-b']);

    r = await patch(srv, a, { model: null });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.body.model, r.body.effective_model], [null, 'gpt-default']);
    q = await reply(a);
    assert.equal(q.body.model, 'gpt-default');
  });

  it('a provider that cannot be used is refused when chosen, and nothing changes', async () => {
    const id = await newSession();
    assertError(await patch(srv, id, { provider: 'nosuch' }), 400, 'bad_request', /unknown provider 'nosuch'/);
    assertError(await patch(srv, id, { provider: 'google' }), 400, 'bad_request', /google needs an API key: set GOOGLE_API_KEY/);
    assertError(await patch(srv, id, { provider: 7 }), 400, 'bad_request', /provider: a provider's name, or null/);
    assertError(await patch(srv, id, { model: '' }), 400, 'bad_request', /model: a model's name/);
    assertError(await patch(srv, id, { model: 'bad\nname' }), 400, 'bad_request', /model/);
    assertError(await patch(srv, id, { model: 'm'.repeat(256) }), 400, 'bad_request', /1 to 255 printable bytes/);
    const longest = await patch(srv, id, { model: 'm'.repeat(255) });
    assert.equal(longest.status, 200, longest.text);
    assert.equal((await patch(srv, id, { model: null })).status, 200);
    assertError(await patch(srv, id, { temperature: 1 }), 400, 'bad_request', /temperature: unknown setting/);
    assertError(await patch(srv, id, {}), 400, 'bad_request', /one is required/);
    const q = await reply(id);
    assert.deepEqual([q.provider, q.body.model], ['openai', 'gpt-default']);
  });

  it('a server with no provider of its own: a session that chose one replies, the others are told none is configured', async () => {
    const noDefault = await startServer({ env: { OPENAI_HOST: fake.url, OPENAI_API_KEY: OA, ANTHROPIC_HOST: fake.url, ANTHROPIC_API_KEY: AN } });
    try {
      const mk = async () => (await post(noDefault, '/api/sessions', { working_directory: tempDir('goosed-sp-cwd-') })).body.id;
      const own = await mk();
      const none = await mk();
      const p = await patch(noDefault, own, { provider: 'anthropic' });
      assert.equal(p.status, 200, p.text);
      await fake.clearRequests();
      await fake.script([{ text: 'from its own provider' }]);
      const r = await post(noDefault, `/api/sessions/${own}/messages`, { content: 'hi' });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.content, 'from its own provider');
      assert.equal((await fake.requests())[0].provider, 'anthropic');
      assertError(await post(noDefault, `/api/sessions/${none}/messages`, { content: 'hi' }), 503, 'provider_not_configured', /no provider configured/);
      // a choice taken back while nothing else is configured: the reply says so, nothing is sent
      assert.equal((await patch(noDefault, own, { provider: null })).status, 200);
      await fake.clearRequests();
      assertError(await post(noDefault, `/api/sessions/${own}/messages`, { content: 'hi' }), 503, 'provider_not_configured', /no provider configured/);
      assert.equal((await fake.requests()).length, 0);
    } finally {
      await stopAndCheck(noDefault);
    }
  });

  it('the choice is kept with the session across a restart', async () => {
    const id = await newSession();
    assert.equal((await patch(srv, id, { provider: 'anthropic', model: 'claude-kept' })).status, 200);
    await stopAndCheck(srv);
    srv = await startServer({ home, env: env() });
    const q = await reply(id);
    assert.deepEqual([q.provider, q.body.model], ['anthropic', 'claude-kept']);
    // a key gone since: the reply says so (503 provider_not_configured), nothing is sent
    await stopAndCheck(srv);
    srv = await startServer({ home, env: { ...env(), ANTHROPIC_API_KEY: '' } });
    await fake.clearRequests();
    const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'hi' });
    assertError(r, 503, 'provider_not_configured', /anthropic needs an API key/);
    assert.equal((await fake.requests()).length, 0);
  });
});
