// The goose client commands against a real goosed with the fake provider: session
// list/show/rm/export/import, run streaming text and a tool call, Ctrl-C cancelling a stalled
// reply, tool confirmations without a terminal, extension list/add/enable/disable/remove, exit
// codes, authentication errors that never print the credentials, and --json that parses.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { startServer, stopAndCheck, tempDir, assertCleanLog, GOOSED_BIN } from './lib/server.mjs';
import { get, post, UUID_V7 } from './lib/http.mjs';
import { recordOutput, recordSecretEnv } from './lib/record.mjs';
import { addUser } from './lib/users.mjs';
import { startFake } from '../fakes/lib.mjs';

const GOOSE = path.join(path.dirname(GOOSED_BIN), 'goose');
const KEY = 'sk-goose-remote-test';
const SECRET = 'goose-remote-secret-key-0123456789';

const providerEnv = (fake, extra = {}) => ({ GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, ...extra });

/** Starts goose with args; env is added to a minimal one (GOOSE_SERVER_URL from srv). Resolves
 *  {code, signal, stdout, stderr} when it exits. onStdout(all so far, proc) sees output as it comes. */
function goose(srv, args, { env = {}, cwd, input, onStdout, onStderr, stdoutFd } = {}) {
  const full = { PATH: process.env.PATH, HOME: cwd ?? tempDir('goose-cli-home-'), ...(srv ? { GOOSE_SERVER_URL: srv.url } : {}), ...env };
  for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) if (process.env[k]) full[k] = process.env[k];
  for (const [k, v] of Object.entries(full)) if (v === undefined) delete full[k];
  recordSecretEnv(env);
  const rec = recordOutput('goose');
  return new Promise((resolve) => {
    const proc = spawn(GOOSE, args, { cwd: cwd ?? full.HOME, env: full, stdio: ['pipe', stdoutFd ?? 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    proc.stderr.setEncoding('utf8');
    if (proc.stdout) {
      proc.stdout.setEncoding('utf8');
      proc.stdout.on('data', (d) => { stdout += d; rec.stdout(d); if (onStdout) onStdout(stdout, proc); });
    }
    proc.stderr.on('data', (d) => { stderr += d; rec.stderr(d); if (onStderr) onStderr(stderr, proc); });
    proc.on('close', (code, signal) => {
      assertCleanLog(stderr, `goose ${args.join(' ')}`); // no sanitizer report (make check-asan)
      resolve({ code, signal, stdout, stderr });
    });
    if (input !== undefined) proc.stdin.end(input);
    else proc.stdin.end();
  });
}

const ok = (r) => assert.equal(r.code, 0, `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
const jsonLines = (text) => text.trim().split('\n').map((l) => JSON.parse(l));

describe('goose: usage and a missing server', () => {
  it('each command has --help (exit 0), and a usage error exits 2', async () => {
    for (const cmd of [['session'], ['run'], ['extension']]) {
      const r = await goose(null, [...cmd, '--help']);
      ok(r);
      assert.match(r.stdout, /usage: goose/);
      assert.match(r.stdout, /GOOSE_SERVER__SECRET_KEY/);
      assert.match(r.stdout, /Exit status/);
    }
    const run = await goose(null, ['run', '--help']);
    assert.match(run.stdout, /0 the reply ended normally \(stop reason end_turn\); 1/);
    for (const bad of [['run'], ['run', '-t'], ['run', '-t', 'x', '--nope'], ['session', 'frobnicate'], ['session', 'show'], ['session', 'rm', 'a', 'b'], ['extension'], ['extension', 'add', 'x'], ['extension', 'enable'], ['extension', 'list', 'extra'], ['run', '-t', 'x', '--approve-all', '--deny-all']]) {
      const r = await goose(null, bad);
      assert.equal(r.code, 2, `${bad.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.length > 0);
    }
  });

  it("a server whose 200 is not goosed's answer: exit 1, saying so, never an empty list", async () => {
    const bodies = ['{"sessions": [ {"id": ', '{"sessions":"nope","next_cursor":5}', '[1,2]', 'plain text'];
    for (const body of bodies) {
      const other = http.createServer((req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(body);
      });
      await new Promise((resolve) => other.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${other.address().port}`;
      try {
        for (const args of [['session', 'list'], ['session', 'show', 's1'], ['extension', 'list'], ['session', 'list', '--json']]) {
          const r = await goose(null, args, { env: { GOOSE_SERVER_URL: url } });
          if (body === '[1,2]' && args[0] === 'extension') continue; // an array of extensions: rows of ?
          assert.equal(r.code, 1, `${body} / ${args.join(' ')}: ${r.stdout}${r.stderr}`);
          assert.match(r.stderr, /answered with something that is not (JSON|a page of sessions|a session and its messages|a list of extensions) \(is it a goosed\?\)/);
          assert.doesNotMatch(r.stdout, /no sessions|no extensions/);
        }
      } finally {
        await new Promise((resolve) => other.close(resolve));
      }
    }
  });

  it('no server running: exit 1, saying so with the URL', async () => {
    const url = 'http://127.0.0.1:9'; // discard: nothing listens there
    for (const args of [['session', 'list'], ['run', '-t', 'hi'], ['extension', 'list']]) {
      const r = await goose(null, args, { env: { GOOSE_SERVER_URL: url } });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /no server is running at http:\/\/127\.0\.0\.1:9/);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    const viaFlag = await goose(null, ['session', 'list', '--url', url]);
    assert.match(viaFlag.stderr, /no server is running at http:\/\/127\.0\.0\.1:9/);
    const bad = await goose(null, ['session', 'list', '--url', 'ftp://x']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /http:\/\/ or https:\/\//);
  });
});

describe('goose session and run', () => {
  let fake, srv, dir;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    srv = await startServer({ env: providerEnv(fake) });
    dir = tempDir('goose-cli-work-');
  });
  after(async () => {
    try { await stopAndCheck(srv); } finally { await fake.stop(); }
  });

  it('run streams text and a tool call, makes a session in the current directory, exits 0', async () => {
    await fake.script([
      { text: 'Let me look.', tool_calls: [{ id: 'call_1', name: 'developer__shell', arguments: { command: 'echo hi-from-the-tool' } }] },
      { text: 'All done here.', chunks: ['All ', 'done ', 'here.'] },
    ]);
    const r = await goose(srv, ['run', '-t', 'what is here?'], { cwd: dir });
    ok(r);
    assert.match(r.stdout, /^Let me look\.\n─── shell\(command: echo hi-from-the-tool\) ───\n  exit status: 0\n  stdout:\n  hi-from-the-tool\n[^]*All done here\.\n$/);
    const m = r.stderr.match(/session ([0-9a-f-]{36}) in (\S+)/);
    assert.ok(m, r.stderr);
    assert.equal(m[2], dir);
    const s = await get(srv, `/api/sessions/${m[1]}`);
    assert.equal(s.body.working_dir, dir);
    assert.equal(s.body.message_count, 4);
    // the model got the user's text
    const sent = await fake.requests('openai');
    assert.equal(sent.at(-2).body.messages.at(-1).content, 'what is here?');
  });

  it('run --json: one JSON object per line, the session first; --session continues it', async () => {
    await fake.script([{ tool_calls: [{ id: 'call_j', name: 'developer__shell', arguments: { command: 'true' } }] }, { text: 'json reply' }]);
    const r = await goose(srv, ['run', '--json', '-t', 'go'], { cwd: dir });
    ok(r);
    const lines = jsonLines(r.stdout);
    assert.equal(lines[0].event, 'session');
    assert.match(lines[0].data.id, UUID_V7);
    const names = lines.map((l) => l.event);
    for (const want of ['tool_call', 'tool_result', 'message_chunk', 'message_complete']) assert.ok(names.includes(want), names.join());
    assert.equal(lines.at(-1).data.stop_reason, 'end_turn');
    assert.equal(lines.find((l) => l.event === 'tool_call').data.id, 'call_j');
    const sid = lines[0].data.id;
    await fake.script([{ text: 'second' }]);
    const again = await goose(srv, ['run', '--session', sid, '--json', '-t', 'more'], { cwd: dir });
    ok(again);
    assert.ok(jsonLines(again.stdout).every((l) => l.event !== 'session'));
    assert.equal((await get(srv, `/api/sessions/${sid}`)).body.message_count, 6);
  });

  it('run -i FILE and -i - read the message', async () => {
    writeFileSync(path.join(dir, 'ask.md'), 'from a file');
    await fake.script([{ text: 'a' }, { text: 'b' }]);
    ok(await goose(srv, ['run', '-i', 'ask.md'], { cwd: dir }));
    ok(await goose(srv, ['run', '-i', '-'], { cwd: dir, input: 'from stdin' }));
    const sent = (await fake.requests('openai')).slice(-2).map((q) => q.body.messages.at(-1).content);
    assert.deepEqual(sent, ['from a file', 'from stdin']);
  });

  it('a message that is not UTF-8: exit 2 before anything is made on the server', async () => {
    writeFileSync(path.join(dir, 'bad.md'), Buffer.from([0x61, 0xff, 0x62]));
    const before = (await get(srv, '/api/sessions?limit=1000')).body.length;
    const r = await goose(srv, ['run', '-i', 'bad.md'], { cwd: dir });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /the message is not valid UTF-8/);
    assert.doesNotMatch(r.stderr, /session [0-9a-f-]{36}/);
    assert.equal((await get(srv, '/api/sessions?limit=1000')).body.length, before, 'an empty session was left behind');
  });

  it('a message the server refuses (over max_body_size): exit 1 with its reason, no session left behind', async () => {
    writeFileSync(path.join(dir, 'huge.md'), 'x'.repeat(11 * 1024 * 1024));
    const before = (await get(srv, '/api/sessions?limit=1000')).body.length;
    const r = await goose(srv, ['run', '-i', 'huge.md'], { cwd: dir });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /413/);
    const m = r.stderr.match(/session ([0-9a-f-]{36}) removed: the server refused its first message/);
    assert.ok(m, r.stderr);
    assert.equal((await get(srv, `/api/sessions/${m[1]}`)).status, 404);
    assert.equal((await get(srv, '/api/sessions?limit=1000')).body.length, before, 'an empty session was left behind');
  });

  it("text from the model, a tool's name or the server cannot drive the terminal: its controls come out as \\xHH", async () => {
    await fake.script([{ text: 'a\u001b]0;pwned\u0007b\u001b[2Jc\u009bd\ttab\nline' }]);
    const r = await goose(srv, ['run', '-t', 'hi'], { cwd: dir });
    ok(r);
    assert.ok(r.stdout.includes('a\\x1B]0;pwned\\x07b\\x1B[2Jc\\xC2\\x9Bd\ttab\nline'), JSON.stringify(r.stdout));
    assert.doesNotMatch(r.stdout + r.stderr, /[\u001b\u0007\u009b]/);
    // a tool call's argument names and values, and its result, shown on one line each
    await fake.script([
      { tool_calls: [{ name: 'developer__shell', arguments: { 'k\u001b[2J': 'v\u009bx\u007f', command: "printf 'r\\302\\233s\\033[8m'" } }] },
      { text: 'done' },
    ]);
    const t = await goose(srv, ['run', '-t', 'hi', '--approve-all'], { cwd: dir });
    ok(t);
    assert.ok(t.stdout.includes('k\\x1B[2J: v\\xC2\\x9Bx\\x7F'), JSON.stringify(t.stdout));
    assert.doesNotMatch(t.stdout + t.stderr, /[\u001b\u0007\u009b\u007f]/);
    await fake.script([{ error: { status: 400, message: 'refused \u001b[31mred\u001b[0m' } }]);
    const e = await goose(srv, ['run', '-t', 'hi'], { cwd: dir });
    assert.equal(e.code, 1);
    assert.match(e.stderr, /refused \\x1B\[31mred\\x1B\[0m/);
    assert.doesNotMatch(e.stderr, /\u001b/);
  });

  it('session show, list, import and fork: a name, a directory or a text with controls cannot drive the terminal either', async () => {
    const ESC = '\u001b';
    const name = `proj${ESC}]0;pwned-title\u0007${ESC}[2J\u009bRED`;
    const wd = path.join(dir, `wd${ESC}[8m`);
    mkdirSync(wd, { recursive: true });
    const docFile = path.join(dir, 'controls.json');
    writeFileSync(docFile, JSON.stringify({ format: 'goosed-session', version: 1, session: { name, working_dir: wd },
      messages: [{ role: 'user', content: [{ type: 'text', text: `hi${ESC}[31m` }] }] }));
    const im = await goose(srv, ['session', 'import', docFile]);
    ok(im);
    const id = im.stdout.match(/^imported session ([0-9a-f-]{36}) /)[1];
    await fake.script([{ text: `model says ${ESC}]52;c;ZWNobyBwd25lZA==\u0007 and ${ESC}[8mhidden${ESC}[0m` }]);
    assert.equal((await post(srv, `/api/sessions/${id}/messages`, { content: 'x' })).status, 200);
    const show = await goose(srv, ['session', 'show', id]);
    ok(show);
    const list = await goose(srv, ['session', 'list']);
    ok(list);
    const fork = await goose(srv, ['session', 'fork', id]);
    ok(fork);
    for (const r of [im, show, list, fork]) assert.doesNotMatch(r.stdout + r.stderr, /[\u001b\u0007\u009b]/, JSON.stringify(r.stdout));
    assert.ok(show.stdout.includes('name       proj\\x1B]0;pwned-title\\x07\\x1B[2J\\xC2\\x9BRED\n'), show.stdout);
    assert.ok(show.stdout.includes(`directory  ${dir}/wd\\x1B[8m\n`), show.stdout);
    assert.ok(show.stdout.includes('hi\\x1B[31m\n'), show.stdout);
    assert.ok(show.stdout.includes('model says \\x1B]52;c;ZWNobyBwd25lZA==\\x07 and \\x1B[8mhidden\\x1B[0m\n'), show.stdout);
    assert.ok(list.stdout.includes(`${dir}/wd\\x1B[8m\n`), list.stdout);
    assert.match(im.stdout, /"proj\\x1B\]0;pwned-title/);
    assert.match(fork.stdout, /"proj\\x1B\]0;pwned-title/);
  });

  it('output that cannot be written (a full disk): exit 1, saying so, never 0', async () => {
    const id = (await post(srv, '/api/sessions', { name: 'to /dev/full', working_directory: dir })).body.id;
    const full = openSync('/dev/full', 'w');
    try {
      const r = await goose(srv, ['session', 'export', id], { cwd: dir, stdoutFd: full });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^goose: cannot write the output: No space left on device$/m);
    } finally {
      closeSync(full);
    }
  });

  it('a reply that ends in an error exits 1 and says why', async () => {
    await fake.script([{ error: { status: 400, message: 'the fake refuses this' } }]);
    const r = await goose(srv, ['run', '-t', 'fail please'], { cwd: dir });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /fake refuses this|error/);
  });

  it('a reply stream that breaks is taken up again after its last event (Last-Event-ID): the text whole, once', async () => {
    // A proxy that cuts the reply's stream once its first chunk has gone through, as a proxy's
    // timeout or a dropped connection would; every other connection passes.
    let cut = 0;
    const proxy = net.createServer((down) => {
      const up = net.connect(srv.port, '127.0.0.1');
      let head = '', seen = '';
      down.on('data', (d) => { head += d; up.write(d); });
      up.on('data', (d) => {
        seen += d;
        if (!cut && /messages\/stream/.test(head) && /event: message_chunk/.test(seen)) {
          cut++;
          down.write(d, () => { down.destroy(); up.destroy(); });
          return;
        }
        down.write(d);
      });
      const end = () => { down.destroy(); up.destroy(); };
      down.on('error', end);
      up.on('error', end);
      down.on('close', end);
      up.on('close', end);
    });
    await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      await fake.script([{ text: 'one two three', chunks: ['one ', 'two ', 'three'], interval_ms: 400 }]);
      const r = await goose(null, ['run', '-t', 'count'], { cwd: dir, env: { GOOSE_SERVER_URL: `http://127.0.0.1:${proxy.address().port}` } });
      ok(r);
      assert.equal(cut, 1, 'the stream was cut');
      assert.equal(r.stdout, 'one two three\n');
      assert.match(r.stderr, /the connection dropped; taking the reply up again after event \d+/);
    } finally {
      proxy.close();
    }
  });

  it('Ctrl-C (SIGINT) during a stalled reply cancels it on the server: exit 1, "cancelled"', async () => {
    await fake.script([{ text: 'first part and the rest', chunks: ['first part', ' and the rest'], stall_after: 1, stall_ms: 60_000 }]);
    let sent = false;
    const r = await goose(srv, ['run', '-t', 'be slow'], {
      cwd: dir,
      onStdout: (out, proc) => { if (!sent && out.includes('first part')) { sent = true; proc.kill('SIGINT'); } },
    });
    assert.ok(sent, 'the first chunk arrived before the reply ended (streamed)');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /cancelling the reply/);
    assert.match(r.stderr, /the reply was cancelled/);
    assert.doesNotMatch(r.stdout, /the rest/);
    const sid = r.stderr.match(/session ([0-9a-f-]{36})/)[1];
    // the reply is over on the server: a new message is taken at once (not 409)
    await fake.script([{ text: 'after' }]);
    const next = await post(srv, `/api/sessions/${sid}/messages`, { content: 'again' });
    assert.equal(next.status, 200, next.text);
  });

  it('a second Ctrl-C stops waiting even when the server never answers the cancel', { timeout: 30_000 }, async () => {
    // a server that streams a reply forever and never answers POST .../cancel
    const stuck = http.createServer((req, res) => {
      if (req.method === 'POST' && req.url === '/api/sessions') {
        res.writeHead(201, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ id: 's1', name: 'x', working_dir: '/tmp', working_directory: '/tmp', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z', message_count: 0 }));
        return;
      }
      if (req.url.endsWith('/cancel')) return; // never answered
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      const t = setInterval(() => res.write('event: message_chunk\ndata: {"type":"text","text":"w "}\n\n'), 20);
      res.on('close', () => clearInterval(t));
    });
    await new Promise((resolve) => stuck.listen(0, '127.0.0.1', resolve));
    try {
      let stage = 0;
      let errSeen = '';
      const r = await goose(null, ['run', '-t', 'hi'], {
        env: { GOOSE_SERVER_URL: `http://127.0.0.1:${stuck.address().port}` },
        onStdout: (out, proc) => {
          if (stage === 0 && out.includes('w ')) { stage = 1; proc.kill('SIGINT'); }
        },
        onStderr: (err, proc) => {
          errSeen = err;
          if (stage === 1 && err.includes('cancelling the reply')) { stage = 2; proc.kill('SIGINT'); }
        },
      });
      assert.equal(stage, 2, errSeen);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /stopped waiting for the reply/);
    } finally {
      stuck.closeAllConnections();
      await new Promise((resolve) => stuck.close(resolve));
    }
  });

  it('the chat reads its lines from a pipe too: each line a message, end of input leaves (exit 0)', async () => {
    await fake.script([{ text: 'First answer.' }, { text: 'Second answer.' }]);
    const r = await goose(srv, ['session', '-n', 'Piped'], { cwd: dir, input: 'one\n\n/help\ntwo\n' });
    ok(r);
    assert.ok(!existsSync(path.join(dir, '.local/state/goose/chat_history')), 'without a terminal no history is kept');
    assert.match(r.stdout, /^starting session ([0-9a-f-]{36}) in /);
    assert.match(r.stdout, /\( O\)> First answer\.\n\( O\)> \( O\)> Type a message[^]*\( O\)> Second answer\.\n\( O\)> \n$/);
    const sid = r.stdout.match(/starting session ([0-9a-f-]{36})/)[1];
    const s = (await get(srv, `/api/sessions/${sid}`)).body;
    assert.equal(s.name, 'Piped');
    assert.equal(s.message_count, 4);
    const resumed = await goose(srv, ['session', '--resume'], { cwd: dir, input: '/exit\n' });
    ok(resumed);
    assert.match(resumed.stdout, new RegExp(`^resuming session ${sid} "Piped" \\(4 messages\\)`));
  });

  it('the chat takes a message of several lines: a line ending with a backslash goes on on the next', async () => {
    await fake.script([{ text: 'Got both lines.' }, { text: 'And the last.' }, { text: 'Bye.' }]);
    const r = await goose(srv, ['session'], { cwd: dir, input: 'line one\\\nline two\\\n  indented three\nsingle\nends at the end\\' });
    ok(r);
    assert.match(r.stdout, /\( O\)>    \.\.    \.\. Got both lines\.\n\( O\)> And the last\.\n/);
    const sent = (await fake.requests('openai')).slice(-3).map((q) => q.body.messages.filter((m) => m.role === 'user').at(-1).content);
    assert.deepEqual(sent, ['line one\nline two\n  indented three', 'single', 'ends at the end']);
    const sid = r.stdout.match(/starting session ([0-9a-f-]{36})/)[1];
    const msgs = (await get(srv, `/api/sessions/${sid}/messages`)).body;
    assert.equal(msgs.at(-2).content[0].text, 'ends at the end', 'the end of input sends what was typed');
  });

  it("session import reads an older Goose's .jsonl session file (metadata, then a message a line)", async () => {
    const file = path.join(dir, 'old-goose-session.jsonl');
    writeFileSync(file, [
      JSON.stringify({ working_dir: dir, description: 'old goose chat', schedule_id: null, message_count: 2, total_tokens: 30 }),
      JSON.stringify({ role: 'user', created: 1700000000, content: [{ type: 'text', text: 'hi old goose' }] }),
      '',
      JSON.stringify({ role: 'assistant', created: 1700000005, content: [{ type: 'text', text: 'hello from the past' }] }),
    ].join('\n') + '\n');
    const r = await goose(srv, ['session', 'import', file]);
    ok(r);
    const m = r.stdout.match(/^imported session ([0-9a-f-]{36}) "old goose chat" \(2 messages\) in (.*)\n$/);
    assert.ok(m, r.stdout);
    assert.equal(m[2], dir);
    const msgs = (await get(srv, `/api/sessions/${m[1]}/messages`)).body;
    assert.deepEqual(msgs.map((x) => [x.role, x.content[0].text, x.created_at]),
      [['user', 'hi old goose', '2023-11-14T22:13:20Z'], ['assistant', 'hello from the past', '2023-11-14T22:13:25Z']]);
    writeFileSync(file, `${JSON.stringify({ working_dir: dir })}\n{"role": "user", "content": [\n`);
    const bad = await goose(srv, ['session', 'import', file]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /old-goose-session\.jsonl: line 2 is not a JSON object/);
    // a NUL byte: refused naming its line, never the lines after it dropped
    const before = (await get(srv, '/api/sessions?limit=1000')).body.length;
    const lines = [JSON.stringify({ working_dir: dir, description: 'nul' }),
      ...['one', 'two', 'three', 'four'].map((t, i) => JSON.stringify({ role: i % 2 ? 'assistant' : 'user', content: [{ type: 'text', text: t }] }))];
    writeFileSync(file, Buffer.concat([Buffer.from(`${lines.slice(0, 3).join('\n')}\n`), Buffer.from([0]), Buffer.from(`${lines.slice(3).join('\n')}\n`)]));
    const nul = await goose(srv, ['session', 'import', file]);
    assert.equal(nul.code, 1, nul.stdout);
    assert.match(nul.stderr, /old-goose-session\.jsonl: line 4 holds a NUL byte \(byte \d+ of the file\)/);
    const jsonFile = path.join(dir, 'nul.json');
    writeFileSync(jsonFile, Buffer.concat([Buffer.from(JSON.stringify({ format: 'goosed-session', version: 1, session: { name: 'n', working_dir: dir }, messages: [] })), Buffer.from('\n\0')]));
    const nul2 = await goose(srv, ['session', 'import', jsonFile]);
    assert.equal(nul2.code, 1, nul2.stdout);
    assert.match(nul2.stderr, /nul\.json: line 2 holds a NUL byte/);
    assert.equal((await get(srv, '/api/sessions?limit=1000')).body.length, before, 'nothing was imported');
    assert.equal((await goose(srv, ['session', 'rm', m[1]])).code, 0);
  });

  it('session list, show, export, import and rm: a round trip', async () => {
    await fake.script([{ tool_calls: [{ id: 'call_s', name: 'developer__shell', arguments: { command: 'echo round-trip' } }] }, { text: 'Round trip answer.' }]);
    const run = await goose(srv, ['run', '-n', 'Round trip', '-t', 'start the trip'], { cwd: dir });
    ok(run);
    const sid = run.stderr.match(/session ([0-9a-f-]{36})/)[1];

    const list = await goose(srv, ['session', 'list']);
    ok(list);
    assert.match(list.stdout, /^ID\s+UPDATED\s+MESSAGES\s+NAME\s+DIRECTORY\n/);
    assert.match(list.stdout, new RegExp(`^${sid}\\s+\\S+\\s+4\\s+Round trip\\s+${dir}$`, 'm'));
    const listJson = await goose(srv, ['session', 'list', '--json']);
    ok(listJson);
    assert.deepEqual(JSON.parse(listJson.stdout), (await get(srv, '/api/sessions')).body);

    // a page at a time: the table says more follow and how to see them; --after pages on
    for (let i = 0; i < 2; i++) assert.equal((await post(srv, '/api/sessions', { name: `pager ${i}` })).status, 201);
    const all = (await get(srv, '/api/sessions?limit=1000')).body.map((x) => x.id);
    const seen = [];
    let args = ['session', 'list', '--limit', '1'];
    for (let page = 0; page < 1000; page++) {
      const p = await goose(srv, args);
      ok(p);
      const ids = [...p.stdout.matchAll(/^([0-9a-f-]{36})\s/gm)].map((m) => m[1]);
      assert.equal(ids.length, 1, p.stdout);
      seen.push(...ids);
      const more = /more sessions follow: goose session list --limit 1 --after (\S+)$/m.exec(p.stderr);
      if (!more) break;
      args = ['session', 'list', '--limit', '1', '--after', more[1]];
    }
    assert.deepEqual(seen, all, 'every session once, newest first');
    const paged = JSON.parse((await goose(srv, ['session', 'list', '--limit', '2', '--after', '', '--json'])).stdout);
    assert.deepEqual(paged.sessions.map((x) => x.id), all.slice(0, 2));
    assert.equal(typeof paged.next_cursor, 'string');
    const bad = await goose(srv, ['session', 'list', '--after', 'nonsense']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /cursor/);

    // fork: the whole conversation, or up to one message; --at without fork is a usage error
    const msgs = (await get(srv, `/api/sessions/${sid}/messages`)).body;
    const whole = await goose(srv, ['session', 'fork', sid, '-n', 'Another way']);
    ok(whole);
    const fm = whole.stdout.match(/^forked session ([0-9a-f-]{36}) "Another way" \(4 messages\) from (\S+)\n$/);
    assert.ok(fm, whole.stdout);
    assert.equal(fm[2], sid);
    assert.deepEqual((await get(srv, `/api/sessions/${fm[1]}/messages`)).body.map((m) => m.content), msgs.map((m) => m.content));
    const cut = await goose(srv, ['session', 'fork', sid, '--at', msgs[0].id, '--json']);
    ok(cut);
    const forked = JSON.parse(cut.stdout);
    assert.equal(forked.message_count, 1);
    assert.deepEqual((await get(srv, `/api/sessions/${forked.id}/messages`)).body.map((m) => m.content), [msgs[0].content]);
    const noSuch = await goose(srv, ['session', 'fork', sid, '--at', '01234567-89ab-7def-8123-456789abcdef']);
    assert.equal(noSuch.code, 1);
    assert.match(noSuch.stderr, /message/);
    const misplaced = await goose(srv, ['session', 'show', sid, '--at', msgs[0].id]);
    assert.equal(misplaced.code, 2);
    assert.match(misplaced.stderr, /--at is for fork/);
    for (const f of [fm[1], forked.id]) assert.equal((await goose(srv, ['session', 'rm', f])).code, 0);

    const show = await goose(srv, ['session', 'show', sid]);
    ok(show);
    assert.match(show.stdout, new RegExp(`^session    ${sid}\nname       Round trip\ndirectory  ${dir}\n`));
    assert.match(show.stdout, /── user · [^\n]+ ──\nstart the trip\n/);
    assert.match(show.stdout, /─── shell\(command: echo round-trip\) ───\n  exit status: 0\n  stdout:\n  round-trip\n/);
    assert.match(show.stdout, /Round trip answer\./);
    const showJson = JSON.parse((await goose(srv, ['session', 'show', sid, '--json'])).stdout);
    assert.equal(showJson.session.id, sid);
    assert.equal(showJson.messages.length, 4);

    const file = path.join(dir, 'export.json');
    writeFileSync(file, 'an older file, readable by all', { mode: 0o644 });
    const exp = await goose(srv, ['session', 'export', sid, '-o', file]);
    ok(exp);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(doc.format, 'goosed-session');
    assert.equal(doc.messages.length, 4);
    const toStdout = await goose(srv, ['session', 'export', sid]);
    ok(toStdout);
    assert.equal(JSON.parse(toStdout.stdout).messages.length, 4);

    const imp = await goose(srv, ['session', 'import', file, '--json']);
    ok(imp);
    const made = JSON.parse(imp.stdout);
    assert.notEqual(made.id, sid);
    assert.equal(made.message_count, 4);
    const other = tempDir('goose-cli-import-');
    const imp2 = await goose(srv, ['session', 'import', '-', '--working-directory', other], { input: readFileSync(file) });
    ok(imp2);
    assert.match(imp2.stdout, new RegExp(`^imported session [0-9a-f-]{36} "Round trip" \\(4 messages\\) in ${other}\n$`));
    const a = (await get(srv, `/api/sessions/${sid}/messages`)).body.map((m) => m.content);
    const b = (await get(srv, `/api/sessions/${made.id}/messages`)).body.map((m) => m.content);
    assert.deepEqual(b, a);

    const rm = await goose(srv, ['session', 'rm', made.id]);
    ok(rm);
    assert.equal(rm.stdout, `removed session ${made.id}\n`);
    assert.equal((await get(srv, `/api/sessions/${made.id}`)).status, 404);
    const again = await goose(srv, ['session', 'rm', made.id]);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, `goose session: the server answered 404 Not Found: session '${made.id}' not found\n`);
    const missing = await goose(srv, ['session', 'show', 'no-such-session']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /404/);
    const badFile = await goose(srv, ['session', 'import', path.join(dir, 'nope.json')]);
    assert.equal(badFile.code, 1);
    writeFileSync(path.join(dir, 'bad.json'), '{"format": "something else"}');
    const refused = await goose(srv, ['session', 'import', path.join(dir, 'bad.json')]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /answered 400/);
  });
});

describe('goose run: tool confirmations without a terminal', () => {
  let fake, srv, dir;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    srv = await startServer({ env: providerEnv(fake, { GOOSE_MODE: 'approve' }) });
    dir = tempDir('goose-cli-approve-');
  });
  after(async () => {
    try { await stopAndCheck(srv); } finally { await fake.stop(); }
  });

  const touch = (id, f) => ({ tool_calls: [{ id, name: 'developer__shell', arguments: { command: `touch ${f}` } }] });

  it('denies (the model is told) unless --approve-all, which allows', async () => {
    await fake.script([touch('c_deny', 'denied.txt'), { text: 'not made' }]);
    const denied = await goose(srv, ['run', '-t', 'make it'], { cwd: dir });
    ok(denied);
    assert.match(denied.stderr, /denied developer__shell: no terminal to ask on/);
    assert.ok(!existsSync(path.join(dir, 'denied.txt')));
    const tools = (await fake.requests('openai')).at(-1).body.messages.filter((m) => m.role === 'tool');
    assert.match(JSON.stringify(tools.at(-1).content), /denied by the user/);

    await fake.script([touch('c_ok', 'allowed.txt'), { text: 'made' }]);
    ok(await goose(srv, ['run', '--approve-all', '-t', 'make it'], { cwd: dir }));
    assert.ok(existsSync(path.join(dir, 'allowed.txt')));
  });
});

describe('goose extension', () => {
  let srv, home;
  before(async () => {
    home = tempDir('goose-cli-ext-home-');
    const allow = path.join(home, 'allowlist.yaml');
    writeFileSync(allow, `extensions:\n  - id: ok\n    command: ${process.execPath} -e 1\n`);
    srv = await startServer({ home, env: { GOOSE_ALLOWLIST: allow } });
  });
  after(() => stopAndCheck(srv));

  it('add, list, disable, enable, remove; --json is the server\'s', async () => {
    const add = await goose(srv, ['extension', 'add', 'ok', '--timeout', '30', '--env', 'LEVEL=info', '--cmd', process.execPath, '-e', '1']);
    ok(add);
    assert.equal(add.stdout, 'added extension ok (stdio, enabled)\n');
    const x = (await get(srv, '/api/extensions')).body.extensions.find((e) => e.name === 'ok');
    assert.equal(x.config.cmd, process.execPath);
    assert.deepEqual(x.config.args, ['-e', '1']);
    assert.equal(x.config.timeout, 30);
    assert.deepEqual(x.config.envs, { LEVEL: '***' });

    const list = await goose(srv, ['extension', 'list']);
    ok(list);
    assert.match(list.stdout, /^NAME\s+TYPE\s+ENABLED\s+STATUS\s+TOOLS\s+COMMAND\/URL\n/);
    assert.match(list.stdout, new RegExp(`^ok\\s+stdio\\s+yes\\s+\\S+\\s+0\\s+${process.execPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} -e 1$`, 'm'));
    const listJson = await goose(srv, ['extension', 'list', '--json']);
    ok(listJson);
    assert.ok(JSON.parse(listJson.stdout).extensions.some((e) => e.name === 'ok'));

    ok(await goose(srv, ['extension', 'disable', 'ok']));
    assert.equal((await get(srv, '/api/extensions')).body.extensions.find((e) => e.name === 'ok').enabled, false);
    const en = await goose(srv, ['extension', 'enable', 'ok']);
    ok(en);
    assert.equal(en.stdout, 'enabled extension ok\n');
    assert.equal((await get(srv, '/api/extensions')).body.extensions.find((e) => e.name === 'ok').enabled, true);

    const http = await goose(srv, ['extension', 'add', 'remote', '--header', 'X-A=b', '--uri', 'http://127.0.0.1:9/mcp', '--json']);
    ok(http);
    assert.equal(JSON.parse(http.stdout).type, 'streamable_http');
    const raw = await goose(srv, ['extension', 'add', 'dev2', '--config', '{"type":"builtin","allow_shell":false}']);
    ok(raw);

    for (const n of ['ok', 'remote', 'dev2']) ok(await goose(srv, ['extension', 'remove', n]));
    assert.ok(!(await get(srv, '/api/extensions')).body.extensions.some((e) => ['ok', 'remote', 'dev2'].includes(e.name)));
    const gone = await goose(srv, ['extension', 'remove', 'ok']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /404/);
  });

  it('--session ID: one session\'s extensions: list, add, disable, enable, remove', async () => {
    const wd = tempDir('goose-cli-sext-');
    const made = await post(srv, '/api/sessions', { working_directory: wd });
    assert.equal(made.status, 201, made.text);
    const sid = made.body.id;
    const settings = async () => (await get(srv, `/api/sessions/${sid}/extensions`)).body.extensions;
    const add = await goose(srv, ['extension', 'add', 'ok', '--session', sid, '--cmd', process.execPath, '-e', '1']);
    ok(add);
    assert.equal(add.stdout, `added extension ok in session ${sid}\n`);
    assert.deepEqual((await settings()).find((e) => e.name === 'ok'), { name: 'ok', type: 'stdio', source: 'session', enabled: true });
    assert.ok(!(await get(srv, '/api/extensions')).body.extensions.some((e) => e.name === 'ok'), 'the server\'s own list is untouched');

    const list = await goose(srv, ['extension', 'list', '-s', sid]);
    ok(list);
    assert.match(list.stdout, /^mode: auto\nNAME\s+TYPE\s+ENABLED\s+SOURCE\s+STATUS\n/);
    assert.match(list.stdout, /^developer\s+builtin\s+yes\s+config\s+-$/m); // no reply yet
    assert.match(list.stdout, /^ok\s+stdio\s+yes\s+session\s+-$/m);
    assert.deepEqual(JSON.parse((await goose(srv, ['extension', 'list', '-s', sid, '--json'])).stdout).extensions, await settings());

    const off = await goose(srv, ['extension', 'disable', 'developer', '-s', sid]);
    ok(off);
    assert.equal(off.stdout, `turned off extension developer in session ${sid}\n`);
    assert.equal((await settings()).find((e) => e.name === 'developer').enabled, false);
    ok(await goose(srv, ['extension', 'enable', 'developer', '-s', sid]));
    assert.equal((await settings()).find((e) => e.name === 'developer').enabled, true);

    ok(await goose(srv, ['extension', 'remove', 'ok', '-s', sid]));
    assert.ok(!(await settings()).some((e) => e.name === 'ok'));
    const unknown = await goose(srv, ['extension', 'list', '-s', 'no-such-session']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /404/);
  });

  it('a 403 from the allowlist: one line with the server\'s reason, exit 1', async () => {
    const r = await goose(srv, ['extension', 'add', 'evil', '--cmd', '/bin/sh', '-c', 'true']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^goose extension: the server answered 403 Forbidden: .*allowlist.*\n$/);
  });
});

describe('goose: credentials', () => {
  let srv, token, roots;
  before(async () => {
    const home = tempDir('goose-cli-auth-home-');
    roots = tempDir('goose-cli-auth-roots-'); // where alice (not an admin) may work besides her workspace
    token = await addUser(home, 'alice');
    srv = await startServer({ home, env: { GOOSE_SERVER__SECRET_KEY: SECRET, GOOSE_ALLOWED_ROOTS: roots } });
  });
  after(() => stopAndCheck(srv));

  it('without credentials: 401 in one line with what to set, exit 1', async () => {
    const r = await goose(srv, ['session', 'list']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^goose session: the server answered 401 Unauthorized: .*\ngoose session: set GOOSE_SERVER_TOKEN .* or GOOSE_SERVER__SECRET_KEY/);
  });

  it('the secret key (X-Secret-Key) and a user token (Bearer) work; a wrong one is refused, never printed', async () => {
    ok(await goose(srv, ['session', 'list'], { env: { GOOSE_SERVER__SECRET_KEY: SECRET } }));
    const mine = await goose(srv, ['run', '-t', 'x', '--json'], { env: { GOOSE_SERVER_TOKEN: token }, cwd: mkdtempSync(path.join(roots, 'cwd-')) });
    // no provider is configured: the session is made, its message refused, the session removed
    assert.equal(mine.code, 1);
    assert.equal(jsonLines(mine.stdout)[0].event, 'session');
    assert.match(mine.stderr, /provider/);
    assert.match(mine.stderr, /session [0-9a-f-]{36} removed: the server refused its first message/);
    const made = await post(srv, '/api/sessions', { name: 'hers', working_directory: mkdtempSync(path.join(roots, 'cwd-')) }, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(made.status, 201, made.text);
    const ids = JSON.parse((await goose(srv, ['session', 'list', '--json'], { env: { GOOSE_SERVER_TOKEN: token } })).stdout).map((s) => s.id);
    assert.deepEqual(ids, [made.body.id]);

    const wrongKey = 'wrong-secret-key-abcdefghijkl';
    const wrongToken = 'gd_' + 'x'.repeat(43);
    for (const env of [{ GOOSE_SERVER__SECRET_KEY: wrongKey }, { GOOSE_SERVER_TOKEN: wrongToken }]) {
      const r = await goose(srv, ['session', 'list', '--verbose'], { env });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /401/);
      assert.match(r.stderr, /the one given was refused/);
      for (const s of [wrongKey, wrongToken, SECRET, token]) assert.ok(!r.stderr.includes(s) && !r.stdout.includes(s), 'a credential was printed');
    }
    const broken = await goose(srv, ['session', 'list'], { env: { GOOSE_SERVER_TOKEN: `${token}\nX-Other: 1` } });
    assert.equal(broken.code, 1);
    assert.equal(broken.stderr, 'goose session: GOOSE_SERVER_TOKEN holds a control character (a line break?); not sent\n');
    const verbose = await goose(srv, ['session', 'list', '-v'], { env: { GOOSE_SERVER__SECRET_KEY: SECRET } });
    ok(verbose);
    assert.match(verbose.stderr, /> GET http:\/\/[^ ]+\/api\/sessions/);
    assert.match(verbose.stderr, /X-Secret-Key: \(GOOSE_SERVER__SECRET_KEY, not shown\)/);
    assert.ok(!verbose.stderr.includes(SECRET));
  });
});

describe('goose: a user of a shared server, in a directory not theirs on it', () => {
  it('run makes the session in their workspace, saying so, instead of failing', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const home = tempDir('goose-cli-ws-home-');
    const token = await addUser(home, 'bob');
    const srv = await startServer({ home, env: providerEnv(fake, { GOOSE_SERVER__SECRET_KEY: SECRET }) });
    try {
      await fake.script([{ text: 'hello from the workspace' }]);
      const r = await goose(srv, ['run', '-t', 'hi', '--json'], { env: { GOOSE_SERVER_TOKEN: token }, cwd: tempDir('goose-cli-elsewhere-') });
      ok(r);
      assert.match(r.stderr, /this directory is not yours to use on the server: the session works in your workspace there/);
      assert.doesNotMatch(r.stderr, /answered 400/);
      const made = jsonLines(r.stdout)[0];
      assert.equal(made.event, 'session');
      const s = await get(srv, `/api/sessions/${made.data?.id ?? made.id}`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(s.status, 200, s.text);
      assert.ok(s.body.working_dir.startsWith(path.join(home, '.local/share/goose/workspaces/')), s.body.working_dir);
    } finally {
      await stopAndCheck(srv);
      await fake.stop();
    }
  });
});

describe('goose over https', () => {
  let srv;
  before(async () => {
    srv = await startServer({ env: { GOOSE_TLS_SELF_SIGNED: 'true' } });
  });
  after(() => stopAndCheck(srv));

  it('verifies the certificate: refused without its CA, trusted with --cacert or GOOSE_SERVER_CACERT', async () => {
    assert.match(srv.url, /^https:/);
    const ca = path.join(srv.home, '.local', 'share', 'goose', 'sessions', 'tls-cert.pem');
    assert.ok(existsSync(ca));
    const refused = await goose(srv, ['session', 'list']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^goose session: the TLS connection to https:\/\/127\.0\.0\.1:\d+ failed .*--cacert FILE or GOOSE_SERVER_CACERT\n$/);
    const flag = await goose(srv, ['session', 'list', '--cacert', ca]);
    ok(flag);
    assert.equal(flag.stdout, 'no sessions\n');
    ok(await goose(srv, ['session', 'list', '--json'], { env: { GOOSE_SERVER_CACERT: ca } }));
  });
});

describe('goose run with an extension that cannot start', () => {
  it('says which and why on stderr, and the reply goes on without it', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const srv = await startServer({ env: providerEnv(fake), configYaml: 'extensions:\n  broken:\n    enabled: true\n    type: stdio\n    name: broken\n    cmd: /nonexistent/mcp-server\n    timeout: 5\n' });
    try {
      await fake.script([{ text: 'Answered anyway.' }]);
      const dir = tempDir('goose-cli-work-');
      const r = await goose(srv, ['run', '-t', 'hi'], { cwd: dir });
      ok(r);
      assert.equal(r.stdout, 'Answered anyway.\n');
      assert.match(r.stderr, /^goose run: extension broken: .*cannot start '\/nonexistent\/mcp-server'/m);
      // and the session's list says how its reply found each
      const sid = r.stderr.match(/session ([0-9a-f-]{36}) in/)[1];
      const list = await goose(srv, ['extension', 'list', '-s', sid]);
      ok(list);
      assert.match(list.stdout, /^broken\s+stdio\s+yes\s+config\s+failed$/m);
    } finally {
      await stopAndCheck(srv);
      await fake.stop();
    }
  });
});
