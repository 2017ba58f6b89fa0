// MCP extensions in replies: a server from config.yaml (the real Goose's format) whose tools the
// model calls through goosed — server-everything over stdio (echo, progress, structured content,
// the environment it was given, the roots it is told) and server-filesystem on a temporary
// directory — plus extensions per session, and the status the extension list reports.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAndCheck, tempDir, REPO } from './lib/server.mjs';
import { get, post, del, request, assertError } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';
import { watch } from './lib/events.mjs';

const KEY = 'sk-mcp-agent-secret-0123';
const EVERYTHING = path.join(REPO, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const FILESYSTEM = path.join(REPO, 'node_modules/@modelcontextprotocol/server-filesystem/dist/index.js');

const env = (fake, extra = {}) => ({ GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, ...extra });

function configYaml(fsDir) {
  return `# my goose config
GOOSE_MODEL: gpt-test
extensions:
  developer:
    bundled: true
    display_name: Developer
    enabled: true
    name: developer
    timeout: 300
    type: builtin
  everything:
    enabled: true
    name: everything
    type: stdio
    cmd: ${process.execPath}
    args:
    - ${EVERYTHING}
    - stdio
    envs:
      EVERYTHING_MODE: test
    timeout: 30
  files:
    enabled: false
    name: files
    type: stdio
    cmd: ${process.execPath}
    args: [${FILESYSTEM}, ${fsDir}]
`;
}

async function newSession(srv, dir, extra = {}) {
  const r = await post(srv, '/api/sessions', { name: 'mcp', working_directory: dir, ...extra });
  assert.equal(r.status, 201, r.text);
  return r.body.id;
}

const call = (id, name, args) => ({ tool_calls: [{ id, name, arguments: args }] });

async function toolMessages(fake) {
  return (await fake.requests('openai')).at(-1).body.messages.filter((m) => m.role === 'tool');
}

const FAKE_MCP = path.join(REPO, 'tests/fakes/mcp/server.mjs');
/** config.yaml's entry for an extension `name` that is the fake MCP server in `mode`. */
const fakeMcpEntry = (name, mode, extra = '') =>
  `  ${name}:\n    enabled: true\n    type: stdio\n    name: ${name}\n    cmd: ${process.execPath}\n    args: [${FAKE_MCP}, ${mode}]\n${extra}`;

/** A fake provider and a goosed with those extensions, for fn({fake, srv}); both stopped after.
 * Resolves with goosed's log. */
async function withFakeMcp(entries, fn) {
  const fake = await startFake({ keys: { openai: KEY } });
  const srv = await startServer({ env: env(fake), configYaml: `extensions:\n${entries.join('')}` });
  try {
    await fn({ fake, srv });
  } finally {
    await stopAndCheck(srv);
    await fake.stop();
  }
  return srv.log();
}

describe('an MCP server from config.yaml in a reply', () => {
  let fake, srv, dir, fsDir;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    dir = tempDir('goosed-mcp-cwd-');
    fsDir = tempDir('goosed-mcp-fs-');
    writeFileSync(path.join(fsDir, 'hello.txt'), 'hello from the filesystem server\n');
    srv = await startServer({ env: env(fake), configYaml: configYaml(fsDir) });
  });
  after(async () => {
    try { await stopAndCheck(srv); } finally { await fake.stop(); }
  });

  it('offers its tools to the model and runs them: echo, with the result the model sees', async () => {
    const sid = await newSession(srv, dir);
    await fake.script([call('e1', 'everything__echo', { message: 'hi there' }), { text: 'echoed' }]);
    const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'echo it' });
    assert.equal(r.status, 200, r.text);
    const reqs = await fake.requests('openai');
    const names = reqs.at(-2).body.tools.map((t) => t.function.name);
    assert.ok(names.includes('everything__echo') && names.includes('everything__get-sum'), names.join(','));
    assert.ok(names.includes('developer__shell'));
    assert.ok(!names.some((n) => n.startsWith('files__')), 'a disabled extension offers nothing');
    const tools = await toolMessages(fake);
    assert.match(JSON.stringify(tools[0].content), /Echo: hi there/);
  });

  it('forwards progress as tool_progress events and keeps structuredContent', async () => {
    const sid = await newSession(srv, dir);
    const w = await watch(srv, sid);
    await fake.script([
      call('p1', 'everything__trigger-long-running-operation', { duration: 0.3, steps: 3 }),
      call('s1', 'everything__get-structured-content', { location: 'Chicago' }),
      { text: 'done' },
    ]);
    const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'work' });
    assert.equal(r.status, 200, r.text);
    const seen = await w.until('message_complete');
    w.close();
    const progress = seen.filter((e) => e.event === 'tool_progress').map((e) => JSON.parse(e.data));
    assert.ok(progress.length >= 2, `progress events: ${JSON.stringify(progress)}`);
    assert.equal(progress[0].id, 'p1');
    assert.equal(progress[0].tool, 'everything__trigger-long-running-operation');
    assert.ok(progress.every((p) => p.total === 3));
    const structured = seen.filter((e) => e.event === 'tool_result').map((e) => JSON.parse(e.data)).find((d) => d.id === 's1');
    assert.equal(typeof structured.structured_content.temperature, 'number');
    const hist = await get(srv, `/api/sessions/${sid}/messages`);
    const stored = hist.body.flatMap((m) => m.content).find((c) => c.type === 'tool_response' && c.id === 's1');
    assert.deepEqual(stored.structured_content, structured.structured_content, 'stored with the result');
  });

  it('gives the server its envs and a safe environment: no provider key', async () => {
    const sid = await newSession(srv, dir);
    await fake.script([call('v1', 'everything__get-env', {}), { text: 'seen' }]);
    assert.equal((await post(srv, `/api/sessions/${sid}/messages`, { content: 'env' })).status, 200);
    const text = JSON.stringify((await toolMessages(fake))[0].content);
    assert.match(text, /EVERYTHING_MODE/);
    assert.ok(!text.includes(KEY) && !text.includes('OPENAI_API_KEY'), 'the provider key never reaches a server');
  });

  it('answers roots/list with the session\'s working directory', async () => {
    const sid = await newSession(srv, dir);
    await fake.script([call('r1', 'everything__get-roots-list', {}), { text: 'roots' }]);
    assert.equal((await post(srv, `/api/sessions/${sid}/messages`, { content: 'roots' })).status, 200);
    assert.match(JSON.stringify((await toolMessages(fake))[0].content), new RegExp(`file://${dir}`));
  });

  it('an elicitation reaches the client as an event; its answer, with the schema\'s defaults, reaches the server', async () => {
    const sid = await newSession(srv, dir);
    const w = await watch(srv, sid);
    await fake.script([call('el1', 'everything__trigger-elicitation-request', {}), { text: 'thanks' }]);
    const pending = post(srv, `/api/sessions/${sid}/messages`, { content: 'ask me' });
    const seen = await w.until('elicitation');
    const q = JSON.parse(seen.find((e) => e.event === 'elicitation').data);
    assert.equal(q.extension, 'everything');
    assert.match(q.message, /Please provide inputs/);
    assert.equal(q.requested_schema.properties.firstLine.default, 'It was a dark and stormy night.');
    assertError(await post(srv, `/api/sessions/${sid}/elicitations`, { id: q.id, action: 'maybe' }), 400, 'bad_request', /action/);
    assertError(await post(srv, `/api/sessions/${sid}/elicitations`, { id: 'elicitation-999', action: 'accept' }), 404, 'not_found');
    const ok = await post(srv, `/api/sessions/${sid}/elicitations`, { id: q.id, action: 'accept', content: { name: 'Ada' } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await pending).status, 200);
    w.close();
    const text = JSON.stringify((await toolMessages(fake))[0].content);
    assert.match(text, /Ada/);
    assert.match(text, /It was a dark and stormy night/, 'the default was filled in');
    assert.match(text, /Monica/);
  });

  it('a URL elicitation reaches the client with its address (never opened by goosed); accepted, the server hears so; an address that is not http(s) is refused', async () => {
    const sid = await newSession(srv, dir);
    const w = await watch(srv, sid);
    await fake.script([call('u1', 'everything__trigger-url-elicitation', { url: 'https://example.com/authorize?x=1', message: 'Sign in to continue.', elicitationId: 'flow-7' }), { text: 'signed in' }]);
    const pending = post(srv, `/api/sessions/${sid}/messages`, { content: 'sign me in' });
    const seen = await w.until('elicitation');
    const q = JSON.parse(seen.find((e) => e.event === 'elicitation').data);
    assert.deepEqual({ mode: q.mode, url: q.url, message: q.message, elicitation_id: q.elicitation_id, extension: q.extension, schema: q.requested_schema },
      { mode: 'url', url: 'https://example.com/authorize?x=1', message: 'Sign in to continue.', elicitation_id: 'flow-7', extension: 'everything', schema: undefined });
    const ok = await post(srv, `/api/sessions/${sid}/elicitations`, { id: q.id, action: 'accept' });
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await pending).status, 200);
    w.close();
    assert.match(JSON.stringify((await toolMessages(fake))[0].content), /accept/);

    // javascript: (or file:, or an address hiding a line break) is never shown to the user
    const sid2 = await newSession(srv, dir);
    await fake.script([call('u2', 'everything__trigger-url-elicitation', { url: 'javascript:alert(document.cookie)' }), { text: 'refused' }]);
    const r = await post(srv, `/api/sessions/${sid2}/messages`, { content: 'sign me in' }, { headers: { Accept: 'text/event-stream' } });
    assert.equal(r.status, 200, r.text);
    assert.doesNotMatch(r.text, /event: elicitation/);
    assert.match(JSON.stringify((await toolMessages(fake))[0].content), /http:\/\/ or https:\/\/ address/);

    // at most 2,048 bytes: the longest is shown, one more is refused
    for (const [len, shown] of [[2048, true], [2049, false]]) {
      const url = `https://example.com/${'a'.repeat(len - 20)}`;
      assert.equal(url.length, len);
      const s3 = await newSession(srv, dir);
      const w3 = await watch(srv, s3);
      await fake.script([call(`u${len}`, 'everything__trigger-url-elicitation', { url }), { text: 'done' }]);
      const reply = post(srv, `/api/sessions/${s3}/messages`, { content: 'sign me in' });
      if (shown) {
        const q3 = JSON.parse((await w3.until('elicitation')).find((e) => e.event === 'elicitation').data);
        assert.equal(q3.url, url);
        assert.equal((await post(srv, `/api/sessions/${s3}/elicitations`, { id: q3.id, action: 'decline' })).status, 200);
      }
      assert.equal((await reply).status, 200);
      w3.close();
      if (!shown) assert.match(JSON.stringify((await toolMessages(fake))[0].content), /at most 2048 printable bytes/);
    }
  });

  it('a sampling request is served by the session\'s provider (auto mode)', async () => {
    const sid = await newSession(srv, dir);
    await fake.script([call('sa1', 'everything__trigger-sampling-request', { prompt: 'say hi', maxTokens: 20 }), { text: 'the sampled answer' }, { text: 'done sampling' }]);
    const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'sample' });
    assert.equal(r.status, 200, r.text);
    const reqs = await fake.requests('openai');
    const sampling = reqs.at(-2).body;
    assert.match(JSON.stringify(sampling.messages), /say hi/);
    assert.ok(!sampling.tools || sampling.tools.length === 0, 'a sampling request offers no tools');
    assert.match(JSON.stringify((await toolMessages(fake))[0].content), /the sampled answer/);
  });

  it('reports the extension running with its tools once a session used it', async () => {
    const list = await get(srv, '/api/extensions');
    const ev = list.body.extensions.find((x) => x.name === 'everything');
    assert.equal(ev.status, 'running');
    assert.ok(ev.tools.some((t) => t.name === 'echo'));
    assert.equal(list.body.extensions.find((x) => x.name === 'files').enabled, false);
  });

  it('adds an extension to one session only, and removes one from it', async () => {
    // server-filesystem serves the roots its client names: goosed names the session's directory
    const a = await newSession(srv, fsDir, { extensions: [{ name: 'files' }, { name: 'everything', enabled: false }] });
    const b = await newSession(srv, dir);
    const got = await get(srv, `/api/sessions/${a}/extensions`);
    assert.equal(got.status, 200, got.text);
    const byName = Object.fromEntries(got.body.extensions.map((x) => [x.name, x]));
    assert.equal(byName.files.enabled, true);
    assert.equal(byName.everything.enabled, false);
    await fake.script([call('f1', 'files__read_text_file', { path: path.join(fsDir, 'hello.txt') }), { text: 'read' }]);
    assert.equal((await post(srv, `/api/sessions/${a}/messages`, { content: 'read' })).status, 200);
    const reqs = await fake.requests('openai');
    const names = reqs.at(-2).body.tools.map((t) => t.function.name);
    assert.ok(names.includes('files__read_text_file') && !names.some((n) => n.startsWith('everything__')), names.join(','));
    assert.match(JSON.stringify((await toolMessages(fake))[0].content), /hello from the filesystem server/);
    // the other session is as configured
    await fake.script([{ text: 'plain' }]);
    assert.equal((await post(srv, `/api/sessions/${b}/messages`, { content: 'hi' })).status, 200);
    const bnames = (await fake.requests('openai')).at(-1).body.tools.map((t) => t.function.name);
    assert.ok(bnames.includes('everything__echo') && !bnames.some((n) => n.startsWith('files__')), bnames.join(','));
    // removed from session a: the next reply has no files tools
    assert.equal((await del(srv, `/api/sessions/${a}/extensions/files`)).status, 204);
    await fake.script([{ text: 'none' }]);
    assert.equal((await post(srv, `/api/sessions/${a}/messages`, { content: 'again' })).status, 200);
    const anames = ((await fake.requests('openai')).at(-1).body.tools ?? []).map((t) => t.function.name);
    assert.ok(!anames.some((n) => n.startsWith('files__')), anames.join(','));
    // errors
    assertError(await post(srv, `/api/sessions/${a}/extensions`, { name: 'nope' }), 404, 'not_found', /nope/);
    assertError(await post(srv, `/api/sessions/${a}/extensions`, { name: 'x', config: { type: 'stdio' } }), 400, 'bad_request', /cmd/);
    assertError(await del(srv, `/api/sessions/${a}/extensions/nope`), 404, 'not_found');
    assertError(await post(srv, '/api/sessions', { working_directory: dir, execution_mode: 'yolo' }), 400, 'bad_request', /execution_mode/);
  });

  it('PATCH /api/sessions/{id} sets the session\'s own mode', async () => {
    const sid = await newSession(srv, dir);
    const r = await request(srv, 'PATCH', `/api/sessions/${sid}`, { json: { execution_mode: 'chat' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.effective_mode, 'chat');
    await fake.script([{ text: 'chatting' }]);
    assert.equal((await post(srv, `/api/sessions/${sid}/messages`, { content: 'hi' })).status, 200);
    const last = (await fake.requests('openai')).at(-1).body;
    assert.ok(!last.tools || last.tools.length === 0);
    assertError(await request(srv, 'PATCH', `/api/sessions/${sid}`, { json: { execution_mode: 'loud' } }), 400, 'bad_request');
    assertError(await request(srv, 'PATCH', `/api/sessions/${sid}`, { json: { name: 'x' } }), 400, 'bad_request', /name/);
  });
});

describe('sampling needs approval outside auto mode', () => {
  it('asks with a tool_confirmation named <extension>__sampling; denied, the server is told', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const fsDir = tempDir('goosed-mcp-fs-');
    const srv = await startServer({ env: env(fake, { GOOSE_MODE: 'smart_approve' }), configYaml: configYaml(fsDir) });
    try {
      const sid = await newSession(srv, srv.home);
      const w = await watch(srv, sid);
      await fake.script([call('sb1', 'everything__trigger-sampling-request', { prompt: 'x' }), { text: 'after' }]);
      const pending = post(srv, `/api/sessions/${sid}/messages`, { content: 'sample' });
      // the tool itself is not read-only: it asks first
      let seen = await w.until('tool_confirmation');
      assert.equal(JSON.parse(seen.at(-1).data).id, 'sb1');
      assert.equal((await post(srv, `/api/sessions/${sid}/tool_confirmations`, { id: 'sb1', action: 'allow_once' })).status, 200);
      seen = await w.until('tool_confirmation', (d) => d.tool === 'everything__sampling');
      const q = JSON.parse(seen.filter((e) => e.event === 'tool_confirmation').at(-1).data);
      assert.match(q.id, /^sampling-/);
      assert.match(JSON.stringify(q.arguments.messages), /x/);
      assert.equal((await post(srv, `/api/sessions/${sid}/tool_confirmations`, { id: q.id, action: 'deny' })).status, 200);
      assert.equal((await pending).status, 200);
      w.close();
      const text = JSON.stringify((await toolMessages(fake))[0].content);
      assert.match(text, /declined by the user/);
      assert.equal((await fake.requests('openai')).length, 2, 'the model was not asked for the sample');
    } finally {
      await stopAndCheck(srv);
      await fake.stop();
    }
  });
});

describe('a broken MCP server in a reply', () => {
  it('a server that exits at start gives the model no tools from it, and the reply still works', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const srv = await startServer({
      env: env(fake),
      configYaml: `extensions:\n  dead:\n    enabled: true\n    type: stdio\n    name: dead\n    cmd: /bin/false\n  developer: {enabled: true, type: builtin, name: developer}\n`,
    });
    try {
      const sid = await newSession(srv, srv.home);
      await fake.script([call('d1', 'dead__anything', {}), { text: 'fine' }]);
      const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'go' });
      assert.equal(r.status, 200, r.text);
      assert.match(JSON.stringify((await toolMessages(fake))[0].content), /unknown tool/);
      const ext = (await get(srv, '/api/extensions')).body.extensions.find((x) => x.name === 'dead');
      assert.equal(ext.status, 'failed');
      assert.ok(ext.error && ext.error.length > 0);
    } finally {
      await stopAndCheck(srv);
      await fake.stop();
    }
  });
});

describe('extensions that crash or hang, in replies', () => {
  it('a crash is a tool error for the model, other sessions keep their own server, and the next reply starts it again', async () => {
    await withFakeMcp([fakeMcpEntry('crashy', 'crash'), fakeMcpEntry('hangy', 'hang', '    timeout: 1\n')], async ({ fake, srv }) => {
      const a = await newSession(srv, srv.home);
      const b = await newSession(srv, srv.home);
      // b's server is up before a's crashes
      await fake.script([call('b0', 'crashy__echo', { text: 'before' }), { text: 'b ok' }]);
      assert.equal((await post(srv, `/api/sessions/${b}/messages`, { content: 'hi' })).status, 200);
      await fake.script([call('a1', 'crashy__boom', {}), call('a2', 'hangy__sleep', {}), { text: 'a done' }]);
      const r = await post(srv, `/api/sessions/${a}/messages`, { content: 'break it' });
      assert.equal(r.status, 200, r.text);
      const reqs = await fake.requests('openai');
      const afterBoom = reqs.at(-2).body.messages.filter((m) => m.role === 'tool').at(-1);
      assert.match(JSON.stringify(afterBoom.content), /crashy__boom failed: .*exited with status 3/);
      const afterHang = (await toolMessages(fake)).at(-1);
      assert.match(JSON.stringify(afterHang.content), /timed out after 1 s/);
      // session b's own instance still answers
      await fake.script([call('b1', 'crashy__echo', { text: 'still here' }), { text: 'b again' }]);
      assert.equal((await post(srv, `/api/sessions/${b}/messages`, { content: 'again' })).status, 200);
      assert.match(JSON.stringify((await toolMessages(fake)).at(-1).content), /still here/);
      // a's next replies: within the backoff the server is not started again (its tools are not
      // offered); once it has passed, a reply starts it again
      let offered = false;
      const deadline = Date.now() + 15000;
      while (!offered && Date.now() < deadline) {
        await fake.script([{ text: 'checking' }]);
        assert.equal((await post(srv, `/api/sessions/${a}/messages`, { content: 'tools?' })).status, 200);
        offered = ((await fake.requests('openai')).at(-1).body.tools ?? []).some((t) => t.function.name === 'crashy__echo');
      }
      assert.ok(offered, 'the crashed server was started again by a later reply');
      assert.match(srv.log(), /crashy.*exited with status 3/);
    });
  });
});

describe('an MCP server whose tool names or schemas the providers refuse', () => {
  it('offers each under a name the providers take, once, leaves out what they refuse, and calls it by its own name', async () => {
    await withFakeMcp([fakeMcpEntry('odd', 'names')], async ({ fake, srv }) => {
      const sid = await newSession(srv, srv.home);
      await fake.script([call('c1', 'odd__dotted_name', {}), call('c2', 'odd__a_b_c__x______', {}), { text: 'done' }]);
      const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'call them' });
      assert.equal(r.status, 200, r.text); // the fake refuses what OpenAI refuses: no 502
      const offered = (await fake.requests('openai')).at(-1).body.tools.map((t) => t.function.name).filter((n) => n.startsWith('odd__'));
      assert.deepEqual(offered, ['odd__dotted_name', 'odd__a_b_c__x______', 'odd__echo']);
      const results = (await toolMessages(fake)).map((m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content)));
      assert.ok(results[0].includes(`called ${JSON.stringify('dotted.name')}`), results[0]);
      assert.ok(results[1].includes(`called ${JSON.stringify('a\nb"c</x>\u0001😀')}`), results[1]);
      const log = srv.log();
      assert.match(log, /odd: tools\/list: a second tool named echo left out/);
      assert.match(log, /odd: tools\/list: a second tool named dotted_name left out/);
      assert.match(log, /odd: tools\/list: tool arr left out: its inputSchema is not an object's/);
      assert.match(log, /odd: tool odd__x{70} left out: its name passes 64 characters/);
      assert.match(log, /odd: tools\/list: more than 100 pages; the rest is ignored/);
    });
  });
});

describe('an MCP server that offers tools by the hundred thousand', () => {
  it('is looked at for 10,000 of them, and asked for no more pages', async () => {
    const log = await withFakeMcp([fakeMcpEntry('flood', 'toolflood')], async ({ fake, srv }) => {
      const sid = await newSession(srv, srv.home);
      await fake.script([call('f1', 'flood__pages', {}), { text: 'done' }]);
      const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'how many?' });
      assert.equal(r.status, 200, r.text);
      const offered = (await fake.requests('openai')).at(-1).body.tools.map((t) => t.function.name).filter((n) => n.startsWith('flood__'));
      assert.deepEqual(offered, ['flood__pages', 'flood__dup']);
      assert.match(JSON.stringify((await toolMessages(fake)).at(-1).content), /tools\/list requests: 1\b/);
    });
    assert.match(log, /flood: tools\/list: more than 10000 tools offered; the rest is ignored/);
    const warned = log.split('\n').filter((l) => /flood: tools\/list: a second tool named dup left out/.test(l)).length;
    assert.equal(warned, 8, 'the tools left out are logged a few at a time, not one line each');
  });
});

describe("an MCP server's large outputs", () => {
  it('a tool result keeps tool_output_cap bytes of its text, its start and end, and says how much was left out', async () => {
    await withFakeMcp([fakeMcpEntry('big', 'bigout')], async ({ fake, srv }) => {
      const sid = await newSession(srv, srv.home);
      await fake.script([call('b1', 'big__big', {}), { text: 'done' }]);
      const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'go' });
      assert.equal(r.status, 200, r.text);
      const msg = (await toolMessages(fake)).at(-1);
      const text = typeof msg.content === 'string' ? msg.content : msg.content.map((c) => c.text).join('');
      assert.ok(text.startsWith('BEGIN') && text.endsWith('END'), text.slice(0, 80));
      assert.match(text, /\[\.\.\. 234\d{3} bytes of the tool's output omitted: the first 32768 and last 32768 bytes are shown \.\.\.\]/);
      assert.ok(text.length < 66 * 1024, `${text.length} bytes reached the model`);
    });
  });

  it("a progress notification's message is cut to 1 KiB in its tool_progress event", async () => {
    await withFakeMcp([fakeMcpEntry('big', 'bigout')], async ({ fake, srv }) => {
      const sid = await newSession(srv, srv.home);
      const w = await watch(srv, sid);
      await fake.script([call('p1', 'big__progressbig', {}), { text: 'done' }]);
      const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'go' });
      assert.equal(r.status, 200, r.text);
      const seen = await w.until('message_complete');
      w.close();
      const progress = seen.filter((e) => e.event === 'tool_progress').map((e) => JSON.parse(e.data));
      assert.equal(progress.length, 1, JSON.stringify(seen.map((e) => e.event)));
      const m = progress[0].message;
      assert.ok(m.startsWith('Séé') && m.endsWith('…'), m.slice(0, 20));
      assert.ok(Buffer.byteLength(m) <= 1024 + 3, `${Buffer.byteLength(m)} bytes`);
    });
  });
});

describe('an MCP server that floods its log messages', () => {
  it('gets 200 lines of the log per 10 s, and a count of the rest', async () => {
    const log = await withFakeMcp([fakeMcpEntry('noisy', 'logflood')], async ({ fake, srv }) => {
      const sid = await newSession(srv, srv.home);
      await fake.script([call('n1', 'noisy__echo', { text: 'after the flood' }), { text: 'done' }]);
      const r = await post(srv, `/api/sessions/${sid}/messages`, { content: 'go' });
      assert.equal(r.status, 200, r.text);
      assert.match(JSON.stringify((await toolMessages(fake)).at(-1).content), /after the flood/);
    });
    const logged = log.split('\n').filter((l) => /noisy: server log: flood \d+/.test(l)).length;
    assert.equal(logged, 200, `${logged} lines of the flood were logged`);
    assert.match(log, /\(2800 more server log messages not logged\)/);
  });
});

describe('the developer extension through the API (seed 001)', () => {
  it('allow_shell: false takes the shell tool away from the next reply, true gives it back', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const srv = await startServer({ env: env(fake) });
    try {
      const sid = await newSession(srv, srv.home);
      const tools = async () => ((await fake.requests('openai')).at(-1).body.tools ?? []).map((t) => t.function.name);
      await fake.script([{ text: 'one' }]);
      assert.equal((await post(srv, `/api/sessions/${sid}/messages`, { content: 'a' })).status, 200);
      assert.ok((await tools()).includes('developer__shell'));
      const off = await post(srv, '/api/extensions', { name: 'developer', config: { allow_shell: false } });
      assert.ok(off.status === 200 || off.status === 201, off.text);
      await fake.script([call('sh1', 'developer__shell', { command: 'id' }), { text: 'two' }]);
      assert.equal((await post(srv, `/api/sessions/${sid}/messages`, { content: 'b' })).status, 200);
      const now = await tools();
      assert.ok(!now.includes('developer__shell') && now.includes('developer__text_editor'), now.join(','));
      assert.match(JSON.stringify((await toolMessages(fake)).at(-1).content), /unknown tool 'developer__shell'/);
      const on = await post(srv, '/api/extensions', { name: 'developer', config: { allow_shell: true } });
      assert.equal(on.status, 200, on.text);
      await fake.script([{ text: 'three' }]);
      assert.equal((await post(srv, `/api/sessions/${sid}/messages`, { content: 'c' })).status, 200);
      assert.ok((await tools()).includes('developer__shell'));
    } finally {
      await stopAndCheck(srv);
      await fake.stop();
    }
  });
});

describe('MCP server processes count against max_tool_processes', () => {
  it('a session whose server would pass the bound gets no tools from it, and says why', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const fsDir = tempDir('goosed-mcp-fs-');
    const srv = await startServer({ env: env(fake, { GOOSE_MAX_TOOL_PROCESSES: 1 }), configYaml: configYaml(fsDir) });
    try {
      const a = await newSession(srv, srv.home);
      const b = await newSession(srv, srv.home);
      await fake.script([call('m1', 'everything__echo', { message: 'first' }), { text: 'a ok' }]);
      assert.equal((await post(srv, `/api/sessions/${a}/messages`, { content: 'a' })).status, 200);
      assert.match(JSON.stringify((await toolMessages(fake)).at(-1).content), /Echo: first/);
      await fake.script([{ text: 'b ok' }]);
      assert.equal((await post(srv, `/api/sessions/${b}/messages`, { content: 'b' })).status, 200);
      const names = ((await fake.requests('openai')).at(-1).body.tools ?? []).map((t) => t.function.name);
      assert.ok(!names.some((n) => n.startsWith('everything__')), names.join(','));
      assert.match(srv.log(), /max_tool_processes/);
    } finally {
      await stopAndCheck(srv);
      await fake.stop();
    }
  });
});
