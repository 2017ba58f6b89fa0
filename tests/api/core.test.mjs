// The agent core: tools that hold no thread while they run, secrets out of the tools' reach,
// crash consistency after kill -9, the bounds on replies, watchers and context, and every error
// case with its own code. The provider is tests/fakes (OpenAI's wire format and rules).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startServer, stopAndCheck, kill9AndCheck, tempDir } from './lib/server.mjs';
import { request, get, post, del, assertError } from './lib/http.mjs';
import { startFake, parseSSE } from '../fakes/lib.mjs';
import { connect } from './lib/ws.mjs';
import net from 'node:net';
import { once } from 'node:events';
import { withMarker } from './lib/proc.mjs';
import { watch } from './lib/events.mjs';

const KEY = 'sk-core-test-key-0123456789';

function providerEnv(fake, extra = {}) {
  return { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, ...extra };
}

async function newSession(srv, dir) {
  const r = await post(srv, '/api/sessions', { name: 'core test', working_directory: dir });
  assert.equal(r.status, 201, r.text);
  return r.body.id;
}

/** Waits until cond() is true, checking every 20 ms, failing after ms. */
async function until(cond, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function threads(pid) {
  return readdirSync(`/proc/${pid}/task`).length;
}

describe('tools run without holding a thread', () => {
  let fake;
  let srv;
  const N = 200;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    srv = await startServer({ env: providerEnv(fake, { GOOSE_TOOL_WORKERS: 4 }) });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it(`runs ${N} shell tools at once, on a bounded number of threads`, async () => {
    const dir = tempDir('goosed-core-barrier-');
    const gate = path.join(dir, 'gate');
    mkdirSync(gate);
    // Each command marks that it started, then waits until all N have: it can only finish if
    // every one of them runs at the same time. Then it sleeps two seconds, as the tools do.
    // (Only shell built-ins in the wait, so that N waiting shells cost little CPU.)
    // (mktemp, not $$: every command is pid 2 in its own PID namespace)
    const cmd = `mktemp -p "${gate}" >/dev/null; n=0; while :; do set -- "${gate}"/*; [ $# -ge ${N} ] && break; n=$((n+1)); [ $n -gt 300 ] && break; sleep 0.2; done; sleep 2; set -- "${gate}"/*; echo "saw $# running"`;
    await fake.script({
      responses: Array.from({ length: N }, (_, i) => ({ tool_calls: [{ id: `call_${i}`, name: 'developer__shell', arguments: { command: cmd } }] })),
      default: { text: 'all done' },
    });
    const ids = [];
    for (let i = 0; i < N; i++) ids.push(await newSession(srv, dir));
    const started = Date.now();
    const replies = ids.map((id) => post(srv, `/api/sessions/${id}/messages`, { content: 'run it' }));
    await until(() => readdirSync(gate).length >= N, 60_000, `${N} shells to start`);
    const during = threads(srv.proc.pid);
    const results = await Promise.all(replies);
    const wall = Date.now() - started;
    for (const r of results) {
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.content, 'all done');
    }
    for (const id of ids) {
      const hist = await get(srv, `/api/sessions/${id}/messages`);
      const result = hist.body[2].content[0];
      assert.equal(result.type, 'tool_response');
      assert.equal(result.is_error, false, JSON.stringify(result));
      assert.match(result.content[0].text, new RegExp(`saw ${N} running`));
    }
    // The HTTP threads, the agent loop, the WebSocket loop, the store's writer, 4 tool workers.
    assert.ok(during < 32, `goosed ran ${during} threads while ${N} tools ran`);
    console.log(`# ${N} concurrent 2 s shell tools: ${wall} ms wall, ${during} threads in goosed`);
  });
});

describe('secrets are out of the tools\' reach', () => {
  let fake;
  let srv;
  let home;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    home = tempDir('goosed-core-home-');
    mkdirSync(path.join(home, '.config', 'goose'), { recursive: true });
    writeFileSync(path.join(home, '.config', 'goose', 'secrets.yaml'), `ANTHROPIC_API_KEY: "sk-ant-secret-in-file"\n`, { mode: 0o600 });
    srv = await startServer({ home, env: providerEnv(fake, { GOOSE_SECRET_THING: 'goose-secret', SOME_TOKEN: 'tok-123' }) });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it('a shell cannot read goosed\'s environment, and sees only an allow-listed one', async () => {
    const dir = tempDir('goosed-core-cwd-');
    const pid = srv.proc.pid;
    await fake.script([
      { tool_calls: [{ id: 'call_env', name: 'developer__shell', arguments: { command: `cat /proc/${pid}/environ | tr '\\0' '\\n'; echo ---; env; echo ---; cat /proc/${pid}/cmdline >/dev/null && echo cmdline-readable` } }] },
      { text: 'ok' },
    ]);
    const id = await newSession(srv, dir);
    const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'look around' });
    assert.equal(r.status, 200, r.text);
    const hist = await get(srv, `/api/sessions/${id}/messages`);
    const out = hist.body[2].content[0].content[0].text;
    assert.ok(!out.includes(KEY), `the shell saw the API key:\n${out}`);
    assert.ok(!out.includes('goose-secret') && !out.includes('tok-123'), `the shell saw variables off the allow-list:\n${out}`);
    // Permission denied (non-dumpable) without the sandbox; absent inside its PID namespace.
    assert.match(out, /Permission denied|No such file/, 'goosed\'s environ is out of reach');
    assert.match(out, /PATH=/, 'PATH is passed on');
    assert.match(out, /HOME=/, 'HOME is passed on');
  });

  it('the text editor refuses goosed\'s own configuration and data, also through ../ and a symlink', async () => {
    const dir = tempDir('goosed-core-cwd-');
    const secrets = path.join(home, '.config', 'goose', 'secrets.yaml');
    execFileSync('ln', ['-s', path.join(home, '.config', 'goose'), path.join(dir, 'cfg')]);
    const rel = path.relative(dir, secrets);
    await fake.script([
      { tool_calls: [
        { id: 'call_a', name: 'developer__text_editor', arguments: { command: 'view', path: secrets } },
        { id: 'call_b', name: 'developer__text_editor', arguments: { command: 'view', path: rel } },
        { id: 'call_c', name: 'developer__text_editor', arguments: { command: 'view', path: path.join(dir, 'cfg', 'secrets.yaml') } },
        { id: 'call_d', name: 'developer__text_editor', arguments: { command: 'write', path: path.join(home, '.config', 'goose', 'config.yaml'), file_text: 'GOOSE_HOST: 0.0.0.0\n' } },
      ] },
      { text: 'ok' },
    ]);
    const id = await newSession(srv, dir);
    const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'read the secrets' });
    assert.equal(r.status, 200, r.text);
    const hist = await get(srv, `/api/sessions/${id}/messages`);
    const results = hist.body[2].content;
    assert.equal(results.length, 4);
    for (const res of results) {
      assert.equal(res.is_error, true, JSON.stringify(res));
      assert.match(res.content[0].text, /refused/);
      assert.ok(!res.content[0].text.includes('sk-ant-secret-in-file'));
    }
    assert.ok(!existsSync(path.join(home, '.config', 'goose', 'config.yaml')) ||
      !readFileSync(path.join(home, '.config', 'goose', 'config.yaml'), 'utf8').includes('0.0.0.0'));
  });
});

describe('crash consistency: kill -9 during a tool call', () => {
  let fake;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
  });
  after(() => fake.stop());

  it('repairs the history on the next start, the next message works, and no tool process survives', async () => {
    const home = tempDir('goosed-core-crash-');
    const dir = tempDir('goosed-core-cwd-');
    const pidFile = path.join(dir, 'tool.pid');
    // The sleep's argument marks it: inside the sandbox's PID namespace $$ and $! are not the
    // host's pids, so the processes are found by their command line.
    const marker = `300.${process.pid}${Date.now() % 100000}`;
    await fake.script([
      { tool_calls: [{ id: 'call_crash', name: 'developer__shell', arguments: { command: `sleep ${marker} & echo $! > "${pidFile}.bg"; echo $$ > "${pidFile}"; wait` } }] },
    ]);
    let srv = await startServer({ home, env: providerEnv(fake) });
    const id = await newSession(srv, dir);
    const reply = post(srv, `/api/sessions/${id}/messages`, { content: 'run something long' }).catch((e) => e);
    await until(() => existsSync(pidFile) && existsSync(`${pidFile}.bg`) && readFileSync(`${pidFile}.bg`, 'utf8').trim() !== '', 10_000, 'the tool to start');
    assert.ok(withMarker(marker).length > 0, 'the background sleep runs');
    await kill9AndCheck(srv);
    await reply;
    await until(() => withMarker(marker).length === 0, 5000, 'the tool processes to die with goosed');

    await fake.reset();
    await fake.script([{ text: 'Back again.' }]);
    srv = await startServer({ home, env: providerEnv(fake) });
    try {
      const hist = await get(srv, `/api/sessions/${id}/messages`);
      assert.deepEqual(hist.body.map((m) => m.role), ['user', 'assistant', 'user']);
      const repaired = hist.body[2].content[0];
      assert.equal(repaired.type, 'tool_response');
      assert.equal(repaired.id, 'call_crash');
      assert.equal(repaired.is_error, true);
      assert.match(repaired.content[0].text, /interrupted/);
      const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'are you there?' });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.content, 'Back again.');
      const sent = await fake.requests();
      const msgs = sent.at(-1).body.messages;
      const toolMsg = msgs.find((m) => m.role === 'tool');
      assert.equal(toolMsg.tool_call_id, 'call_crash');
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('crash consistency inside a round of several tools', () => {
  let fake;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
  });
  after(() => fake.stop());

  it('kill -9 during the second tool: the first result a client saw is kept, the second says interrupted', async () => {
    const home = tempDir('goosed-core-crash2-');
    const dir = tempDir('goosed-core-cwd2-');
    const pidFile = path.join(dir, 'second.pid');
    const marker = `301.${process.pid}${Date.now() % 100000}`;
    await fake.script([
      { tool_calls: [
        { id: 'call_first', name: 'developer__shell', arguments: { command: 'echo first-done' } },
        { id: 'call_long', name: 'developer__shell', arguments: { command: `sleep ${marker} & echo $! > "${pidFile}"; wait` } },
      ] },
    ]);
    let srv = await startServer({ home, env: providerEnv(fake) });
    const id = await newSession(srv, dir);
    const w = await watch(srv, id);
    const reply = post(srv, `/api/sessions/${id}/messages`, { content: 'run two things' }).catch((e) => e);
    const seen = await w.until('tool_result', (d) => d.id === 'call_first');
    assert.match(seen.find((e) => e.event === 'tool_result').data, /first-done/);
    await until(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 10_000, 'the second tool to start');
    await kill9AndCheck(srv);
    w.close();
    await reply;

    await fake.reset();
    await fake.script([{ text: 'Back.' }]);
    srv = await startServer({ home, env: providerEnv(fake) });
    try {
      const hist = await get(srv, `/api/sessions/${id}/messages`);
      assert.deepEqual(hist.body.map((m) => m.role), ['user', 'assistant', 'user']);
      const [first, second] = hist.body[2].content;
      assert.equal(hist.body[2].content.length, 2, JSON.stringify(hist.body[2]));
      assert.equal(first.id, 'call_first');
      assert.equal(first.is_error, false, 'the result the client saw became "interrupted"');
      assert.match(first.content[0].text, /first-done/);
      assert.equal(second.id, 'call_long');
      assert.equal(second.is_error, true);
      assert.match(second.content[0].text, /interrupted/);
      const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'still there?' });
      assert.equal(r.status, 200, r.text);
      const msgs = (await fake.requests()).at(-1).body.messages;
      assert.deepEqual(msgs.filter((m) => m.role === 'tool').map((m) => m.tool_call_id), ['call_first', 'call_long']);
      assert.equal((await get(srv, `/api/sessions/${id}/messages`)).body.length, 5, 'the repair is stored once, not again');
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('a reply waiting for its extensions to start', () => {
  let fake;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
  });
  after(() => fake.stop());

  /** goosed with an MCP server that never answers initialize (its command line carries marker). */
  async function withSilentServer(marker) {
    const silent = path.join(path.dirname(new URL(import.meta.url).pathname), '../fakes/mcp/server.mjs');
    return startServer({
      env: providerEnv(fake),
      configYaml: `extensions:\n  silent:\n    enabled: true\n    type: stdio\n    name: silent\n    cmd: ${process.execPath}\n    args: [${silent}, silent, ${marker}]\n`,
    });
  }

  it('a cancel ends it at once, while the server is still starting', async () => {
    const marker = `silent-cancel-${process.pid}-${Date.now()}`;
    const srv = await withSilentServer(marker);
    try {
      const id = await newSession(srv, tempDir('goosed-core-start-'));
      await fake.script([{ text: 'never asked' }]);
      const reply = post(srv, `/api/sessions/${id}/messages`, { content: 'hi' });
      await until(() => withMarker(marker).length > 0, 10_000, 'the MCP server to be started');
      const c = await post(srv, `/api/sessions/${id}/cancel`);
      assert.ok(c.status === 200 || c.status === 202, c.text);
      const r = await reply;
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.stop_reason, 'cancelled');
      // it ended while the server was still being waited for (its start gives up after 30 s)
      assert.ok(withMarker(marker).length > 0, 'the reply ended only once the start had failed');
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('SIGTERM while it waits: the reply ends cancelled and goosed exits 0', async () => {
    const marker = `silent-term-${process.pid}-${Date.now()}`;
    const srv = await withSilentServer(marker);
    const id = await newSession(srv, tempDir('goosed-core-start-'));
    const reply = post(srv, `/api/sessions/${id}/messages`, { content: 'hi' }).catch((e) => e);
    await until(() => withMarker(marker).length > 0, 10_000, 'the MCP server to be started');
    await stopAndCheck(srv); // exit 0 and "shutdown complete"
    const r = await reply;
    if (r.status) assert.equal(r.body.stop_reason, 'cancelled', r.text);
  });
});

describe('bounds and error codes', () => {
  let fake;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
  });
  after(() => fake.stop());

  it('max_replies: a reply over the bound is refused with 503 busy and Retry-After', async () => {
    await fake.reset();
    await fake.script([{ text: 'slow', stall_ms: 30_000 }]);
    const srv = await startServer({ env: providerEnv(fake, { GOOSE_MAX_REPLIES: 1 }) });
    try {
      const dir = tempDir('goosed-core-cwd-');
      const a = await newSession(srv, dir);
      const b = await newSession(srv, dir);
      const first = request(srv, 'POST', `/api/sessions/${a}/messages`, { json: { content: 'one' } });
      await until(async () => (await fake.requests()).length === 1, 10_000, 'the first reply to reach the provider');
      const r = await post(srv, `/api/sessions/${b}/messages`, { content: 'two' });
      assertError(r, 503, 'busy', /max_replies/);
      assert.ok(Number(r.headers.get('retry-after')) > 0);
      assert.equal((await post(srv, `/api/sessions/${a}/cancel`)).status, 202);
      const done = await first;
      assert.equal(done.status, 200, done.text);
      assert.equal(done.body.stop_reason, 'cancelled');
      // the slot is free again
      await fake.script([{ text: 'second' }]);
      const again = await post(srv, `/api/sessions/${b}/messages`, { content: 'two again' });
      assert.equal(again.status, 200, again.text);
      assert.equal(again.body.content, 'second');
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('max_tool_processes: a shell over the bound gets an error result naming it; the model sees it', async () => {
    await fake.reset();
    const dir = tempDir('goosed-core-cwd-');
    const gate = path.join(dir, 'gate');
    await fake.script([
      { tool_calls: [{ id: 'call_hold', name: 'developer__shell', arguments: { command: `touch "${gate}.started"; while [ ! -e "${gate}" ]; do sleep 0.05; done; echo released` } }] },
      { tool_calls: [{ id: 'call_over', name: 'developer__shell', arguments: { command: 'echo should not run' } }] },
      { text: 'b done' },
      { text: 'a done' },
    ]);
    const srv = await startServer({ env: providerEnv(fake, { GOOSE_MAX_TOOL_PROCESSES: 1 }) });
    try {
      const a = await newSession(srv, dir);
      const b = await newSession(srv, dir);
      const first = post(srv, `/api/sessions/${a}/messages`, { content: 'hold' });
      await until(() => existsSync(`${gate}.started`), 10_000, 'the first tool to start');
      const r = await post(srv, `/api/sessions/${b}/messages`, { content: 'over' });
      assert.equal(r.status, 200, r.text);
      const hist = await get(srv, `/api/sessions/${b}/messages`);
      const res = hist.body[2].content[0];
      assert.equal(res.is_error, true, JSON.stringify(hist.body));
      assert.match(res.content[0].text, /max_tool_processes/);
      writeFileSync(gate, '');
      const done = await first;
      assert.equal(done.status, 200, done.text);
      const ha = await get(srv, `/api/sessions/${a}/messages`);
      assert.match(ha.body[2].content[0].content[0].text, /released/);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('tool_timeout and tool_output_cap reach the tools: a long command is killed, a loud one cut', async () => {
    await fake.reset();
    await fake.script([
      { tool_calls: [
        { id: 'call_slow', name: 'developer__shell', arguments: { command: 'echo started; sleep 30' } },
        { id: 'call_loud', name: 'developer__shell', arguments: { command: 'head -c 100000 /dev/zero | tr "\\0" x' } },
      ] },
      { text: 'ok' },
    ]);
    const srv = await startServer({ env: providerEnv(fake, { GOOSE_TOOL_TIMEOUT: 1, GOOSE_TOOL_OUTPUT_CAP: 2048 }) });
    try {
      const id = await newSession(srv, tempDir('goosed-core-cwd-'));
      const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'go' });
      assert.equal(r.status, 200, r.text);
      const [slow, loud] = (await get(srv, `/api/sessions/${id}/messages`)).body[2].content;
      assert.equal(slow.is_error, true);
      assert.match(slow.content[0].text, /timed out after 1 s/);
      assert.match(slow.content[0].text, /started/);
      const out = loud.content[0].text;
      assert.ok(out.length < 8192, `a 100,000-byte output came back as ${out.length} bytes`);
      assert.match(out, /x{100}/);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('max_watchers_per_session: one watcher too many gets 429 with Retry-After', async () => {
    const srv = await startServer({ env: { GOOSE_MAX_WATCHERS_PER_SESSION: 1 } });
    try {
      const id = await newSession(srv, tempDir('goosed-core-cwd-'));
      const ctl = new AbortController();
      const first = await fetch(`${srv.url}/api/sessions/${id}/events`, { signal: ctl.signal });
      assert.equal(first.status, 200);
      const r = await get(srv, `/api/sessions/${id}/events`);
      assertError(r, 429, 'too_many_watchers', /max_watchers_per_session/);
      assert.ok(Number(r.headers.get('retry-after')) > 0);
      ctl.abort();
      await first.body?.cancel().catch(() => {});
      // once the server has seen the first watcher go, its place is free again
      let again;
      await until(async () => {
        again = await fetch(`${srv.url}/api/sessions/${id}/events`);
        if (again.status === 200) return true;
        await again.text();
        return false;
      }, 45_000, 'the watcher\'s place to be freed (a suspended stream looks for its client at each keep-alive, every 15 s)');
      await again.body.cancel();
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('context_limit: a conversation over it is refused with 413 context_too_long, and nothing is stored', async () => {
    const srv = await startServer({ env: providerEnv(fake, { GOOSE_CONTEXT_LIMIT: 1000 }) });
    try {
      const id = await newSession(srv, tempDir('goosed-core-cwd-'));
      const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'x'.repeat(6000) });
      assertError(r, 413, 'context_too_long', /context limit of 1000/);
      const hist = await get(srv, `/api/sessions/${id}/messages`);
      assert.deepEqual(hist.body, []);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('a session deleted during its reply ends the reply at once with session_gone', async () => {
    await fake.reset();
    await fake.script([{ text: 'late answer', stall_ms: 30_000 }]);
    const srv = await startServer({ env: providerEnv(fake) });
    try {
      const id = await newSession(srv, tempDir('goosed-core-cwd-'));
      const reply = request(srv, 'POST', `/api/sessions/${id}/messages`, { json: { content: 'hi' }, headers: { Accept: 'text/event-stream' } });
      await until(async () => (await fake.requests()).length === 1, 10_000, 'the reply to reach the provider');
      assert.equal((await del(srv, `/api/sessions/${id}`)).status, 204);
      const r = await reply;
      const events = parseSSE(r.text);
      const last = events.at(-1);
      assert.equal(last.event, 'error');
      assert.equal(JSON.parse(last.data).code, 'session_gone');
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('libcurl missing: replies still work (the provider requests do not use it)', async () => {
    const libdir = tempDir('goosed-core-nocurl-');
    execFileSync('cc', ['-shared', '-fPIC', '-o', path.join(libdir, 'libcurl.so.4'), '-x', 'c', '/dev/null']);
    const srv = await startServer({ env: providerEnv(fake, { LD_LIBRARY_PATH: libdir }) });
    try {
      const id = await newSession(srv, tempDir('goosed-core-cwd-'));
      await fake.script([{ text: 'no libcurl needed' }]);
      const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'hi' });
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, /no libcurl needed/);
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('a long history does not stall other sessions', () => {
  let fake;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
  });
  after(() => fake.stop());

  it('while a 40 MB history loads, another session\'s WebSocket keeps answering', async () => {
    const home = tempDir('goosed-core-big-');
    const dir = tempDir('goosed-core-cwd-');
    let srv = await startServer({ home, env: providerEnv(fake) });
    const big = await newSession(srv, dir);
    const other = await newSession(srv, dir);
    await stopAndCheck(srv);
    // 5,000 messages of 8 KB each, written straight into goosed's database.
    const db = path.join(home, '.local', 'share', 'goose', 'sessions', 'goosed.db');
    execFileSync('sqlite3', [db], {
      input: `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
INSERT INTO messages(id, session_id, seq, role, content, created_us, input_tokens, output_tokens)
SELECT printf('m-%05d', i), '${big}', i, CASE i % 2 WHEN 1 THEN 'user' ELSE 'assistant' END,
  '[{"type":"text","text":"' || replace(hex(zeroblob(4000)), '0', 'a') || '"}]', 1700000000000000 + i, 0, 0 FROM n;
UPDATE sessions SET message_count = 5000 WHERE id = '${big}';\n`,
    });
    srv = await startServer({ home, env: providerEnv(fake) });
    try {
      const { ws } = await connect(srv, `/api/sessions/${other}/stream`);
      // The message goes over a WebSocket too, as in the issue: once, its history was read on
      // the one thread that serves every WebSocket.
      const { ws: bigWs } = await connect(srv, `/api/sessions/${big}/stream`);
      let done = false;
      bigWs.sendJSON({ type: 'message', content: 'and one more' });
      const reply = bigWs.until('message_complete').finally(() => { done = true; });
      const rtts = [];
      while (!done) {
        const t0 = process.hrtime.bigint();
        ws.sendJSON({ type: 'cancel' });
        const m = await ws.json();
        rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
        assert.equal(m.code, 'no_reply_running');
        // A probe every 5 ms (back to back, the probing alone would keep a core busy): a stall
        // of the WebSocket thread of a fraction of the load still catches several in flight.
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const frames = await reply;
      // 40 MB is about 10M tokens: over the default context limit, found once it is loaded; the
      // conversation is then summarized first (what is sent for the summary is bounded by the
      // limit, not by the history's size) and the reply goes on.
      const compacted = frames.find((f) => f.type === 'context_compacted');
      assert.ok(compacted, JSON.stringify(frames.map((f) => f.type)));
      assert.equal(compacted.summarized_messages, 5000);
      assert.ok(compacted.tokens_after < compacted.context_limit, JSON.stringify(compacted));
      const asked = (await fake.requests()).at(-2).body;
      assert.ok(JSON.stringify(asked).length < 128000 * 4, 'the request for the summary fits the context limit');
      assert.match(JSON.stringify(asked), /\[\.\.\. \d{4} messages left out here \.\.\.\]/, 'most are left out of it');
      // Were the thread that serves every WebSocket busy with the history (it once took 1,974 ms
      // there), the first probe would wait for the whole load and the loop would end after one or
      // two. Several answered probes show the thread free while the history loads; how long each
      // took is reported, not asserted (speed is the benchmarks' business, not a test's).
      assert.ok(rtts.length >= 3, `only ${rtts.length} probes were answered while the history loaded`);
      console.log(`# ${rtts.length} WebSocket probes while a 40 MB history loaded: max ${Math.max(...rtts).toFixed(1)} ms`);
      await bigWs.close();
      await ws.close();
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('shutting down', () => {
  it('a message sent while goosed stops gets 503 shutting_down; the running reply finishes', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const srv = await startServer({ env: providerEnv(fake) });
    try {
      await fake.script([{ text: 'finished anyway', stall_ms: 2000 }]);
      const dir = tempDir('goosed-core-cwd-');
      const a = await newSession(srv, dir);
      const b = await newSession(srv, dir);
      // A kept-alive connection, opened before the stop (a stopping server accepts no new ones).
      const sock = net.connect({ host: srv.connectHost, port: srv.port });
      await once(sock, 'connect');
      let got = '';
      sock.setEncoding('latin1');
      sock.on('data', (d) => { got += d; });
      const answer = async (re) => until(() => re.test(got), 10_000, `an answer matching ${re}`);
      sock.write(`GET /status HTTP/1.1\r\nHost: ${srv.connectHost}\r\n\r\n`);
      await answer(/\r\n\r\nok$/);
      got = '';
      const running = post(srv, `/api/sessions/${a}/messages`, { content: 'take your time' });
      await until(async () => (await fake.requests()).length === 1, 10_000, 'the reply to reach the provider');
      const from = srv.log().length;
      srv.proc.kill('SIGTERM');
      await srv.waitForLog(/SIGTERM received/, { from });
      const body = JSON.stringify({ content: 'one more' });
      sock.write(`POST /api/sessions/${b}/messages HTTP/1.1\r\nHost: ${srv.connectHost}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      await answer(/\r\n\r\n\{.*\}$/s);
      assert.match(got, /^HTTP\/1\.1 503 /);
      assert.match(got, /\r\nRetry-After: \d+\r\n/i);
      const json = JSON.parse(got.slice(got.indexOf('\r\n\r\n') + 4));
      assert.equal(json.code, 'shutting_down');
      sock.destroy();
      const r = await running;
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.content, 'finished anyway');
    } finally {
      await stopAndCheck(srv);
      await fake.stop();
    }
  });
});
