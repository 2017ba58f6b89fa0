// MCP resources and prompts: the platform extension's list_resources and read_resource, offered to
// the model only when an extension serves resources (server-everything over stdio does), and the
// API routes over the session's extensions, with their error cases (a hand-written server that
// answers errors and never answers one read).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer, stopAndCheck, tempDir, REPO } from './lib/server.mjs';
import { get, post, assertError } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';

const KEY = 'sk-mcp-resources-secret-01';
const EVERYTHING = path.join(REPO, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const FAKE_MCP = path.join(REPO, 'tests/fakes/mcp/server.mjs');
const DOC = 'demo://resource/static/document/architecture.md';

const env = (fake) => ({ GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY });

const configYaml = () => `extensions:
  developer:
    enabled: true
    name: developer
    type: builtin
  everything:
    enabled: true
    name: everything
    type: stdio
    cmd: ${process.execPath}
    args: [${EVERYTHING}, stdio]
    timeout: 30
  fakeres:
    enabled: false
    name: fakeres
    type: stdio
    cmd: ${process.execPath}
    args: [${FAKE_MCP}, resources]
    timeout: 1
`;

const call = (id, name, args) => ({ tool_calls: [{ id, name, arguments: args }] });

describe('MCP resources and prompts', () => {
  let fake, srv, dir;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    dir = tempDir('goosed-mcp-res-');
    srv = await startServer({ env: env(fake), configYaml: configYaml() });
  });
  after(async () => {
    try { await stopAndCheck(srv); } finally { await fake.stop(); }
  });

  async function newSession(extra = {}) {
    const r = await post(srv, '/api/sessions', { name: 'res', working_directory: dir, ...extra });
    assert.equal(r.status, 201, r.text);
    return r.body.id;
  }

  it('offers the platform tools and gives the model the resources it lists and reads', async () => {
    const sid = await newSession();
    await fake.script([
      call('l1', 'platform__list_resources', {}),
      call('r1', 'platform__read_resource', { uri: DOC, extension_name: 'everything' }),
      call('r2', 'platform__read_resource', { uri: 'demo://nope' }),
      { text: 'read' },
    ]);
    const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'read the docs' });
    assert.equal(r.status, 200, r.text);
    const reqs = await fake.requests('openai');
    const tools = reqs.at(-4).body.tools;
    const byName = Object.fromEntries(tools.map((t) => [t.function.name, t.function]));
    assert.ok(byName.platform__list_resources && byName.platform__read_resource, Object.keys(byName).join(','));
    assert.deepEqual(byName.platform__read_resource.parameters.required, ['uri']);
    assert.ok(byName.platform__read_resource.parameters.properties.extension_name);
    const toolMsgs = reqs.at(-1).body.messages.filter((m) => m.role === 'tool');
    const text = (m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content));
    const listed = JSON.parse(text(toolMsgs.find((m) => m.tool_call_id === 'l1')).replace(/^"|"$/g, '') || '[]');
    assert.ok(Array.isArray(listed) && listed.some((x) => x.extension === 'everything' && x.uri === DOC), text(toolMsgs[0]));
    assert.match(text(toolMsgs.find((m) => m.tool_call_id === 'r1')), /Architecture|architecture/);
    assert.match(text(toolMsgs.find((m) => m.tool_call_id === 'r2')), /demo:\/\/nope/);
  });

  it('does not offer the platform tools when no extension serves resources', async () => {
    const sid = await newSession({ extensions: [{ name: 'everything', enabled: false }] });
    await fake.script([{ text: 'hello' }]);
    assert.equal((await post(srv, `/api/sessions/${sid}/messages`, { content: 'hi' })).status, 200);
    const names = (await fake.requests('openai')).at(-1).body.tools.map((t) => t.function.name);
    assert.ok(names.includes('developer__shell'));
    assert.ok(!names.some((n) => n.startsWith('platform__')), names.join(','));
  });

  it('lists and reads resources through the API, starting the extensions', async () => {
    const sid = await newSession();
    const l = await get(srv, `/api/sessions/${sid}/resources`);
    assert.equal(l.status, 200, l.text);
    const doc = l.body.find((x) => x.uri === DOC);
    assert.equal(doc.extension, 'everything');
    assert.equal(doc.mimeType, 'text/markdown');
    const one = await get(srv, `/api/sessions/${sid}/resources?extension=everything`);
    assert.equal(one.body.length, l.body.length);
    const rd = await get(srv, `/api/sessions/${sid}/resources/read?extension=everything&uri=${encodeURIComponent(DOC)}`);
    assert.equal(rd.status, 200, rd.text);
    assert.equal(rd.body.contents[0].uri, DOC);
    assert.ok(rd.body.contents[0].text.length > 0);
    const any = await get(srv, `/api/sessions/${sid}/resources/read?uri=${encodeURIComponent(DOC)}`);
    assert.deepEqual(any.body, rd.body, 'found without naming the extension');
  });

  it('lists resource templates through the API, and a resource made from one is read', async () => {
    const sid = await newSession();
    const t = await get(srv, `/api/sessions/${sid}/resources/templates`);
    assert.equal(t.status, 200, t.text);
    const text = t.body.find((x) => x.uriTemplate === 'demo://resource/dynamic/text/{resourceId}');
    assert.ok(text, JSON.stringify(t.body));
    assert.equal(text.extension, 'everything');
    assert.equal(text.name, 'Dynamic Text Resource');
    assert.equal(text.mimeType, 'text/plain');
    assert.ok(t.body.some((x) => x.uriTemplate === 'demo://resource/dynamic/blob/{resourceId}'));
    const one = await get(srv, `/api/sessions/${sid}/resources/templates?extension=everything`);
    assert.deepEqual(one.body, t.body);
    const uri = text.uriTemplate.replace('{resourceId}', '7');
    const rd = await get(srv, `/api/sessions/${sid}/resources/read?extension=everything&uri=${encodeURIComponent(uri)}`);
    assert.equal(rd.status, 200, rd.text);
    assert.equal(rd.body.contents[0].uri, uri);
    assertError(await get(srv, `/api/sessions/${sid}/resources/templates?extension=nothing`), 404, 'not_found', /no extension named 'nothing'/);
  });

  it('lists and gets prompts through the API', async () => {
    const sid = await newSession();
    const l = await get(srv, `/api/sessions/${sid}/prompts`);
    assert.equal(l.status, 200, l.text);
    const args = l.body.find((p) => p.name === 'args-prompt');
    assert.equal(args.extension, 'everything');
    assert.ok(args.arguments.some((a) => a.name === 'city'));
    const g = await post(srv, `/api/sessions/${sid}/prompts/get`, { extension: 'everything', name: 'args-prompt', arguments: { city: 'Paris' } });
    assert.equal(g.status, 200, g.text);
    assert.match(g.body.messages[0].content.text, /Paris/);
    assertError(await post(srv, `/api/sessions/${sid}/prompts/get`, { extension: 'everything', name: 'no-such-prompt' }), 404, 'not_found');
    assertError(await post(srv, `/api/sessions/${sid}/prompts/get`, { extension: 'everything', name: 'x', arguments: { n: 1 } }), 400, 'bad_request');
    assertError(await post(srv, `/api/sessions/${sid}/prompts/get`, {}), 400, 'bad_request');
  });

  it('answers 404 for an unknown session, extension or resource, and 400 without a uri', async () => {
    const sid = await newSession();
    assertError(await get(srv, '/api/sessions/00000000-0000-4000-8000-000000000000/resources'), 404, 'not_found');
    assertError(await get(srv, '/api/sessions/00000000-0000-4000-8000-000000000000/prompts'), 404, 'not_found');
    assertError(await get(srv, `/api/sessions/${sid}/resources?extension=nope`), 404, 'not_found', /nope/);
    assertError(await get(srv, `/api/sessions/${sid}/resources?extension=developer`), 404, 'not_found', /no resources/);
    assertError(await get(srv, `/api/sessions/${sid}/resources/read?extension=everything&uri=demo://nope`), 404, 'not_found');
    assertError(await get(srv, `/api/sessions/${sid}/resources/read?uri=demo://nope`), 404, 'not_found');
    assertError(await get(srv, `/api/sessions/${sid}/resources/read?extension=everything`), 400, 'bad_request');
  });

  it('answers 502 when the server answers an error and 504 when it does not answer', async () => {
    const sid = await newSession({ extensions: [{ name: 'fakeres', config: { type: 'stdio', cmd: process.execPath, args: [FAKE_MCP, 'resources'], timeout: 1 } }] });
    const l = await get(srv, `/api/sessions/${sid}/resources?extension=fakeres`);
    assert.equal(l.status, 200, l.text);
    assert.deepEqual(l.body.map((x) => x.uri), ['fake://a', 'fake://hang', 'fake://broken'], 'both pages');
    const a = await get(srv, `/api/sessions/${sid}/resources/read?extension=fakeres&uri=fake://a`);
    assert.deepEqual(a.body, { contents: [{ uri: 'fake://a', mimeType: 'text/plain', text: 'content of a' }] });
    assertError(await get(srv, `/api/sessions/${sid}/resources/read?extension=fakeres&uri=fake://broken`), 502, 'extension_error', /disk on fire/);
    assertError(await get(srv, `/api/sessions/${sid}/resources/read?extension=fakeres&uri=fake://hang`), 504, 'extension_timeout');
    assertError(await get(srv, `/api/sessions/${sid}/resources/read?extension=fakeres&uri=fake://other`), 404, 'not_found');
    // what is off MCP is not passed on as if it were an answer
    assertError(await get(srv, `/api/sessions/${sid}/resources/read?extension=fakeres&uri=fake://badblob`), 502, 'extension_error', /contents\[0\]\.blob is not base64/);
    assertError(await post(srv, `/api/sessions/${sid}/prompts/get`, { extension: 'fakeres', name: 'any' }), 502, 'extension_error',
      /messages\[0\] is not a prompt message \(a role user or assistant, and a content with a type\)/);
  });
});
