// Spawns the real goosed binary for black-box tests: a fresh HOME, a minimal environment, an
// ephemeral port read from the `listening on http(s)://HOST:PORT` log line (no sleeps, no guessing).
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { recordOutput, recordSecret, recordSecretEnv } from './record.mjs';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const GOOSED_BIN = process.env.GOOSED_BIN || path.join(REPO, 'build/goosed');

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 15_000; // the server may take up to 10 s to finish requests in flight
const SANITIZER = /AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|ThreadSanitizer/;
const LISTENING = /listening on (https?):\/\/(\[[^\]]+\]|[^\s:/]+):(\d+)/;
// Sanitizer builds read their options from the environment (make check-asan sets them).
const PASS_THROUGH = ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS', 'TSAN_OPTIONS'];

// Temporary directories made by this test file, removed when it exits (GOOSED_KEEP_TMP=1 keeps
// them, to look at what a failed test left).
const made = [];
process.on('exit', () => {
  if (process.env.GOOSED_KEEP_TMP) return;
  for (const d of made) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      // a test made it unreadable on purpose and failed before restoring it: leave it
    }
  }
});

/** A fresh temporary directory (realpath'd, so it compares equal to what the server stores). */
export function tempDir(prefix = 'goosed-test-') {
  const d = realpathSync(mkdtempSync(path.join(os.tmpdir(), prefix)));
  made.push(d);
  return d;
}

/** The child's environment: PATH, HOME, sanitizer options, then `extra` (undefined deletes). */
function childEnv(home, extra = {}) {
  const env = { PATH: process.env.PATH || '/usr/bin:/bin', HOME: home };
  for (const k of PASS_THROUGH) if (process.env[k] !== undefined) env[k] = process.env[k];
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined || v === null) delete env[k];
    else env[k] = String(v);
  }
  return env;
}

function writeConfig(home, configYaml) {
  const dir = path.join(home, '.config', 'goose');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, configYaml);
  return file;
}

/**
 * Starts goosed. Options:
 *   env        extra environment (undefined values remove a variable, e.g. HOME)
 *   args       extra command-line arguments (after `--port 0` unless port is given)
 *   port       the --port value (default 0); null: pass no --port at all
 *   configYaml written to $HOME/.config/goose/config.yaml
 *   home       an existing HOME to use (it is then kept); default: a fresh temporary one
 *   keepHome   do not delete the temporary HOME at stop
 *   cwd        the server's working directory (default: HOME)
 *   wrap       a command prefix, e.g. ['prlimit', '--fsize=200000']
 *   tlsOptions for a server that serves https: node:tls options for clients (e.g. {ca}), kept
 *              as server.tlsOptions (lib/ws.mjs connects with them)
 * Resolves with {url, host, port, proc, home, cwd, configFile, log(), stdout(), waitForLog(re),
 * stop(signal), kill9(), exited} once the listening line appears; rejects with the collected
 * stderr if the process exits first or does not get ready within 10 s.
 */
export function startServer(opts = {}) {
  const { env = {}, args = [], port = 0, configYaml, wrap = [] } = opts;
  const ownHome = !opts.home;
  const home = opts.home ?? tempDir();
  const keepHome = opts.keepHome || !ownHome;
  const cwd = opts.cwd ?? home;
  const configFile = configYaml !== undefined ? writeConfig(home, configYaml) : null;
  const argv = [...(port === null ? [] : ['--port', String(port)]), ...args];
  const cmd = [...wrap, GOOSED_BIN, ...argv];
  recordSecretEnv(env);

  let stderr = '';
  let stdout = '';
  const recorded = recordOutput('server');
  const waiters = new Set(); // {re, resolve}
  const proc = spawn(cmd[0], cmd.slice(1), {
    cwd,
    env: childEnv(home, env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => {
    // 'close' (not 'exit'): by then all of stderr has been read.
    proc.on('close', (code, signal) => resolve({ code, signal }));
    proc.on('error', (err) => resolve({ code: null, signal: null, error: err }));
  });
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => { stdout += d; recorded.stdout(d); });
  proc.stderr.on('data', (d) => {
    stderr += d;
    recorded.stderr(d);
    for (const w of waiters) {
      const m = stderr.slice(w.from).match(w.re);
      if (m) { waiters.delete(w); w.resolve(m); }
    }
  });

  const cleanupHome = () => { if (!keepHome) rmSync(home, { recursive: true, force: true }); };

  const server = {
    proc, home, cwd, configFile, exited,
    log: () => stderr,
    stdout: () => stdout,
    /** Resolves with the match of `re` in the log (from character `from` on); rejects after timeoutMs. */
    waitForLog(re, { from = 0, timeoutMs = 5000 } = {}) {
      const m = stderr.slice(from).match(re);
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const w = { re, from, resolve: (x) => { clearTimeout(timer); resolve(x); } };
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`log line ${re} did not appear within ${timeoutMs} ms; log:\n${stderr}`));
        }, timeoutMs);
        waiters.add(w);
        exited.then(() => setImmediate(() => {
          if (waiters.delete(w)) {
            clearTimeout(timer);
            reject(new Error(`server exited before log line ${re} appeared; log:\n${stderr}`));
          }
        }));
      });
    },
    /** Sends `signal` (SIGTERM) and resolves with {code, signal}; SIGKILLs after 15 s. */
    async stop(sig = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
      let timer;
      const res = await Promise.race([
        exited,
        new Promise((resolve) => {
          timer = setTimeout(() => {
            proc.kill('SIGKILL');
            exited.then((r) => resolve({ ...r, timedOut: true }));
          }, STOP_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      cleanupHome();
      return res;
    },
    /** SIGKILLs the server (a crash or power loss, as far as the server can tell). */
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      const res = await exited;
      cleanupHome();
      return res;
    },
  };

  return new Promise((resolve, reject) => {
    const fail = (why) => {
      clearTimeout(timer);
      waiters.clear();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      exited.then(() => {
        cleanupHome();
        reject(new Error(`goosed (${cmd.join(' ')}) ${why}; stderr:\n${stderr}`));
      });
    };
    const timer = setTimeout(() => fail(`was not listening after ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    exited.then((r) => {
      if (!server.url) fail(r.error ? `could not be started: ${r.error.message}` : `exited (code ${r.code}, signal ${r.signal}) before listening`);
    });
    server.waitForLog(LISTENING, { timeoutMs: START_TIMEOUT_MS + 1000 }).then((m) => {
      clearTimeout(timer);
      let host = m[2];
      server.host = host;
      server.port = Number(m[3]);
      // A wildcard bind is reached through loopback.
      if (host === '0.0.0.0') host = '127.0.0.1';
      if (host === '[::]') host = '[::1]';
      server.url = `${m[1]}://${host}:${server.port}`;
      server.tlsOptions = opts.tlsOptions; // https: what lib/ws.mjs's tls.connect is given (ca, ...)
      server.connectHost = host.replace(/^\[|\]$/g, '');
      resolve(server);
    }, () => { /* the exit or timeout path reports */ });
  });
}

/** Asserts the log has no sanitizer report. */
export function assertCleanLog(log, what = 'goosed') {
  const m = log.match(SANITIZER);
  assert.equal(m, null, `${what} log contains a sanitizer report:\n${log}`);
}

/** Teardown for every server: SIGTERM, exit code 0, `shutdown complete` and no sanitizer report in the log. */
export async function stopAndCheck(server, sig = 'SIGTERM') {
  if (!server) return;
  const r = await server.stop(sig);
  assertCleanLog(server.log());
  assert.ok(!r.timedOut, `goosed did not exit within ${STOP_TIMEOUT_MS} ms of ${sig}; log:\n${server.log()}`);
  assert.deepEqual({ code: r.code, signal: r.signal }, { code: 0, signal: null },
    `goosed should exit 0 on ${sig}; log:\n${server.log()}`);
  assert.match(server.log(), /shutdown complete/, `goosed should log "shutdown complete" on ${sig}`);
  return r;
}

/** Teardown for a server killed with SIGKILL: only the log is checked. */
export async function kill9AndCheck(server) {
  const r = await server.kill9();
  assertCleanLog(server.log());
  return r;
}

/** Starts a server that is stopped and checked (stopAndCheck) when test/suite context `t` ends. */
export async function withServer(t, opts) {
  const s = await startServer(opts);
  t.after(() => stopAndCheck(s));
  return s;
}

/**
 * One-shot run (--help, --version, configuration errors): resolves with {code, signal, stdout,
 * stderr}. A fresh HOME is used unless env.HOME is given. A server that starts serving instead
 * of exiting is killed after timeoutMs and reported with timedOut: true.
 */
export function runGoosed(args = [], env = {}, { timeoutMs = 5000, cwd } = {}) {
  const ownHome = !('HOME' in env);
  const home = ownHome ? tempDir() : env.HOME;
  recordSecretEnv(env);
  // `user add` and `user token` print a new token on stdout, by design: a secret, not a log.
  const prints_token = args[0] === 'user' && (args[1] === 'add' || args[1] === 'token');
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const recorded = recordOutput('run');
    const proc = spawn(GOOSED_BIN, args, { cwd: cwd ?? home ?? os.tmpdir(), env: childEnv(home, env), stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d) => { stdout += d; if (!prints_token) recorded.stdout(d); });
    proc.stderr.on('data', (d) => { stderr += d; recorded.stderr(d); });
    const timer = setTimeout(() => { timedOut = true; proc.kill('SIGKILL'); }, timeoutMs);
    const done = (code, signal, error) => {
      clearTimeout(timer);
      if (prints_token) for (const t of stdout.split('\n')) recordSecret(t.trim(), `token printed by goosed ${args.join(' ')}`);
      if (ownHome) rmSync(home, { recursive: true, force: true });
      resolve({ code, signal, stdout, stderr, timedOut, error });
    };
    proc.on('error', (e) => done(null, null, e));
    proc.on('close', (code, signal) => done(code, signal));
  });
}

/** Whether a command is on PATH (a test that needs it skips cleanly otherwise). */
export function have(tool) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A free loopback port: taken with port 0, then released, for a peer that cannot say which port
 * it took (nginx, Prometheus). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
