// The interactive parts of goose in a real terminal (tmux: new-session -d, send-keys,
// capture-pane): the chat of `goose session` (a turn, a tool confirmation answered, Ctrl-C
// cancelling a stalled reply and not the program, /exit and Ctrl-D leaving), the confirmation
// asked by `goose run` on a terminal, and its spinner on stderr while nothing arrives.
// Text is waited for by polling capture-pane, never by sleeping.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startServer, stopAndCheck, tempDir, GOOSED_BIN, REPO } from './lib/server.mjs';
import { get } from './lib/http.mjs';
import { recordOutput } from './lib/record.mjs';
import { startFake } from '../fakes/lib.mjs';

const GOOSE = path.join(path.dirname(GOOSED_BIN), 'goose');
const KEY = 'sk-goose-tty-test';
const HAVE_TMUX = spawnSync('tmux', ['-V']).status === 0;
const SOCKET = `goose-tty-${process.pid}`; // a tmux server of this file's own
const WAIT_MS = 15_000;

const tmux = (...args) => execFileSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const pane = (name) => tmux('capture-pane', '-p', '-J', '-S', '-200', '-t', name);

/** Polls the pane until re matches its text; returns the text. */
async function waitFor(name, re, what = String(re)) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const text = pane(name);
    if (re.test(text)) return text;
    if (Date.now() > deadline) assert.fail(`${what} did not appear in the terminal; it shows:\n${text}`);
    await delay(50); // a poll interval, not a synchronisation
  }
}

/** Runs `sh -c cmd` in a new detached tmux window named name, in dir, with env. When the command
 *  ends the window shows `EXITED=<status>` and waits, so its last output can be read. */
function open(name, dir, env, cmd) {
  const script = path.join(dir, `${name}.sh`);
  const exports = Object.entries(env).map(([k, v]) => `export ${k}='${String(v).replace(/'/g, "'\\''")}'`).join('\n');
  // The shell survives the Ctrl-C sent to the command (a trap, which the command does not inherit).
  writeFileSync(script, `${exports}\ntrap : INT\ncd '${dir}'\n${cmd}\necho "EXITED=$?"\nexec sleep 600\n`);
  tmux('new-session', '-d', '-s', name, '-x', '160', '-y', '50', 'sh', script);
}

function close(name) {
  const rec = recordOutput(`tty-${name}`);
  try { rec.stdout(pane(name)); } catch { /* gone already */ }
  try { tmux('kill-session', '-t', name); } catch { /* gone already */ }
}

describe('goose in a terminal', { skip: !HAVE_TMUX && 'tmux is not installed (scripts/deps.sh test installs it)' }, () => {
  let fake, srv, dir, env;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    srv = await startServer({ env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, GOOSE_MODE: 'approve' } });
    dir = tempDir('goose-tty-');
    env = { PATH: process.env.PATH, HOME: dir, GOOSE_SERVER_URL: srv.url, TERM: 'xterm-256color', LANG: 'C.UTF-8' };
    for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) if (process.env[k]) env[k] = process.env[k];
  });
  after(async () => {
    try { tmux('kill-server'); } catch { /* no session left */ }
    try { await stopAndCheck(srv); } finally { await fake.stop(); }
  });

  it('a chat: a turn, a tool confirmation answered, Ctrl-C cancelling a stalled reply, /exit', async () => {
    await fake.script([
      { text: 'Hello from the chat.' },
      { text: 'Making it.', tool_calls: [{ id: 'call_t', name: 'developer__shell', arguments: { command: 'touch confirmed.txt' } }] },
      { text: 'The file is there.' },
      { text: 'slow start and never the end', chunks: ['slow start', ' and never the end'], stall_after: 1, stall_ms: 60_000 },
      { text: 'Still here.' },
    ]);
    open('chat', dir, env, `'${GOOSE}' session`);
    try {
      let text = await waitFor('chat', /starting session ([0-9a-f-]{36})[^]*\( O\)> $/m, 'the prompt');
      const sid = text.match(/starting session ([0-9a-f-]{36})/)[1];

      tmux('send-keys', '-t', 'chat', 'say hello', 'Enter');
      await waitFor('chat', /\( O\)> say hello\nHello from the chat\.\n\( O\)> $/m, 'the first reply and a new prompt');

      tmux('send-keys', '-t', 'chat', 'make a file', 'Enter');
      text = await waitFor('chat', /Allow developer__shell\?.*\[y\] allow once.*\[a\] always allow.*\[n\] deny.*\[d\] always deny.*\[c\] cancel the reply: $/m, 'the confirmation question');
      assert.match(text, /Making it\.\n─── shell\(command: touch confirmed\.txt\) ───\n/);
      assert.ok(!existsSync(path.join(dir, 'confirmed.txt')), 'nothing runs before the answer');
      tmux('send-keys', '-t', 'chat', 'maybe', 'Enter');
      await waitFor('chat', /Answer y, a, n, d or c\.\nAllow developer__shell\?.*: $/m, 'the question again after a wrong answer');
      tmux('send-keys', '-t', 'chat', 'y', 'Enter');
      await waitFor('chat', /: y\n  exit status: 0\n[^]*The file is there\.\n\( O\)> $/m, 'the tool result and the end of the reply');
      assert.ok(existsSync(path.join(dir, 'confirmed.txt')));

      tmux('send-keys', '-t', 'chat', 'be slow', 'Enter');
      await waitFor('chat', /\( O\)> be slow\nslow start/m, 'the stalled reply\'s first words');
      tmux('send-keys', '-t', 'chat', 'C-c');
      text = await waitFor('chat', /cancelling the reply[^]*the reply was cancelled\n\( O\)> $/m, 'the cancelled reply and a new prompt');
      assert.doesNotMatch(text, /never the end/);
      assert.doesNotMatch(text, /EXITED/);

      // Ctrl-C at the prompt does not leave either
      tmux('send-keys', '-t', 'chat', 'C-c');
      await waitFor('chat', /\/exit or Ctrl-D leaves\)\n\( O\)> $/m, 'the hint after Ctrl-C at the prompt');
      tmux('send-keys', '-t', 'chat', 'still there?', 'Enter');
      await waitFor('chat', /Still here\.\n\( O\)> $/m, 'a reply after the cancel');

      tmux('send-keys', '-t', 'chat', '/exit', 'Enter');
      await waitFor('chat', /^EXITED=0$/m, 'the exit');
      const msgs = (await get(srv, `/api/sessions/${sid}/messages`)).body;
      assert.equal(msgs.filter((m) => m.role === 'user' && m.content.some((c) => c.type === 'text')).length, 4);
    } finally {
      close('chat');
    }
  });

  it('resume ID continues a session; Ctrl-D leaves; "always deny" and cancel are answers too', async () => {
    await fake.script([
      { tool_calls: [{ id: 'call_d', name: 'developer__list_files', arguments: {} }] },
      { text: 'Understood, not running it.' },
      { tool_calls: [{ id: 'call_c', name: 'developer__text_editor', arguments: { command: 'write', path: 'c.txt', file_text: 'x' } }] },
    ]);
    const created = await (await fetch(`${srv.url}/api/sessions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'Resumed', working_directory: dir }) })).json();
    open('resume', dir, env, `'${GOOSE}' session resume ${created.id}`);
    try {
      await waitFor('resume', new RegExp(`resuming session ${created.id} "Resumed" \\(0 messages\\)[^]*\\( O\\)> $`, 'm'), 'the resumed prompt');
      tmux('send-keys', '-t', 'resume', 'run it', 'Enter');
      await waitFor('resume', /Allow developer__list_files\?.*: $/m, 'the question');
      tmux('send-keys', '-t', 'resume', 'd', 'Enter');
      await waitFor('resume', /Understood, not running it\.\n\( O\)> $/m, 'the reply after the denial');
      const tools = (await fake.requests('openai')).at(-1).body.messages.filter((m) => m.role === 'tool');
      assert.match(JSON.stringify(tools.at(-1).content), /denied/);
      // written on a worker (the loop never waits for the disk): it comes when it comes
      const permFile = path.join(srv.home, '.config', 'goose', 'permission.yaml');
      let perm = '';
      for (let i = 0; i < 250 && !/developer__list_files/.test(perm); i++) {
        if (i) await new Promise((r) => setTimeout(r, 20));
        perm = existsSync(permFile) ? readFileSync(permFile, 'utf8') : '';
      }
      assert.match(perm, /developer__list_files/);

      tmux('send-keys', '-t', 'resume', 'edit', 'Enter');
      await waitFor('resume', /Allow developer__text_editor\?.*: $/m, 'the second question');
      tmux('send-keys', '-t', 'resume', 'c', 'Enter');
      await waitFor('resume', /the reply was cancelled\n\( O\)> $/m, 'the reply cancelled by the answer');
      assert.ok(!existsSync(path.join(dir, 'c.txt')));

      tmux('send-keys', '-t', 'resume', 'C-d');
      await waitFor('resume', /^EXITED=0$/m, 'the exit on Ctrl-D');
    } finally {
      close('resume');
    }
  });

  it('the chat edits the line, recalls earlier messages with the up arrow, also in the next run, and keeps them for the user alone', async () => {
    const home = tempDir('goose-tty-hist-');
    const henv = { ...env, HOME: home };
    const lastUser = async () => {
      const m = (await fake.requests('openai')).at(-1).body.messages.filter((x) => x.role === 'user').at(-1);
      return typeof m.content === 'string' ? m.content : m.content.map((c) => c.text).join('');
    };
    await fake.script([{ text: 'one.' }, { text: 'two.' }, { text: 'three.' }, { text: 'four.' }, { text: 'five.' }]);
    open('hist', home, henv, `'${GOOSE}' session`);
    try {
      await waitFor('hist', /\( O\)> $/m, 'the prompt');
      // a typo mended: the cursor moved back into the word, a letter put in, é kept whole
      tmux('send-keys', '-t', 'hist', '-l', 'helo wörld');
      for (let i = 0; i < 7; i++) tmux('send-keys', '-t', 'hist', 'Left'); // back over 'o wörld', ö one character
      tmux('send-keys', '-t', 'hist', '-l', 'l');
      tmux('send-keys', '-t', 'hist', 'Enter');
      await waitFor('hist', /one\.\n\( O\)> $/m, 'the first reply');
      assert.equal(await lastUser(), 'hello wörld');
      // Ctrl-C drops what was typed
      tmux('send-keys', '-t', 'hist', '-l', 'draft');
      tmux('send-keys', '-t', 'hist', 'C-c');
      await waitFor('hist', /\/exit or Ctrl-D leaves\)\n\( O\)> $/m, 'the prompt after Ctrl-C');
      // a message that starts with a space stays out of the history
      tmux('send-keys', '-t', 'hist', '-l', ' my token is hist-secret-51');
      tmux('send-keys', '-t', 'hist', 'Enter');
      await waitFor('hist', /two\.\n\( O\)> $/m, 'the second reply');
      assert.equal(await lastUser(), 'my token is hist-secret-51'); // sent without the space
      // the up arrow brings back the last message kept
      tmux('send-keys', '-t', 'hist', 'Up');
      tmux('send-keys', '-t', 'hist', 'Enter');
      await waitFor('hist', /three\.\n\( O\)> $/m, 'the third reply');
      assert.equal(await lastUser(), 'hello wörld');
      tmux('send-keys', '-t', 'hist', '/exit', 'Enter');
      await waitFor('hist', /^EXITED=0$/m, 'the exit');
    } finally {
      close('hist');
    }
    const file = path.join(home, '.local/state/goose/chat_history');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(file)).mode & 0o777, 0o700);
    const kept = readFileSync(file, 'utf8');
    assert.ok(!kept.includes('hist-secret-51') && !kept.includes('draft'), kept);
    // the next run recalls them: /exit, then the message before it
    open('hist2', home, henv, `'${GOOSE}' session`);
    try {
      await waitFor('hist2', /\( O\)> $/m, 'the prompt');
      tmux('send-keys', '-t', 'hist2', 'Up');
      await waitFor('hist2', /\( O\)> \/exit$/m, 'the last line of the run before');
      tmux('send-keys', '-t', 'hist2', 'Up');
      tmux('send-keys', '-t', 'hist2', 'Enter');
      await waitFor('hist2', /four\.\n\( O\)> $/m, 'the reply to the recalled message');
      assert.equal(await lastUser(), 'hello wörld');
      tmux('send-keys', '-t', 'hist2', 'C-d');
      await waitFor('hist2', /^EXITED=0$/m, 'the exit on Ctrl-D');
    } finally {
      close('hist2');
    }
  });

  it('goose run on a terminal asks, and turns a spinner on stderr while nothing arrives', async () => {
    await fake.script([
      { text: 'Thinking slowly', chunks: ['Thinking slowly'], tool_calls: [{ id: 'call_r', name: 'developer__shell', arguments: { command: 'touch from-run.txt' } }] },
      { text: 'ran', stall_ms: 60_000 },
    ]);
    open('run', dir, env, `'${GOOSE}' run -t 'do it'`);
    try {
      await waitFor('run', /Allow developer__shell\?.*: $/m, 'the question of goose run');
      tmux('send-keys', '-t', 'run', 'y', 'Enter');
      await waitFor('run', /  exit status: 0\n[^]*[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/m, 'the spinner while the provider stalls');
      assert.ok(existsSync(path.join(dir, 'from-run.txt')));
      tmux('send-keys', '-t', 'run', 'C-c');
      await waitFor('run', /the reply was cancelled\n(.*\n)*EXITED=1$/m, 'exit 1 after the cancel');
    } finally {
      close('run');
    }
  });
});

describe('an extension\'s question (elicitation) asked in a terminal', { skip: !HAVE_TMUX && 'tmux is not installed (scripts/deps.sh test installs it)' }, () => {
  const EVERYTHING = path.join(REPO, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
  let fake, srv, dir, env;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    srv = await startServer({
      env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY },
      configYaml: `extensions:\n  everything:\n    enabled: true\n    name: everything\n    type: stdio\n    cmd: ${process.execPath}\n    args: [${EVERYTHING}, stdio]\n    timeout: 60\n`,
    });
    dir = tempDir('goose-tty-elicit-');
    env = { PATH: process.env.PATH, HOME: dir, GOOSE_SERVER_URL: srv.url, TERM: 'xterm-256color', LANG: 'C.UTF-8' };
    for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) if (process.env[k]) env[k] = process.env[k];
  });
  after(async () => {
    try { tmux('kill-server'); } catch { /* no session left */ }
    try { await stopAndCheck(srv); } finally { await fake.stop(); }
  });

  it('goose run asks each field (choices by number or name, defaults on Enter, a wrong answer asked again), and the answer reaches the extension', async () => {
    await fake.script([{ tool_calls: [{ id: 'el1', name: 'everything__trigger-elicitation-request', arguments: {} }] }, { text: 'thanks for the answers' }]);
    open('elicit', dir, env, `'${GOOSE}' run -t 'ask me'`);
    try {
      await waitFor('elicit', /the extension everything asks: .*\nAnswer it\?.*: $/m, 'the question');
      tmux('send-keys', '-t', 'elicit', 'y', 'Enter');
      const step = async (re, keys) => {
        await waitFor('elicit', re);
        if (keys) tmux('send-keys', '-t', 'elicit', '-l', keys);
        tmux('send-keys', '-t', 'elicit', 'Enter');
      };
      await step(/  String[^\n]*\(required\): $/m, ''); // required: asked again
      await step(/An answer is required\.\n  String[^\n]*\(required\): $/m, 'Ada');
      await step(/  Boolean[^\n]*\[y\/n\]: $/m, 'y');
      await step(/  String with default[^\n]*\["It was a dark and stormy night\."\]: $/m, '');
      await step(/  String with email format[^\n]*: $/m, 'ada@example.com');
      await step(/  String with uri format[^\n]*: $/m, '');
      await step(/  String with date format[^\n]*: $/m, '');
      await step(/  Integer[^\n]*\[42\]: $/m, 'seven');
      await step(/Answer with a whole number\.\n  Integer[^\n]*\[42\]: $/m, '7');
      await step(/  Number in range 1-1000[^\n]*: $/m, '');
      await step(/  Untitled Single Select Enum[^\n]* 2\) Rachel[^\n]*\["Monica"\]: $/m, '2');
      await step(/  Untitled Multiple Select Enum[^\n]*any of, with commas:[^\n]*: $/m, 'piano, 5');
      await step(/  Titled Single Select Enum[^\n]*3\) Wonder Woman[^\n]*: $/m, 'wonder woman');
      await step(/  Titled Multiple Select Enum[^\n]*: $/m, '');
      await step(/  Legacy Titled Single Select Enum[^\n]*2\) Dogs[^\n]*: $/m, 'Dogs');
      await waitFor('elicit', /thanks for the answers\n(.*\n)*EXITED=0$/m, 'the reply and exit 0');
    } finally {
      close('elicit');
    }
    const tool = (await fake.requests('openai')).at(-1).body.messages.find((m) => m.role === 'tool');
    const text = typeof tool.content === 'string' ? tool.content : tool.content.map((c) => c.text).join('\n');
    const raw = JSON.parse(text.slice(text.indexOf('Raw result: ') + 'Raw result: '.length));
    assert.equal(raw.action, 'accept');
    assert.equal(raw.content.name, 'Ada');
    assert.equal(raw.content.check, true);
    assert.equal(raw.content.firstLine, 'It was a dark and stormy night.');
    assert.equal(raw.content.email, 'ada@example.com');
    assert.equal(raw.content.integer, 7);
    assert.equal(raw.content.untitledSingleSelectEnum, 'Rachel');
    assert.deepEqual(raw.content.untitledMultipleSelectEnum, ['Piano', 'Bass']);
    assert.equal(raw.content.titledSingleSelectEnum, 'hero-3');
    assert.equal(raw.content.legacyTitledEnum, 'pet-2');
  });

  it('a URL to open is shown (never opened by goose), and "done" accepts it', async () => {
    await fake.script([{ tool_calls: [{ id: 'el2', name: 'everything__trigger-url-elicitation', arguments: { url: 'https://example.com/sign-in', message: 'Sign in first.' } }] }, { text: 'signed in, thanks' }]);
    open('url', dir, env, `'${GOOSE}' run -t 'sign me in'`);
    try {
      await waitFor('url', /asks: Sign in first\.\n.*the address to open: https:\/\/example\.com\/sign-in\nOpen it in your browser, then:.*: $/m, 'the address and the question');
      tmux('send-keys', '-t', 'url', 'y', 'Enter');
      await waitFor('url', /signed in, thanks\n(.*\n)*EXITED=0$/m, 'the reply and exit 0');
    } finally {
      close('url');
    }
    const tool = (await fake.requests('openai')).at(-1).body.messages.find((m) => m.role === 'tool');
    assert.match(JSON.stringify(tool.content), /accept/);
  });
});
