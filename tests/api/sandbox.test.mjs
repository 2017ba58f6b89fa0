// Tools in a sandbox: shell commands run under bubblewrap (the working directory writable, the
// system read-only, goosed's own directories and the homes absent, their own PID namespace,
// limits, a network of their own without the host's loopback, or none, or the host's); the file tools stay inside the working directory; allowed_roots
// bounds where sessions are made; without bubblewrap, tools are refused unless `sandbox: off`.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants as fsc, existsSync, statSync, readdirSync, readFileSync, writeFileSync, mkdirSync, mkdtempSync, symlinkSync, chownSync, rmSync } from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import os from 'node:os';
import { promises as dns } from 'node:dns';
import { spawn } from 'node:child_process';
import { startServer, stopAndCheck, tempDir, have, REPO } from './lib/server.mjs';
import { get, post, del } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';
import { recordSecret } from './lib/record.mjs';
import { addUser } from './lib/users.mjs';
import { withMarker, comm } from './lib/proc.mjs';

const KEY = 'sk-sandbox-test-key-0123456789';
const SECRET = 'sb-secret-value-7f3a9c';
recordSecret(SECRET, 'sandbox.test.mjs: the secret in secrets.yaml and config.yaml');

function providerEnv(fake, extra = {}) {
  return { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, ...extra };
}

async function newSession(srv, dir, opts) {
  const r = await post(srv, '/api/sessions', { name: 'sandbox test', working_directory: dir }, opts);
  assert.equal(r.status, 201, r.text);
  return r.body.id;
}

/** Runs one tool call in a new session made in dir (as opts' user); resolves with {text, is_error}. */
async function tool(srv, fake, dir, name, args, opts) {
  await fake.script([
    { tool_calls: [{ id: 'call_sb', name, arguments: args }] },
    { text: 'ok' },
  ]);
  const id = await newSession(srv, dir, opts);
  const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'go' }, opts);
  assert.equal(r.status, 200, r.text);
  const hist = await get(srv, `/api/sessions/${id}/messages`, opts);
  const res = hist.body[2].content[0];
  return { text: res.content[0].text, is_error: res.is_error };
}

const shell = (srv, fake, dir, command, opts) => tool(srv, fake, dir, 'developer__shell', { command }, opts);

/** What the processes marked by markers are: pid, state and parent, for a failure message. */
function describe_(markers) {
  return markers.flatMap((m) => withMarker(m).map((p) => {
    try {
      return `${m}: ${readFileSync(`/proc/${p}/stat`, 'utf8').trim()}`;
    } catch {
      return `${m}: ${p} gone`;
    }
  })).join('\n');
}

async function until(cond, ms, what, more = () => '') {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}\n${more()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let seq = 0;
/** A unique sleep duration: its command line marks the process. */
const marker = () => `900.${process.pid}${++seq}${Date.now() % 10000}`;

const bwrapWorks = have('bwrap');

/** goosed's command prefix to run as nobody (uid 65534). */
const AS_NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

/** A HOME and a working directory in it that nobody (uid 65534), as whom goosed runs, owns. */
function nobodyHome() {
  const home = tempDir('goosed-sb-nobody-');
  const dir = path.join(home, 'work');
  mkdirSync(dir);
  chownSync(home, 65534, 65534);
  chownSync(dir, 65534, 65534);
  return { home, dir };
}

// The machine's first address that is not loopback: what a command's network reaches the host by.
const outsideAddr = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
const PUBLIC_NAME = 'registry.npmjs.org';
const hostResolves = await new dns.Resolver({ timeout: 3000, tries: 1 }).resolve4(PUBLIC_NAME).then(() => true, () => false);
const hostReachesRegistry = hostResolves && await fetch(`https://${PUBLIC_NAME}/is-number`, { signal: AbortSignal.timeout(5000) }).then((r) => r.ok, () => false);

/** What the model was told of the shell in the last request the fake got. */
async function shellDescription(fake) {
  return (await fake.requests('openai')).at(-1).body.tools.find((t) => t.function.name === 'developer__shell').function.description;
}

/** A TCP listener on host: its port, how many connected, the first connection's data. */
async function listen(host) {
  let n = 0;
  let got;
  const data = new Promise((r) => { got = r; });
  const srv = net.createServer((s) => {
    n++;
    let b = '';
    s.on('data', (d) => { b += d; });
    s.on('end', () => { got(b); s.end(); });
    s.on('error', () => {});
  });
  await new Promise((r) => srv.listen(0, host, r));
  return { port: srv.address().port, count: () => n, data: () => data, close: () => srv.close() };
}

/** A shell command that connects to each [host, port] in turn and prints `host:port CONNECTED`
 * or `host:port ERR code`. */
function reachCmd(targets) {
  return `${process.execPath} -e '(async()=>{for(const [h,p] of ${JSON.stringify(targets)}){const r=await new Promise((res)=>{` +
    'const s=require("net").connect({host:h,port:p,timeout:5000});s.on("connect",()=>{s.destroy();res("CONNECTED")});' +
    's.on("timeout",()=>{s.destroy();res("ERR TIMEOUT")});s.on("error",(e)=>res("ERR "+e.code))});console.log(h+":"+p+" "+r)}})()\'';
}

/** Runs reachCmd(targets) as one shell command in a new session made in dir (as opts' user); resolves with
 * {"host:port": "CONNECTED" or "ERR code"}, one entry per target. */
async function reach(srv, fake, dir, targets, opts) {
  const out = await shell(srv, fake, dir, reachCmd(targets), opts);
  const got = Object.fromEntries([...out.text.matchAll(/^(\S+:\d+) (CONNECTED|ERR \S+)$/gm)].map((m) => [m[1], m[2]]));
  assert.equal(Object.keys(got).length, targets.length, out.text);
  return got;
}

/** Each "host:port" of expected as got has it: "CONNECTED", "ERR" (any error) or "ERR code". */
function assertReach(got, expected) {
  for (const [k, want] of Object.entries(expected))
    assert.ok(want === 'ERR' ? got[k]?.startsWith('ERR ') : got[k] === want, `${k}: ${got[k]}, expected ${want}\n${JSON.stringify(got)}`);
}

describe('the shell runs in a sandbox', { skip: !bwrapWorks && 'bubblewrap is not installed' }, () => {
  let fake;
  let srv;
  let home;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    home = tempDir('goosed-sb-home-');
    mkdirSync(path.join(home, '.config', 'goose'), { recursive: true });
    writeFileSync(path.join(home, '.config', 'goose', 'secrets.yaml'), `MY_KEY: ${SECRET}\n`);
    srv = await startServer({ home, env: providerEnv(fake), configYaml: `# ${SECRET}\nGOOSE_MODE: auto\n` });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it('says so at start', () => {
    assert.match(srv.log(), /tools run in a sandbox: \S*bwrap, network on/);
  });

  it("cannot read goosed's secrets and config, the homes, or /proc/1/environ", async () => {
    const dir = tempDir('goosed-sb-cwd-');
    const cfg = path.join(home, '.config', 'goose');
    const out = await shell(srv, fake, dir,
      `cat "${cfg}/secrets.yaml" "${cfg}/config.yaml"; ls /root /home; tr '\\0' '\\n' < /proc/1/environ; ls "${home}"; echo done`);
    assert.match(out.text, /done/);
    assert.ok(!out.text.includes(SECRET), `the shell read a secret:\n${out.text}`);
    assert.ok(!out.text.includes(KEY), `the shell saw the API key:\n${out.text}`);
    assert.match(out.text, /ls: cannot access '\/root': No such file or directory/);
    assert.match(out.text, /ls: cannot access '\/home': No such file or directory/);
  });

  it("hides goosed's directories also when the working directory holds them", async () => {
    const out = await shell(srv, fake, srv.home,
      'cat .config/goose/secrets.yaml .config/goose/config.yaml; ls -a .config/goose .local/share/goose/sessions; echo done');
    assert.match(out.text, /done/);
    assert.ok(!out.text.includes(SECRET), `the shell read a secret:\n${out.text}`);
    assert.ok(!out.text.includes('goosed.db'), `the shell saw the data directory:\n${out.text}`);
  });

  it('writes only inside the working directory', async () => {
    const dir = tempDir('goosed-sb-cwd-');
    const outside = tempDir('goosed-sb-outside-');
    const out = await shell(srv, fake, dir,
      `echo x > /usr/goosed-sb-test; echo x > /etc/goosed-sb-test; echo x > "${outside}/f"; echo inside > here.txt; echo done`);
    assert.match(out.text, /done/);
    assert.match(out.text, /Read-only file system/);
    assert.ok(!existsSync('/usr/goosed-sb-test') && !existsSync('/etc/goosed-sb-test'));
    assert.ok(!existsSync(path.join(outside, 'f')), 'a write outside the working directory reached the disk');
    assert.equal(readFileSync(path.join(dir, 'here.txt'), 'utf8'), 'inside\n');
  });

  it('setsid and nohup children do not outlive the command', async () => {
    const dir = tempDir('goosed-sb-cwd-');
    const a = marker();
    const b = marker();
    const out = await shell(srv, fake, dir, `setsid sleep ${a} & nohup sleep ${b} >/dev/null 2>&1 & echo started`);
    assert.match(out.text, /started/);
    await until(() => withMarker(a).length === 0 && withMarker(b).length === 0, 5000,
      'the setsid and nohup children to die with the command');
  });

  it('setsid and nohup children do not outlive a cancel', async () => {
    const dir = tempDir('goosed-sb-cwd-');
    const a = marker();
    const b = marker();
    const c = marker();
    await fake.script([
      { tool_calls: [{ id: 'call_sb', name: 'developer__shell', arguments: { command: `setsid sleep ${a} & nohup sleep ${b} >/dev/null 2>&1 & sleep ${c}` } }] },
      { text: 'ok' },
    ]);
    const id = await newSession(srv, dir);
    const reply = post(srv, `/api/sessions/${id}/messages`, { content: 'go' }).catch((e) => e);
    // The sleeps themselves (the markers are in bwrap's and sh's command lines from the start).
    await until(() => [a, b, c].every((m) => withMarker(m).some((p) => comm(p) === 'sleep')), 10_000, 'the command to start');
    const cr = await post(srv, `/api/sessions/${id}/cancel`, undefined);
    assert.equal(cr.status, 202, cr.text);
    await reply;
    await until(() => !withMarker(a).length && !withMarker(b).length && !withMarker(c).length, 5000,
      'every process of the command to die at the cancel', () => describe_([a, b, c]));
  });

  it('a cancel right at the start leaves nothing behind either', async () => {
    const dir = tempDir('goosed-sb-cwd-');
    const marks = [];
    for (let i = 0; i < 5; i++) {
      const a = marker();
      marks.push(a);
      await fake.script([
        { tool_calls: [{ id: 'call_sb', name: 'developer__shell', arguments: { command: `setsid sleep ${a} & sleep ${a}` } }] },
        { text: 'ok' },
      ]);
      const id = await newSession(srv, dir);
      const reply = post(srv, `/api/sessions/${id}/messages`, { content: 'go' }).catch((e) => e);
      await until(() => withMarker(a).length > 0, 10_000, 'the tool to start'); // bwrap, maybe not yet its command
      await post(srv, `/api/sessions/${id}/cancel`, undefined);
      await reply;
    }
    await until(() => marks.every((m) => !withMarker(m).length), 5000,
      'every process to die at the cancels', () => describe_(marks));
  });

  it('a command runs under goosed\'s batch_scheduling (SCHED_BATCH, policy 3), as the README says', async () => {
    // field 41 of /proc/self/stat, counted after the command name in parentheses
    const r = await shell(srv, fake, tempDir('goosed-sb-cwd-'), "s=$(cat /proc/self/stat); set -- ${s##*) }; shift 38; echo policy=$1");
    assert.equal(r.is_error, false, r.text);
    assert.match(r.text, /policy=3\b/);
  });

  it("by default a command reaches the outside, but neither goosed's API nor anything else on the host's loopback, nor a metadata service", { skip: !outsideAddr && 'this machine has no address but loopback' }, async () => {
    assert.match(srv.log(), /network on, the host's loopback out of reach/);
    const loop = await listen('127.0.0.1');
    const outside = await listen(outsideAddr);
    try {
      const r = await reach(srv, fake, tempDir('goosed-sb-cwd-'), [
        ['127.0.0.1', srv.port], // goosed itself: a tool driving a local goosed without authentication
        ['10.0.2.2', srv.port], // the user-mode NAT's gateway, which would lead to the host's loopback
        ['127.0.0.1', loop.port],
        [outsideAddr, srv.port],
        [outsideAddr, outside.port],
        ['169.254.169.254', 80], // a cloud's metadata service, with the machine's credentials
      ]);
      assertReach(r, {
        [`127.0.0.1:${srv.port}`]: 'ERR', [`10.0.2.2:${srv.port}`]: 'ERR', [`127.0.0.1:${loop.port}`]: 'ERR',
        [`${outsideAddr}:${srv.port}`]: 'ERR', [`${outsideAddr}:${outside.port}`]: 'CONNECTED',
        '169.254.169.254:80': 'ERR EHOSTUNREACH',
      });
      // and the model is told, so that it can say why a local database does not answer
      assert.match(await shellDescription(fake), /runs in a sandbox.*ends when it ends.*network of its own: it reaches the internet, but not the services that listen only on the machine's localhost/);
      assert.equal(loop.count(), 0);
      assert.equal(outside.count(), 1);
    } finally {
      loop.close();
      outside.close();
    }
  });

  it("a command's names are resolved through the sandbox's own name server", async () => {
    const out = await shell(srv, fake, tempDir('goosed-sb-cwd-'), 'cat /etc/resolv.conf');
    assert.match(out.text, /^nameserver 10\.0\.2\.3$/m);
    assert.equal(out.text.match(/^nameserver/gm).length, 1, out.text);
  });

  it('a name the host resolves, the command resolves too', { skip: !hostResolves && 'this machine resolves no public name' }, async () => {
    const out = await shell(srv, fake, tempDir('goosed-sb-cwd-'), `getent hosts ${PUBLIC_NAME} || echo UNRESOLVED`);
    assert.match(out.text, /^[0-9a-f.:]+\s+registry\.npmjs\.org/m, out.text);
  });

  it('a package manager works: npm asks the registry', { skip: !hostReachesRegistry && 'this machine does not reach the npm registry' }, async () => {
    const out = await shell(srv, fake, tempDir('goosed-sb-cwd-'), 'npm view is-number name 2>&1; echo "rc=$?"');
    assert.match(out.text, /^is-number$/m, out.text);
    assert.match(out.text, /rc=0/, out.text);
  });

  it("a stdio extension's server cannot reach goosed's API either", { skip: !outsideAddr && 'this machine has no address but loopback' }, async () => {
    const outside = await listen(outsideAddr);
    try {
      const id = await newSession(srv, tempDir('goosed-sb-cwd-'));
      // The "server" tries goosed, then tells the outside listener what it got, and exits.
      const script = `const net=require("net");const s=net.connect(${srv.port},"127.0.0.1");` +
        `const tell=(r)=>{const o=net.connect(${outside.port},${JSON.stringify(outsideAddr)},()=>o.end("goosed:"+r))};` +
        's.on("connect",()=>{s.destroy();tell("CONNECTED")});s.on("error",(e)=>tell("ERR "+e.code))';
      const add = await post(srv, `/api/sessions/${id}/extensions`, { name: 'probe', config: { type: 'stdio', cmd: process.execPath, args: ['-e', script], timeout: 30 } });
      assert.equal(add.status, 200, add.text);
      await fake.script([{ text: 'ok' }]);
      const reply = post(srv, `/api/sessions/${id}/messages`, { content: 'start it' });
      assert.match(await outside.data(), /^goosed:ERR E/);
      assert.equal((await reply).status, 200);
    } finally {
      outside.close();
    }
  });

  it('the text editor refuses ../, absolute paths and symbolic links that leave the working directory', async () => {
    const dir = tempDir('goosed-sb-cwd-');
    const outside = tempDir('goosed-sb-outside-');
    writeFileSync(path.join(outside, 'victim.txt'), 'untouched\n');
    symlinkSync(outside, path.join(dir, 'out'));
    symlinkSync(path.join(outside, 'new.txt'), path.join(dir, 'dangling'));
    const rel = path.relative(dir, path.join(outside, 'victim.txt'));
    for (const p of [rel, path.join(outside, 'victim.txt'), 'out/victim.txt', 'dangling', '/etc/passwd']) {
      const v = await tool(srv, fake, dir, 'developer__text_editor', { command: 'view', path: p });
      assert.equal(v.is_error, true, `view ${p}: ${v.text}`);
      assert.match(v.text, /refused: .*outside the session's working directory/);
      const w = await tool(srv, fake, dir, 'developer__text_editor', { command: 'write', path: p, file_text: 'pwned\n' });
      assert.equal(w.is_error, true, `write ${p}: ${w.text}`);
    }
    assert.equal(readFileSync(path.join(outside, 'victim.txt'), 'utf8'), 'untouched\n');
    assert.ok(!existsSync(path.join(outside, 'new.txt')), 'created through the dangling link');
    const l = await tool(srv, fake, dir, 'developer__list_files', { path: '..' });
    assert.equal(l.is_error, true, l.text);
    // Inside, links included, all works.
    symlinkSync(dir, path.join(dir, 'self'));
    const ok = await tool(srv, fake, dir, 'developer__text_editor', { command: 'write', path: 'self/a.txt', file_text: 'fine\n' });
    assert.equal(ok.is_error, false, ok.text);
    assert.equal(readFileSync(path.join(dir, 'a.txt'), 'utf8'), 'fine\n');
  });
});

describe("a command cannot plant goosed's configuration for its next start", { skip: !bwrapWorks && 'bubblewrap is not installed' }, () => {
  // A session whose working directory is $HOME holds goosed's own directories. A config.yaml a
  // command left there (`sandbox: off`) would be read at goosed's next start.
  let fake;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
  });
  after(async () => {
    await fake.stop();
  });
  const PLANT = 'mkdir -p .config/goose && printf "sandbox: off\\n" > .config/goose/config.yaml && echo written';

  it('while the configuration directory does not exist yet, what a command writes there never reaches the disk', async () => {
    const srv = await startServer({ env: providerEnv(fake) });
    try {
      const cfg = path.join(srv.home, '.config', 'goose');
      assert.ok(!existsSync(cfg), 'the test needs a home without a configuration directory');
      const out = await shell(srv, fake, srv.home, PLANT);
      assert.match(out.text, /written/);
      assert.ok(!existsSync(path.join(cfg, 'config.yaml')), `a command planted ${cfg}/config.yaml`);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('a directory above it cannot be renamed to put another in its place', async () => {
    const home = tempDir('goosed-sb-plant-');
    const cfg = path.join(home, '.config', 'goose');
    mkdirSync(cfg, { recursive: true });
    writeFileSync(path.join(cfg, 'secrets.yaml'), `MY_KEY: ${SECRET}\n`);
    const srv = await startServer({ home, env: providerEnv(fake) });
    try {
      const out = await shell(srv, fake, home, `mv .config .config.moved; mv .local/share .local/share.moved; ${PLANT}`);
      assert.match(out.text, /mv: cannot move '\.config' to '\.config\.moved': Device or resource busy/);
      assert.match(out.text, /mv: cannot move '\.local\/share' to '\.local\/share\.moved': Device or resource busy/);
      assert.ok(!existsSync(path.join(home, '.config.moved')) && !existsSync(path.join(home, '.local', 'share.moved')));
      assert.ok(!existsSync(path.join(cfg, 'config.yaml')), `a command planted ${cfg}/config.yaml`);
      assert.equal(readFileSync(path.join(cfg, 'secrets.yaml'), 'utf8'), `MY_KEY: ${SECRET}\n`);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('a symbolic link on its way, inside the working directory, refuses the command', async () => {
    const home = tempDir('goosed-sb-plant-');
    mkdirSync(path.join(home, 'dots', 'config', 'goose'), { recursive: true });
    symlinkSync('dots/config', path.join(home, '.config'));
    const srv = await startServer({ home, env: providerEnv(fake) });
    try {
      const out = await shell(srv, fake, home, 'echo ran');
      assert.equal(out.is_error, true, out.text);
      assert.match(out.text, /reached through a symbolic link inside the session's working directory/);
      assert.doesNotMatch(out.text, /^ran$/m);
      // In a project directory of the same home the command runs.
      const proj = path.join(home, 'proj');
      mkdirSync(proj);
      assert.match((await shell(srv, fake, proj, 'echo ran')).text, /ran/);
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('limits and network off', { skip: !bwrapWorks && 'bubblewrap is not installed' }, () => {
  let fake;
  let srv;
  let cpuSrv;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    // The memory hog gets CPU time enough to reach its memory limit on a loaded machine (it
    // copies about 2 GB on the way: 1-2 s, and more under contention); the busy loop a short
    // CPU limit on a server of its own.
    srv = await startServer({
      env: providerEnv(fake),
      configYaml: 'tool_network: false\ntool_max_memory: 1073741824\ntool_max_file_size: 100000\ntool_max_cpu_seconds: 60\n'
        + 'tool_max_tmp_size: 1000000\n',
    });
    cpuSrv = await startServer({ env: providerEnv(fake), configYaml: 'tool_max_cpu_seconds: 3\n' });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
      await stopAndCheck(cpuSrv);
    } finally {
      await fake.stop();
    }
  });

  it('network off blocks a connection to a loopback port', async () => {
    assert.match(srv.log(), /network off/);
    let connections = 0;
    const listener = net.createServer((s) => { connections++; s.end(); });
    await new Promise((r) => listener.listen(0, '127.0.0.1', r));
    try {
      const port = listener.address().port;
      const out = await shell(srv, fake, tempDir('goosed-sb-cwd-'),
        `node -e "require('net').connect(${port},'127.0.0.1').on('connect',()=>{console.log('CONNECTED');process.exit(0)}).on('error',(e)=>console.log('ERR',e.code))"`);
      assert.match(out.text, /ERR E/);
      assert.ok(!out.text.includes('CONNECTED'));
      assert.match(await shellDescription(fake), /It has no network\./);
      assert.equal(connections, 0);
    } finally {
      listener.close();
    }
  });

  it('a memory hog hits tool_max_memory and the server stays up', async () => {
    const out = await shell(srv, fake, tempDir('goosed-sb-cwd-'), `awk 'BEGIN { s = "x"; while (1) s = s s }'; echo "rc=$?"`);
    assert.match(out.text, /rc=[1-9]/);
    assert.match(out.text, /out of memory|Cannot allocate|memory/i);
    assert.equal((await get(srv, '/status')).status, 200);
  });

  it('a large file hits tool_max_file_size', async () => {
    const dir = tempDir('goosed-sb-cwd-');
    const out = await shell(srv, fake, dir, 'head -c 1000000 /dev/zero > big; echo "rc=$?"');
    assert.match(out.text, /rc=153/, 'head is killed by SIGXFSZ');
    assert.equal(readFileSync(path.join(dir, 'big')).length, 100000);
  });

  it('/tmp and the home directory, in memory, hold at most tool_max_tmp_size each', async () => {
    // Files under tool_max_file_size each, 1.8 MB in all: the memory no process limit counts.
    const fill = (d) => `n=0; for i in $(seq 1 20); do head -c 90000 /dev/zero > ${d}/f$i || break; n=$i; done; echo "${d} $n"`;
    const out = await shell(srv, fake, tempDir('goosed-sb-cwd-'), `${fill('/tmp')}; ${fill('"$HOME"')} 2>&1`);
    assert.match(out.text, /No space left on device/);
    const kept = [...out.text.matchAll(/^\S+ (\d+)$/gm)].map((m) => Number(m[1]));
    assert.equal(kept.length, 2, out.text);
    for (const n of kept) assert.ok(n >= 5 && n <= 11, `${n} files of 90,000 bytes in 1,000,000:\n${out.text}`);
  });

  it('a busy loop hits tool_max_cpu_seconds', async () => {
    const out = await shell(cpuSrv, fake, tempDir('goosed-sb-cwd-'), 'sh -c "while :; do :; done"; echo "rc=$?"');
    assert.match(out.text, /rc=152/, 'the loop is killed by SIGXCPU');
  });
});

describe("goosed's secret files named by its configuration stay out of the tools' reach", { skip: !bwrapWorks && 'bubblewrap is not installed' }, () => {
  // The secret key's file is the admin's password: a session made in its directory (a project
  // directory the admin keeps it in, or one a user may use) must not hand it to the model.
  const KEYTEXT = 'secret-key-file-5b9e-admin';
  recordSecret(KEYTEXT, "sandbox.test.mjs: the secret key's file");
  let fake;
  let srv;
  let dir;
  const admin = { headers: { 'X-Secret-Key': KEYTEXT } };
  before(async () => {
    dir = tempDir('goosed-sb-keydir-');
    writeFileSync(path.join(dir, 'secret-key'), KEYTEXT, { mode: 0o600 });
    writeFileSync(path.join(dir, 'notes.txt'), 'project notes');
    fake = await startFake({ keys: { openai: KEY } });
    srv = await startServer({ env: providerEnv(fake, { GOOSE_SERVER__SECRET_KEY_FILE: path.join(dir, 'secret-key') }) });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it('a shell command in its directory reads nothing of it, and cannot move it away', async () => {
    const out = await shell(srv, fake, dir, 'cat secret-key; echo "[$?]"; mv secret-key k2; cat notes.txt', admin);
    assert.ok(!out.text.includes(KEYTEXT), out.text);
    assert.match(out.text, /project notes/, 'the rest of the directory is there');
    assert.equal(readFileSync(path.join(dir, 'secret-key'), 'utf8'), KEYTEXT);
  });

  it('the text editor refuses it', async () => {
    const out = await tool(srv, fake, dir, 'developer__text_editor', { command: 'view', path: path.join(dir, 'secret-key') }, admin);
    assert.equal(out.is_error, true, out.text);
    assert.match(out.text, /goosed's own/, out.text);
    assert.ok(!out.text.includes(KEYTEXT), out.text);
  });
});

describe("goosed's directories named relatively are its own all the same", { skip: !bwrapWorks && 'bubblewrap is not installed' }, () => {
  it('GOOSE_CONFIG_DIR=conf and XDG_DATA_HOME=data, a session in the server\'s working directory: neither is in reach', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const dir = tempDir('goosed-sb-rel-');
    mkdirSync(path.join(dir, 'conf'));
    writeFileSync(path.join(dir, 'conf', 'config.yaml'), 'GOOSE_MODE: auto\n');
    writeFileSync(path.join(dir, 'conf', 'secrets.yaml'), `MY_SECRET: ${SECRET}\n`, { mode: 0o600 });
    const srv = await startServer({ cwd: dir, env: providerEnv(fake, { GOOSE_CONFIG_DIR: 'conf', XDG_DATA_HOME: 'data' }) });
    try {
      assert.ok(existsSync(path.join(dir, 'data', 'goose', 'sessions', 'goosed.db')), srv.log());
      const out = await shell(srv, fake, dir, 'cat conf/secrets.yaml; ls -A conf data/goose/sessions; echo listed');
      assert.ok(!out.text.includes(SECRET), out.text);
      assert.ok(!out.text.includes('goosed.db'), out.text);
      assert.match(out.text, /listed/);
      const ed = await tool(srv, fake, dir, 'developer__text_editor', { command: 'view', path: path.join(dir, 'conf', 'secrets.yaml') });
      assert.equal(ed.is_error, true, ed.text);
      assert.ok(!ed.text.includes(SECRET), ed.text);
    } finally {
      await stopAndCheck(srv);
      await fake.stop();
    }
  });
});

describe("as root, a command changes none of the host kernel's settings and reads nothing of /etc only root may", { skip: (!bwrapWorks || process.getuid() !== 0) && 'needs bubblewrap and root' }, () => {
  // Root's commands have no user namespace of their own: uid 0 may write the kernel's settings by
  // file mode alone (kernel.core_pattern names a program the kernel runs as the host's root) and
  // read every file of /etc, capabilities or not.
  const SECRET_FILE = `/etc/goosed-test-root-only-${process.pid}`;
  const SECRET_DIR = `/etc/goosed-test-root-only-dir-${process.pid}`;
  const ROOT_ONLY = 'root-only-7c1e-not-for-tools';
  recordSecret(ROOT_ONLY, 'sandbox.test.mjs: a file of /etc only root may read');
  let fake;
  let srv;
  before(async () => {
    writeFileSync(SECRET_FILE, ROOT_ONLY, { mode: 0o600 });
    mkdirSync(SECRET_DIR, { mode: 0o700 });
    writeFileSync(path.join(SECRET_DIR, 'key'), ROOT_ONLY, { mode: 0o644 });
    fake = await startFake({ keys: { openai: KEY } });
    srv = await startServer({ env: providerEnv(fake) }); // after the files: goosed looks at start
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
      rmSync(SECRET_FILE, { force: true });
      rmSync(SECRET_DIR, { recursive: true, force: true });
    }
  });

  it('/proc/sys and the kernel triggers are read-only; the host-wide files cannot be read', async () => {
    const probe = ['/proc/sys/kernel/core_pattern', '/proc/sys/kernel/printk_ratelimit', '/proc/sysrq-trigger', '/proc/sys/vm/drop_caches']
      .filter((f) => existsSync(f));
    const out = await shell(srv, fake, tempDir('goosed-sb-cwd-'),
      `id -u; for f in ${probe.join(' ')}; do [ -w $f ] && echo "$f WRITABLE" || echo "$f read-only"; done; `
      + 'cat /proc/sys/kernel/ostype; echo "keys $(wc -c < /proc/keys)"');
    const lines = out.text.split('\n');
    assert.ok(lines.includes('0'), `the command runs as root:\n${out.text}`);
    for (const f of probe) assert.ok(lines.includes(`${f} read-only`), `${f}:\n${out.text}`);
    assert.ok(lines.includes('Linux'), `the settings stay readable:\n${out.text}`);
    // replaced by a device it may not open (or an empty file): nothing of the host's keyrings
    if (existsSync('/proc/keys')) assert.match(out.text, /^keys 0?$/m);
  });

  it('a file of /etc only root may read cannot be read, a directory only root may enter is empty', async () => {
    const out = await shell(srv, fake, tempDir('goosed-sb-cwd-'),
      `cat ${SECRET_FILE}; echo "[$(wc -c < ${SECRET_FILE})]"; ls -A ${SECRET_DIR}; echo "[$(ls -A ${SECRET_DIR} | wc -l)]"; grep -q '^root:' /etc/passwd && echo readable`);
    assert.ok(!out.text.includes(ROOT_ONLY), out.text);
    assert.match(out.text, /^\[0?\]$/m, 'the file: nothing to read');
    assert.match(out.text, /^\[0\]$/m, 'the directory: empty');
    assert.match(out.text, /^readable$/m, 'what others may read stays');
  });
});

describe('without slirp4netns', { skip: (!bwrapWorks || !outsideAddr) && 'needs bubblewrap and an address but loopback' }, () => {
  let fake;
  let srv;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    // a PATH without slirp4netns (bwrap named by its path)
    const bin = tempDir('goosed-sb-path-');
    srv = await startServer({ env: providerEnv(fake, { PATH: bin }), configYaml: 'bwrap_path: /usr/bin/bwrap\n' });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it("goosed says so at start, and commands get no network rather than goosed's", async () => {
    assert.match(srv.log(), /tools get no network: slirp4netns is not installed: it is not in PATH\. Install slirp4netns/);
    assert.match(srv.log(), /network off \(slirp4netns is not installed\)/);
    const outside = await listen(outsideAddr);
    const loop = await listen('127.0.0.1');
    try {
      const r = await reach(srv, fake, tempDir('goosed-sb-cwd-'), [[outsideAddr, outside.port], ['127.0.0.1', loop.port]]);
      assertReach(r, { [`${outsideAddr}:${outside.port}`]: 'ERR', [`127.0.0.1:${loop.port}`]: 'ERR' });
      assert.equal(outside.count() + loop.count(), 0);
      assert.match(await shellDescription(fake), /It has no network\./);
    } finally {
      outside.close();
      loop.close();
    }
  });
});

describe("tool_network: host gives commands goosed's own network", { skip: !bwrapWorks && 'bubblewrap is not installed' }, () => {
  let fake;
  let srv;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    srv = await startServer({ env: providerEnv(fake), configYaml: 'tool_network: host\n' });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it('the host\'s loopback included, and says so at start', async () => {
    assert.match(srv.log(), /network goosed's own, loopback included \(tool_network: host\)/);
    const loop = await listen('127.0.0.1');
    try {
      assertReach(await reach(srv, fake, tempDir('goosed-sb-cwd-'), [['127.0.0.1', loop.port]]), { [`127.0.0.1:${loop.port}`]: 'CONNECTED' });
      assert.doesNotMatch(await shellDescription(fake), /network/);
      assert.equal(loop.count(), 1);
    } finally {
      loop.close();
    }
  });
});

describe("a user's commands and stdio servers reach public addresses only, as their remote extensions do", { skip: (!bwrapWorks || !have('slirp4netns') || !outsideAddr) && 'needs bubblewrap, slirp4netns and an address but loopback' }, () => {
  let fake;
  let home;
  let root;
  let alice;
  let srv;
  const as = (token) => ({ headers: { Authorization: `Bearer ${token}` } });
  // the commands' working directories: inside allowed_roots, which lets alice (not an admin)
  // work there as well as in her own workspace
  const cwds = tempDir('goosed-sb-cwds-');
  const cwdDir = () => mkdtempSync(path.join(cwds, 'cwd-'));
  const start = async (extra = {}) => {
    if (srv) await stopAndCheck(srv);
    srv = await startServer({ home, env: providerEnv(fake, { GOOSE_ALLOWED_ROOTS: cwds, ...extra }) });
  };
  // a private network's address nothing here answers: kept out at once, or tried (not asked of
  // an admin's command, whose try would wait for the connection's timeout)
  const PRIVATE = [['10.1.2.3', 9], ['172.16.5.5', 9], ['192.168.77.1', 9]];
  const UNREACH = Object.fromEntries(PRIVATE.map(([h, p]) => [`${h}:${p}`, 'ERR EHOSTUNREACH']));
  before(async () => {
    home = tempDir();
    root = await addUser(home, 'root', true);
    alice = await addUser(home, 'alice');
    fake = await startFake({ keys: { openai: KEY } });
    await start();
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it("a user's command reaches neither the host's addresses nor a private network; an admin's reaches the host", async () => {
    const outside = await listen(outsideAddr);
    try {
      const mine = await reach(srv, fake, cwdDir(), [[outsideAddr, outside.port], ...PRIVATE, ['169.254.169.254', 80]], as(alice));
      assertReach(mine, { [`${outsideAddr}:${outside.port}`]: 'ERR EHOSTUNREACH', ...UNREACH, '169.254.169.254:80': 'ERR EHOSTUNREACH' });
      assert.equal(outside.count(), 0);
      // and the model is told
      assert.match(await shellDescription(fake), /network of its own: it reaches the internet, but not the services of the machine it runs on \(its localhost and its other addresses\) nor those of private networks/);
      const admin = await reach(srv, fake, cwdDir(), [[outsideAddr, outside.port]], as(root));
      assertReach(admin, { [`${outsideAddr}:${outside.port}`]: 'CONNECTED' });
      assert.equal(outside.count(), 1);
      assert.match(await shellDescription(fake), /it reaches the internet, but not the services that listen only on the machine's localhost/);
    } finally {
      outside.close();
    }
  });

  it("a user's command still resolves names through the sandbox's name server, inside 10.0.0.0/8", { skip: !hostResolves && 'this machine resolves no public name' }, async () => {
    const out = await shell(srv, fake, cwdDir(), `getent hosts ${PUBLIC_NAME} || echo UNRESOLVED`, as(alice));
    assert.match(out.text, /^[0-9a-f.:]+\s+registry\.npmjs\.org/m, out.text);
  });

  it("a user's command reaches the public internet: npm asks the registry", { skip: !hostReachesRegistry && 'this machine does not reach the npm registry' }, async () => {
    const out = await shell(srv, fake, cwdDir(), 'npm view is-number name 2>&1; echo "rc=$?"', as(alice));
    assert.match(out.text, /^is-number$/m, out.text);
  });

  it("a user's own stdio server is kept out the same way", async () => {
    const outside = await listen(outsideAddr);
    try {
      const dir = cwdDir();
      const id = await newSession(srv, dir, as(alice));
      // The "server" tries the host and a private network, writes what it got beside it, exits.
      const targets = [[outsideAddr, outside.port], PRIVATE[0]];
      const script = `const net=require("net");Promise.all(${JSON.stringify(targets)}.map(([h,p])=>new Promise((res)=>{` +
        'const s=net.connect({host:h,port:p,timeout:5000});s.on("connect",()=>{s.destroy();res(h+":"+p+" CONNECTED")});' +
        's.on("timeout",()=>{s.destroy();res(h+":"+p+" ERR TIMEOUT")});s.on("error",(e)=>res(h+":"+p+" ERR "+e.code))})))' +
        '.then((r)=>require("fs").writeFileSync("reach.txt",r.join("\\n")))';
      const add = await post(srv, `/api/sessions/${id}/extensions`, { name: 'probe', config: { type: 'stdio', cmd: process.execPath, args: ['-e', script], timeout: 30 } }, as(alice));
      assert.equal(add.status, 200, add.text);
      await fake.script([{ text: 'ok' }]);
      assert.equal((await post(srv, `/api/sessions/${id}/messages`, { content: 'start it' }, as(alice))).status, 200);
      const file = path.join(dir, 'reach.txt');
      await until(() => existsSync(file), 10_000, 'the server to write what it reached');
      const got = Object.fromEntries(readFileSync(file, 'utf8').split('\n').map((l) => l.split(' ')).map(([k, ...v]) => [k, v.join(' ')]));
      assertReach(got, { [`${outsideAddr}:${outside.port}`]: 'ERR EHOSTUNREACH', [`${PRIVATE[0][0]}:${PRIVATE[0][1]}`]: 'ERR EHOSTUNREACH' });
      assert.equal(outside.count(), 0);
    } finally {
      outside.close();
    }
  });

  it('what user_extension_hosts names, by address or network, a user\'s command reaches; the rest stays out', async () => {
    await start({ GOOSE_USER_EXTENSION_HOSTS: `${outsideAddr}, 172.16.0.0/16` });
    const outside = await listen(outsideAddr);
    try {
      const mine = await reach(srv, fake, cwdDir(), [[outsideAddr, outside.port], PRIVATE[0], ['172.17.0.1', 9]], as(alice));
      assertReach(mine, { [`${outsideAddr}:${outside.port}`]: 'CONNECTED', '10.1.2.3:9': 'ERR EHOSTUNREACH', '172.17.0.1:9': 'ERR EHOSTUNREACH' });
      assert.equal(outside.count(), 1);
    } finally {
      outside.close();
    }
  });

  it("user_extension_hosts: '*' lets a user's command reach what an admin's does", async () => {
    await start({ GOOSE_USER_EXTENSION_HOSTS: '*' });
    const outside = await listen(outsideAddr);
    try {
      assertReach(await reach(srv, fake, cwdDir(), [[outsideAddr, outside.port]], as(alice)), { [`${outsideAddr}:${outside.port}`]: 'CONNECTED' });
      assert.match(await shellDescription(fake), /it reaches the internet, but not the services that listen only on the machine's localhost/);
    } finally {
      outside.close();
    }
  });
});

describe('a fork bomb as a normal user', { skip: (!bwrapWorks || !have('setpriv') || process.getuid() !== 0) && 'needs bubblewrap, setpriv and root to become nobody' }, () => {
  // RLIMIT_NPROC does not bind uid 0, so goosed runs as nobody here.
  let fake;
  let srv;
  let dir;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    let home;
    ({ home, dir } = nobodyHome());
    srv = await startServer({
      home,
      cwd: home,
      env: providerEnv(fake, { GOOSE_TOOL_MAX_USER_PROCESSES: 80 }),
      wrap: AS_NOBODY,
    });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it('hits the process limit and the server stays up', async () => {
    const m = marker();
    const out = await shell(srv, fake, dir, `i=0; while [ $i -lt 300 ]; do sleep ${m} & i=$((i+1)); done; echo spawned`);
    assert.match(out.text, /fork|Resource temporarily unavailable/i, out.text);
    assert.equal((await get(srv, '/status')).status, 200);
    await until(() => withMarker(m).length === 0, 5000, 'the sleeps to die with the command');
  });

  it("as a normal user too, a command reaches the outside but not goosed's API; where it cannot open /dev/net/tun, no network at all", { skip: !outsideAddr && 'this machine has no address but loopback' }, async () => {
    const tunOpen = (statSync('/dev/net/tun', { throwIfNoEntry: false })?.mode & 0o006) === 0o006;
    if (tunOpen) assert.match(srv.log(), /network on, the host's loopback out of reach/);
    else await srv.waitForLog(/tools get no network: .*slirp4netns did not give a command its network \(\/dev\/net\/tun cannot be opened here\)[^\n]*set `tool_network: host`/);
    const outside = await listen(outsideAddr);
    try {
      const r = await reach(srv, fake, dir, [['127.0.0.1', srv.port], [outsideAddr, outside.port]]);
      assertReach(r, { [`127.0.0.1:${srv.port}`]: 'ERR', [`${outsideAddr}:${outside.port}`]: tunOpen ? 'CONNECTED' : 'ERR' });
      assert.equal(outside.count(), tunOpen ? 1 : 0);
    } finally {
      outside.close();
    }
  });
});

const CGROUP_PIDS = '/sys/fs/cgroup/pids';

function cgroupPidsWritable() {
  try {
    accessSync(`${CGROUP_PIDS}/cgroup.procs`, fsc.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The cgroup directories goosed (pid) made for its commands. */
/** What is left in goosed's cgroups: each one's processes, with their state and command. */
function cgroupsLeft(pid) {
  return goosedCgroups(pid).map((d) => {
    const procs = readFileSync(`${CGROUP_PIDS}/goosed/${d}/cgroup.procs`, 'utf8').split('\n').filter(Boolean);
    return `${d}: ${procs.map((p) => { try { return readFileSync(`/proc/${p}/stat`, 'utf8').trim(); } catch { return `${p} gone`; } }).join('; ') || 'no process'}`;
  }).join('\n');
}

function goosedCgroups(pid) {
  try {
    return readdirSync(`${CGROUP_PIDS}/goosed`).filter((d) => d.startsWith(`${pid}-`));
  } catch {
    return [];
  }
}

describe("a normal user's commands get a network of their own too", { skip: (!bwrapWorks || !have('setpriv') || !have('unshare') || !have('slirp4netns') || process.getuid() !== 0 || !existsSync('/dev/net/tun') || !outsideAddr) && 'needs bubblewrap, setpriv, unshare, slirp4netns, /dev/net/tun, root to become nobody, and an address but loopback' }, () => {
  // goosed runs as nobody in a mount namespace of its own whose /dev/net/tun nobody may open (a
  // node of the tun device on a tmpfs of that namespace, bound over it): the machine's stays as
  // it is, as on most distributions, where the device is open to every user.
  let fake;
  let srv;
  let dir;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    let home;
    ({ home, dir } = nobodyHome());
    const devs = tempDir('goosed-sb-tun-');
    srv = await startServer({
      home,
      cwd: home,
      env: providerEnv(fake),
      wrap: ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
        `mount -t tmpfs tun ${devs} && mknod -m 666 ${devs}/tun c 10 200 && mount --bind ${devs}/tun /dev/net/tun && exec "$@"`, 'sh', ...AS_NOBODY],
    });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it("the outside is reached; goosed's API, the host's loopback and the metadata service are not", async () => {
    assert.match(srv.log(), /network on, the host's loopback out of reach/);
    const loop = await listen('127.0.0.1');
    const outside = await listen(outsideAddr);
    try {
      const r = await reach(srv, fake, dir, [
        ['127.0.0.1', srv.port], ['10.0.2.2', srv.port], ['127.0.0.1', loop.port],
        ['169.254.169.254', 80], [outsideAddr, outside.port],
      ]);
      assertReach(r, {
        [`127.0.0.1:${srv.port}`]: 'ERR', [`10.0.2.2:${srv.port}`]: 'ERR', [`127.0.0.1:${loop.port}`]: 'ERR',
        '169.254.169.254:80': 'ERR EHOSTUNREACH', [`${outsideAddr}:${outside.port}`]: 'CONNECTED',
      });
      assert.equal(loop.count(), 0);
      assert.equal(outside.count(), 1);
    } finally {
      loop.close();
      outside.close();
    }
  });
});

describe('a fork bomb as root', { skip: (!bwrapWorks || process.getuid() !== 0 || !cgroupPidsWritable()) && 'needs bubblewrap, root and a writable cgroup v1 pids hierarchy' }, () => {
  // RLIMIT_NPROC does not bind uid 0: each command runs in a cgroup whose pids.max is the limit.
  let fake;
  let srv;
  let stale;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    // the cgroup a goosed that was killed left behind (pid_max: a pid no process can have)
    stale = `${CGROUP_PIDS}/goosed/${readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim()}-7`;
    mkdirSync(stale, { recursive: true });
    srv = await startServer({ env: providerEnv(fake, { GOOSE_TOOL_MAX_USER_PROCESSES: 20 }) });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it('says so at start', () => {
    assert.match(srv.log(), /tool commands run in a cgroup of at most 20 processes each/);
  });

  it('removes at start the cgroups of goosed processes that no longer run', () => {
    assert.ok(!existsSync(stale), `${stale} is still there`);
  });

  it('hits the process limit, and the cgroup goes with the command', async () => {
    const dir = tempDir('goosed-sb-cwd-');
    const m = marker();
    const last = marker();
    // dash gives up on a failed fork: the loop runs in a subshell, and the shell then blocks in
    // an exec (no fork) so that the sleeps can be counted.
    const command = `(for i in $(seq 60); do sleep ${m} & done); echo started > started.txt; exec sleep ${last}`;
    await fake.script([
      { tool_calls: [{ id: 'call_sb', name: 'developer__shell', arguments: { command } }] },
      { text: 'ok' },
    ]);
    const id = await newSession(srv, dir);
    const reply = post(srv, `/api/sessions/${id}/messages`, { content: 'go' }).catch((e) => e);
    await until(() => existsSync(path.join(dir, 'started.txt')), 20_000, 'the loop to end');
    const sleeps = withMarker(m).filter((p) => comm(p) === 'sleep');
    assert.ok(sleeps.length > 0 && sleeps.length < 25, `${sleeps.length} sleeps run`);
    assert.equal(goosedCgroups(srv.proc.pid).length, 1, 'the command runs in a cgroup of its own');
    const cr = await post(srv, `/api/sessions/${id}/cancel`, undefined);
    assert.equal(cr.status, 202, cr.text);
    await reply;
    const hist = await get(srv, `/api/sessions/${id}/messages`);
    const text = hist.body[2].content[0].content[0].text;
    assert.match(text, /Cannot fork|Resource temporarily unavailable/, text);
    await until(() => !withMarker(m).length && !withMarker(last).length, 5000, 'the sleeps to die with the command');
    await until(() => goosedCgroups(srv.proc.pid).length === 0, 5000, "the command's cgroup to be removed");
  });

  it("a stdio extension's server runs in a cgroup of its own too, removed once it is stopped", async () => {
    const dir = tempDir('goosed-sb-cwd-');
    const m = marker();
    const id = await newSession(srv, dir);
    const cfg = { type: 'stdio', cmd: process.execPath, args: [path.join(REPO, 'tests/fakes/mcp/server.mjs'), 'ok', m], timeout: 30 };
    const add = await post(srv, `/api/sessions/${id}/extensions`, { name: 'cg', config: cfg });
    assert.equal(add.status, 200, add.text);
    await fake.script([{ text: 'ok' }]);
    assert.equal((await post(srv, `/api/sessions/${id}/messages`, { content: 'start it' })).status, 200);
    const server = withMarker(m).find((p) => comm(p) !== 'bwrap');
    assert.ok(server, 'the server runs');
    const cg = readFileSync(`/proc/${server}/cgroup`, 'utf8').split('\n').find((l) => /:pids:/.test(l));
    assert.match(cg, new RegExp(`:pids:/goosed/${srv.proc.pid}-\\d+$`), cg);
    assert.equal(goosedCgroups(srv.proc.pid).length, 1);
    // taken out of the session: the next reply stops it, and its cgroup goes with it
    assert.equal((await del(srv, `/api/sessions/${id}/extensions/cg`)).status, 204);
    await fake.script([{ text: 'ok' }]);
    assert.equal((await post(srv, `/api/sessions/${id}/messages`, { content: 'again' })).status, 200);
    await until(() => !withMarker(m).length, 10_000, 'the server to stop');
    await until(() => goosedCgroups(srv.proc.pid).length === 0, 10_000, "the server's cgroup to be removed", () => cgroupsLeft(srv.proc.pid));
  });
});

describe('without bubblewrap', () => {
  let fake;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
  });
  after(() => fake.stop());

  it('says so at start and refuses to run tools', async () => {
    const srv = await startServer({ env: providerEnv(fake), configYaml: 'bwrap_path: /nonexistent/bwrap\n' });
    try {
      assert.match(srv.log(), /tools cannot run: bwrap_path \/nonexistent\/bwrap: No such file or directory/);
      const dir = tempDir('goosed-sb-cwd-');
      const out = await shell(srv, fake, dir, 'echo ran > ran.txt');
      assert.equal(out.is_error, true);
      assert.match(out.text, /refused: tools run only in a sandbox/);
      assert.ok(!existsSync(path.join(dir, 'ran.txt')));
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('runs them open with sandbox: off (GOOSE_SANDBOX=off), and says so', async () => {
    const srv = await startServer({ env: providerEnv(fake, { GOOSE_SANDBOX: 'off' }), configYaml: 'bwrap_path: /nonexistent/bwrap\n' });
    try {
      assert.match(srv.log(), /sandbox: off: shell commands and stdio extensions run without a sandbox/);
      const dir = tempDir('goosed-sb-cwd-');
      const out = await shell(srv, fake, dir, 'echo ran > ran.txt; echo done');
      assert.equal(out.is_error, false, out.text);
      assert.ok(existsSync(path.join(dir, 'ran.txt')));
      const desc = await shellDescription(fake);
      assert.match(desc, /nohup server/, 'open, a background process may outlive the call');
      assert.doesNotMatch(desc, /sandbox/);
    } finally {
      await stopAndCheck(srv);
    }
  });
});

describe('allowed_roots', () => {
  let srv;
  let root;
  before(async () => {
    root = tempDir('goosed-sb-root-');
    mkdirSync(path.join(root, 'proj'));
    srv = await startServer({ configYaml: `allowed_roots:\n  - ${root}\n` });
  });
  after(() => stopAndCheck(srv));

  it('sessions are made inside a root only (real paths, links resolved)', async () => {
    const ok = await post(srv, '/api/sessions', { working_directory: path.join(root, 'proj') });
    assert.equal(ok.status, 201, ok.text);
    const other = tempDir('goosed-sb-other-');
    symlinkSync(other, path.join(root, 'escape'));
    for (const d of [other, path.join(root, 'escape'), path.join(root, 'proj', '..', '..')]) {
      const r = await post(srv, '/api/sessions', { working_directory: d });
      assert.equal(r.status, 400, `${d}: ${r.text}`);
      assert.match(r.body.message ?? r.text, /outside the directories sessions may be created in \(allowed_roots: /);
      assert.ok((r.body.message ?? r.text).includes(root), r.text);
    }
  });

  it('a root that does not exist is a configuration error', async () => {
    await assert.rejects(startServer({ configYaml: 'allowed_roots: [/nonexistent/goosed-root]\n' }), /allowed_roots/);
  });
});

// The paths are checked, then opened: a symbolic link swapped in between the two must not lead
// out. The file tools open through the working directory with the kernel refusing every step out
// of it (openat2 RESOLVE_BENEATH), so what was checked is what is opened.
describe('the file tools against links swapped in after the check', () => {
  let fake;
  let srv;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    srv = await startServer({ env: providerEnv(fake, { GOOSE_SANDBOX: 'off' }), configYaml: 'GOOSE_MODE: auto\n' });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  /** Runs the text editor calls in one turn of a new session in dir; the results, in order. */
  async function editorTurn(dir, calls) {
    await fake.script([
      { tool_calls: calls.map((args, i) => ({ id: `call_race_${i}`, name: 'developer__text_editor', arguments: args })) },
      { text: 'ok' },
    ]);
    const id = await newSession(srv, dir);
    const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'go' });
    assert.equal(r.status, 200, r.text);
    const hist = await get(srv, `/api/sessions/${id}/messages`);
    return hist.body.flatMap((m) => m.content).filter((c) => c.type === 'toolResponse' || 'is_error' in c)
      .map((c) => ({ text: c.content?.[0]?.text ?? '', is_error: c.is_error }));
  }

  it('a link inside to a directory outside, an absolute link back inside, a relative one', async () => {
    const dir = tempDir('goosed-race-cwd-');
    const outside = tempDir('goosed-race-out-');
    mkdirSync(path.join(dir, 'sub'));
    symlinkSync(outside, path.join(dir, 'out'));
    symlinkSync(path.join(dir, 'sub'), path.join(dir, 'abs'));
    symlinkSync('sub', path.join(dir, 'rel'));
    const res = await editorTurn(dir, [
      { command: 'write', path: 'out/x.txt', file_text: 'pwned\n' },
      { command: 'write', path: 'out/new/deep/x.txt', file_text: 'pwned\n' },
      { command: 'write', path: 'abs/a.txt', file_text: 'a\n' },
      { command: 'write', path: 'rel/deep/er/b.txt', file_text: 'b\n' },
      { command: 'view', path: 'abs' },
    ]);
    assert.equal(res.length, 5, JSON.stringify(res));
    assert.equal(res[0].is_error, true, res[0].text);
    assert.equal(res[1].is_error, true, res[1].text);
    assert.equal(res[2].is_error, false, res[2].text);
    assert.equal(res[3].is_error, false, res[3].text);
    assert.match(res[4].text, /a\.txt/);
    assert.deepEqual(readdirSync(outside), []);
    assert.equal(readFileSync(path.join(dir, 'sub', 'a.txt'), 'utf8'), 'a\n');
    assert.equal(readFileSync(path.join(dir, 'sub', 'deep', 'er', 'b.txt'), 'utf8'), 'b\n');
  });

  it('a directory swapped for a link out, over and over, while the editor writes and inserts through it', async () => {
    const dir = tempDir('goosed-race-cwd-');
    const outside = tempDir('goosed-race-out-');
    writeFileSync(path.join(outside, 'victim.txt'), 'untouched\n');
    mkdirSync(path.join(dir, 'd'));
    writeFileSync(path.join(dir, 'd', 'victim.txt'), 'inside\n');
    symlinkSync(outside, path.join(dir, 'link'));
    // The swapper: d is a directory, then for a moment the link out, again and again.
    const swapper = spawn(process.execPath, ['-e', `
      const fs = require('fs'); process.chdir(${JSON.stringify(dir)});
      for (let n = 0; ; n++) { try { fs.renameSync('d', 'd.tmp'); fs.renameSync('link', 'd'); fs.renameSync('d', 'link'); fs.renameSync('d.tmp', 'd'); } catch {
        try { // the editor made a d of its own while d was away: back to a directory d and the link
          const st = (() => { try { return fs.lstatSync('d'); } catch { return null; } })();
          if (st && st.isSymbolicLink()) fs.renameSync('d', 'link');
          else if (st && fs.existsSync('d.tmp')) fs.rmSync('d', { recursive: true, force: true });
          if (!fs.existsSync('d') && fs.existsSync('d.tmp')) fs.renameSync('d.tmp', 'd');
          try { fs.lstatSync('link'); } catch { fs.symlinkSync(${JSON.stringify(outside)}, 'link'); }
        } catch {} }
        if (n === 100) fs.writeSync(1, 'swapping\\n'); }`], { stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise((resolve, reject) => {
      swapper.stdout.once('data', resolve);
      swapper.once('exit', (code) => reject(new Error(`the swapper exited (${code})`)));
    });
    let leaked = [];
    try {
      for (let round = 0; round < 10 && !leaked.length; round++) {
        const calls = [];
        for (let i = 0; i < 21; i++) { // 63 calls: a reply holds at most 64
          calls.push({ command: 'write', path: `d/w${round}_${i}.txt`, file_text: 'pwned\n' });
          calls.push({ command: 'write', path: 'd/victim.txt', file_text: 'pwned\n' });
          calls.push({ command: 'insert', path: 'd/victim.txt', insert_line: 0, new_str: 'pwned' });
        }
        await editorTurn(dir, calls);
        leaked = readdirSync(outside).filter((f) => f !== 'victim.txt');
        if (readFileSync(path.join(outside, 'victim.txt'), 'utf8') !== 'untouched\n') leaked.push('victim.txt (changed)');
      }
    } finally {
      swapper.kill('SIGKILL');
    }
    assert.deepEqual(leaked, [], `written outside the working directory through the swapped link: ${leaked.join(', ')}`);
  });
});
