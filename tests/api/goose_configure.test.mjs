// `goose configure list|get|set|unset` and `goose server`, black-box: the real build/goose with a
// temporary HOME. Each setting's source (flag, env, file, secrets, default); secrets (from the
// environment, config.yaml or secrets.yaml) never in the output, --json included; set/unset keep
// the file's comments, refuse bad keys (exit 2) and values (exit 1), and a real goosed started
// on the result uses it; `goose server` with the deployment guide's environment serves /status.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GOOSED_BIN, startServer, stopAndCheck, tempDir, assertCleanLog } from './lib/server.mjs';
import { get } from './lib/http.mjs';
import { recordOutput, recordSecret, recordSecretEnv } from './lib/record.mjs';

const GOOSE_BIN = path.join(path.dirname(GOOSED_BIN), 'goose');
const PASS_THROUGH = ['PATH', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS', 'TSAN_OPTIONS'];
const LISTENING = /listening on (https?):\/\/(\[[^\]]+\]|[^\s:/]+):(\d+)/;

function childEnv(home, extra) {
  const env = { HOME: home };
  for (const k of PASS_THROUGH) if (process.env[k] !== undefined) env[k] = process.env[k];
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = String(v);
  return env;
}

/** Runs `goose ARGS` with HOME=home and env; resolves {code, stdout, stderr}. Both streams are
 * recorded for the suite's log scan, and env's secrets with them. */
function goose(home, args, env = {}) {
  recordSecretEnv(env);
  const recorded = recordOutput('goose');
  return new Promise((resolve, reject) => {
    const proc = spawn(GOOSE_BIN, args, { cwd: home, env: childEnv(home, env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d) => { stdout += d; recorded.stdout(d); });
    proc.stderr.on('data', (d) => { stderr += d; recorded.stderr(d); });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    proc.on('error', (e) => { clearTimeout(timer); reject(e); });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      assertCleanLog(stderr, `goose ${args.join(' ')}`);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function configDir(home) {
  const d = path.join(home, '.config', 'goose');
  mkdirSync(d, { recursive: true });
  return d;
}

/** The rows of `goose configure list --json`, by key. */
async function listJson(home, args = [], env = {}) {
  const r = await goose(home, ['configure', 'list', '--json', ...args], env);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout);
  assert.ok(Array.isArray(rows));
  for (const row of rows) assert.deepEqual(Object.keys(row).sort(), ['env', 'key', 'secret', 'source', 'value']);
  return { rows: Object.fromEntries(rows.map((row) => [row.key, row])), text: r.stdout };
}

const OPENAI = 'sk-test-openai-0123456789abcdefghijklmnop';
const ANTHROPIC = 'sk-ant-from-secrets-yaml-abcdef0123456789';
const SERVER_SECRET = 'server-secret-key-in-config-yaml-42';
const SERVER_KEY = randomBytes(32).toString('hex'); // not a pattern another test's output has

describe('goose configure list', () => {
  it('reports each setting with its source: flag, env, file, secrets, default', async () => {
    const home = tempDir();
    const dir = configDir(home);
    writeFileSync(path.join(dir, 'config.yaml'), [
      '# comment',
      'GOOSE_PROVIDER: anthropic',
      'api_timeout: 60',
      'cors_origins:',
      '  - https://a.example',
      '  - https://b.example',
      `GOOSE_SERVER__SECRET_KEY: "${SERVER_SECRET}"`,
      '',
    ].join('\n'));
    recordSecret(SERVER_SECRET, 'GOOSE_SERVER__SECRET_KEY in config.yaml');
    writeFileSync(path.join(dir, 'secrets.yaml'), `ANTHROPIC_API_KEY: "${ANTHROPIC}"\n`, { mode: 0o600 });
    recordSecret(ANTHROPIC, 'ANTHROPIC_API_KEY in secrets.yaml');
    const env = { GOOSE_MODEL: 'from-env', OPENAI_API_KEY: OPENAI, GOOSE_PORT: '3999', GOOSE_SERVER_KEY: SERVER_KEY };
    const { rows, text } = await listJson(home, ['--port', '4000'], env);

    assert.deepEqual(rows.GOOSE_PORT, { key: 'GOOSE_PORT', env: 'GOOSE_PORT', value: 4000, source: 'flag', secret: false });
    assert.equal(rows.GOOSE_MODEL.value, 'from-env');
    assert.equal(rows.GOOSE_MODEL.source, 'env');
    assert.equal(rows.GOOSE_PROVIDER.value, 'anthropic');
    assert.equal(rows.GOOSE_PROVIDER.source, 'file');
    assert.deepEqual(rows.api_timeout, { key: 'api_timeout', env: 'GOOSE_API_TIMEOUT', value: 60, source: 'file', secret: false });
    assert.deepEqual(rows.cors_origins.value, ['https://a.example', 'https://b.example']);
    assert.equal(rows.cors_origins.source, 'file');
    assert.deepEqual(rows.max_retries, { key: 'max_retries', env: 'GOOSE_MAX_RETRIES', value: 3, source: 'default', secret: false });
    assert.equal(rows.GOOSE_HOST.value, '127.0.0.1');
    assert.equal(rows.tool_network.value, 'true');
    assert.equal(rows.log_level.env, 'RUST_LOG');
    // the secrets: where they came from, masked
    assert.deepEqual(rows.GOOSE_SERVER__SECRET_KEY, { key: 'GOOSE_SERVER__SECRET_KEY', env: 'GOOSE_SERVER__SECRET_KEY', value: `(set, ${SERVER_SECRET.length} chars)`, source: 'file', secret: true });
    assert.deepEqual(rows.OPENAI_API_KEY, { key: 'OPENAI_API_KEY', env: 'OPENAI_API_KEY', value: `(set, ${OPENAI.length} chars)`, source: 'env', secret: true });
    assert.deepEqual(rows.ANTHROPIC_API_KEY, { key: 'ANTHROPIC_API_KEY', env: 'ANTHROPIC_API_KEY', value: `(set, ${ANTHROPIC.length} chars)`, source: 'secrets', secret: true });
    assert.equal(rows.GOOGLE_API_KEY.value, null);
    assert.equal(rows.GOOGLE_API_KEY.source, 'default');
    assert.equal(rows.GOOSE_SERVER_KEY.source, 'env');
    assert.equal(rows.GOOSE_SERVER_KEY.secret, true);
    for (const s of [OPENAI, ANTHROPIC, SERVER_SECRET, SERVER_KEY]) {
      assert.ok(!text.includes(s), 'a secret in --json');
      assert.ok(!text.includes(s.slice(0, 12)), 'a secret\'s prefix in --json');
    }

    // The terminal's columns: the same, the config file named once.
    const t = await goose(home, ['configure', 'list', '--port', '4000'], env);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, new RegExp(`config file: +${path.join(dir, 'config.yaml').replace(/[.]/g, '\\.')}\n`));
    assert.match(t.stdout, /^KEY +VALUE +SOURCE +ENVIRONMENT$/m);
    assert.match(t.stdout, /^GOOSE_PORT +4000 +flag +GOOSE_PORT$/m);
    assert.match(t.stdout, /^GOOSE_MODEL +from-env +env +GOOSE_MODEL$/m);
    assert.match(t.stdout, /^api_timeout +60 +file +GOOSE_API_TIMEOUT$/m);
    assert.match(t.stdout, /^max_retries +3 +default +GOOSE_MAX_RETRIES$/m);
    assert.match(t.stdout, /^ANTHROPIC_API_KEY +\(set, \d+ chars\) +secrets +ANTHROPIC_API_KEY$/m);
    assert.match(t.stdout, /^OPENAI_API_KEY +\(set, \d+ chars\) +env +OPENAI_API_KEY$/m);
    for (const s of [OPENAI, ANTHROPIC, SERVER_SECRET, SERVER_KEY]) assert.ok(!t.stdout.includes(s.slice(0, 12)), 'a secret in the listing');
    assert.equal(t.stdout.split(path.join(dir, 'config.yaml')).length, 2, 'the path named once');
  });

  it('has every row of the table (each environment variable goose server --help names)', async () => {
    const home = tempDir();
    const { rows } = await listJson(home);
    const envs = new Set(Object.values(rows).map((r) => r.env));
    const help = await goose(home, ['server', '--help']);
    assert.equal(help.code, 0);
    const named = help.stdout.slice(help.stdout.indexOf('Environment:')).match(/\b(GOOSE_[A-Z_]+|RUST_LOG)\b/g);
    for (const v of named) if (v !== 'GOOSE_CONFIG_DIR') assert.ok(envs.has(v), `${v} is listed`);
    assert.ok(Object.keys(rows).length >= 40);
  });

  it('a bad value in config.yaml is the failure it would be for goosed (exit 1), a bad flag exit 2', async () => {
    const home = tempDir();
    writeFileSync(path.join(configDir(home), 'config.yaml'), 'api_timeout: soon\n');
    const r = await goose(home, ['configure', 'list']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /config\.yaml:1: api_timeout: expected a number of seconds/);
    const f = await goose(tempDir(), ['configure', 'list', '--bogus']);
    assert.equal(f.code, 2);
    assert.match(f.stderr, /unknown option "--bogus"/);
  });
});

describe('goose configure get', () => {
  it('prints the effective value; a secret masked; an unknown key exits 2 with a hint', async () => {
    const home = tempDir();
    writeFileSync(path.join(configDir(home), 'config.yaml'), 'max_retries: 7\n');
    let r = await goose(home, ['configure', 'get', 'max_retries']);
    assert.deepEqual([r.code, r.stdout], [0, '7\n']);
    r = await goose(home, ['configure', 'get', 'GOOSE_MAX_RETRIES', '--json'], { GOOSE_MAX_RETRIES: '9' });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { key: 'max_retries', env: 'GOOSE_MAX_RETRIES', value: 9, source: 'env', secret: false });
    r = await goose(home, ['configure', 'get', 'OPENAI_API_KEY'], { OPENAI_API_KEY: OPENAI });
    assert.deepEqual([r.code, r.stdout], [0, `(set, ${OPENAI.length} chars)\n`]);
    r = await goose(home, ['configure', 'get', 'GOOSE_SERVER__SECRET_KEY', '--json'], { GOOSE_SERVER__SECRET_KEY: SERVER_SECRET });
    assert.equal(JSON.parse(r.stdout).value, `(set, ${SERVER_SECRET.length} chars)`);
    assert.ok(!r.stdout.includes(SERVER_SECRET));
    r = await goose(home, ['configure', 'get', 'goose_port']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown key "goose_port": did you mean GOOSE_PORT\?/);
    r = await goose(home, ['configure', 'get', 'no_such_thing']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /goose configure list shows every key/);
    r = await goose(home, ['configure', 'get']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage: goose configure get KEY/);
  });

  it("shows where each provider is reached (its host and path variables: the environment's, else the built-in), which set refuses", async () => {
    const home = tempDir();
    const { rows } = await listJson(home, [], { OPENAI_HOST: 'http://10.0.0.5:8000' });
    assert.deepEqual(rows.OPENAI_HOST, { key: 'OPENAI_HOST', env: 'OPENAI_HOST', value: 'http://10.0.0.5:8000', source: 'env', secret: false });
    assert.deepEqual(rows.OPENAI_BASE_PATH, { key: 'OPENAI_BASE_PATH', env: 'OPENAI_BASE_PATH', value: 'v1/chat/completions', source: 'default', secret: false });
    assert.equal(rows.ANTHROPIC_HOST.value, 'https://api.anthropic.com');
    assert.equal(rows.OLLAMA_HOST.source, 'default');
    let r = await goose(home, ['configure', 'get', 'OLLAMA_HOST'], { OLLAMA_HOST: 'http://gpu-box:11434' });
    assert.deepEqual([r.code, r.stdout], [0, 'http://gpu-box:11434\n']);
    for (const cmd of [['set', 'OPENAI_HOST', 'http://x'], ['unset', 'OPENAI_HOST']]) {
      r = await goose(home, ['configure', ...cmd]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /OPENAI_HOST is read from the environment only/);
    }
    assert.ok(!existsSync(path.join(home, '.config', 'goose', 'config.yaml')), 'nothing written');
  });
});

describe('goose configure set and unset', () => {
  it('keep the file\'s comments and other lines; goosed started on the file uses the values', async () => {
    const home = tempDir();
    const file = path.join(configDir(home), 'config.yaml');
    const original = [
      '# goose configuration',
      'GOOSE_MODEL: keep-me  # a model',
      'api_timeout: 60 # seconds',
      'cors_origins:',
      '  - https://old.example',
      'extensions:',
      '  developer:',
      '    enabled: true',
      '# the end',
      '',
    ].join('\n');
    writeFileSync(file, original);
    let r = await goose(home, ['configure', 'set', 'api_timeout', '120']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /api_timeout: 120/);
    r = await goose(home, ['configure', 'set', 'GOOSE_CORS_ORIGINS', 'https://a.example,https://b.example']);
    assert.equal(r.code, 0, r.stderr);
    r = await goose(home, ['configure', 'set', 'max_retries', '5']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(file, 'utf8'), [
      '# goose configuration',
      'GOOSE_MODEL: keep-me  # a model',
      'api_timeout: 120 # seconds',
      'cors_origins: "https://a.example,https://b.example"',
      'extensions:',
      '  developer:',
      '    enabled: true',
      '# the end',
      'max_retries: 5',
      '',
    ].join('\n'));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(!existsSync(`${file}.tmp`), 'no temporary file left');

    const srv = await startServer({ home });
    try {
      const c = (await get(srv, '/api/config')).body;
      assert.equal(c.api_timeout, 120);
      assert.equal(c.max_retries, 5);
      assert.equal(c.model, 'keep-me');
      assert.deepEqual(c.cors_origins, ['https://a.example', 'https://b.example']);
    } finally {
      await stopAndCheck(srv);
    }

    r = await goose(home, ['configure', 'unset', 'api_timeout']);
    assert.equal(r.code, 0, r.stderr);
    r = await goose(home, ['configure', 'unset', 'cors_origins']);
    assert.equal(r.code, 0, r.stderr);
    r = await goose(home, ['configure', 'unset', 'api_timeout']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /api_timeout was not set/);
    const after = readFileSync(file, 'utf8');
    assert.ok(after.startsWith('# goose configuration\nGOOSE_MODEL: keep-me  # a model\nextensions:\n'), after);
    assert.match(after, /# the end\nmax_retries: 5\n$/);
    const { rows } = await listJson(home);
    assert.deepEqual([rows.api_timeout.value, rows.api_timeout.source], [600, 'default']);
    assert.deepEqual([rows.cors_origins.value, rows.cors_origins.source], [[], 'default']);
  });

  it('a provider\'s API key goes to secrets.yaml (0600), never to config.yaml or the output; goosed uses it', async () => {
    const home = tempDir();
    const dir = configDir(home);
    writeFileSync(path.join(dir, 'config.yaml'), '# mine\n');
    const key = 'sk-set-by-goose-configure-0123456789';
    recordSecret(key, 'OPENAI_API_KEY given to goose configure set');
    let r = await goose(home, ['configure', 'set', 'OPENAI_API_KEY', key]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(key) && !r.stderr.includes(key));
    assert.match(r.stdout, /OPENAI_API_KEY: \(set, \d+ chars\) in .*secrets\.yaml/);
    const secrets = path.join(dir, 'secrets.yaml');
    assert.equal(statSync(secrets).mode & 0o777, 0o600);
    assert.match(readFileSync(secrets, 'utf8'), new RegExp(`^OPENAI_API_KEY: "${key}"$`, 'm'));
    assert.equal(readFileSync(path.join(dir, 'config.yaml'), 'utf8'), '# mine\n');
    const { rows, text } = await listJson(home);
    assert.deepEqual([rows.OPENAI_API_KEY.source, rows.OPENAI_API_KEY.value], ['secrets', `(set, ${key.length} chars)`]);
    assert.ok(!text.includes(key));

    const srv = await startServer({ home });
    try {
      const p = (await get(srv, '/api/providers')).body;
      assert.equal(p.find((x) => x.name === 'openai').configured, true);
    } finally {
      await stopAndCheck(srv);
    }
    r = await goose(home, ['configure', 'unset', 'OPENAI_API_KEY']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(readFileSync(secrets, 'utf8'), /OPENAI_API_KEY/);
    assert.equal((await listJson(home)).rows.OPENAI_API_KEY.value, null);
  });

  it('refuses an unknown key (2, with a hint) and a bad value (1, the table\'s message), leaving the file as it was', async () => {
    const home = tempDir();
    const file = path.join(configDir(home), 'config.yaml');
    writeFileSync(file, 'GOOSE_PORT: 3000\n');
    const cases = [
      [['GOOSE_PORT', 'abc'], 1, /GOOSE_PORT: expected a port 0\.\.65535, got "abc"/],
      [['GOOSE_PORT', '70000'], 1, /expected a port 0\.\.65535/],
      [['GOOSE_MODE', 'yolo'], 1, /expected an execution mode: auto, approve, smart_approve or chat/],
      [['allowed_roots', '/no/such/dir'], 1, /\/no\/such\/dir/],
      [['tool_network', 'maybe'], 1, /expected true, false or host/],
      [['port', '4000'], 2, /unknown key "port": did you mean GOOSE_PORT\?/],
      [['wat', '1'], 2, /unknown key "wat"/],
      [['GOOSE_PORT'], 2, /usage: goose configure set KEY VALUE/],
      [['GOOSE_PORT', '1', 'extra'], 2, /unexpected argument "extra"/],
    ];
    for (const [args, code, re] of cases) {
      const r = await goose(home, ['configure', 'set', ...args]);
      assert.equal(r.code, code, `set ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
    // a secret refused is not echoed in the message
    const long = `too-long-server-secret-${'x'.repeat(600)}`;
    recordSecret(long, 'a GOOSE_SERVER__SECRET_KEY too long for goosed');
    let r = await goose(home, ['configure', 'set', 'GOOSE_SERVER__SECRET_KEY', long]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /GOOSE_SERVER__SECRET_KEY: expected a secret key of at most 511 bytes, got 623 bytes/);
    assert.ok(!r.stderr.includes('too-long-server'));
    r = await goose(home, ['configure', 'set', 'GOOSE_SERVER__SECRET_KEY', 'a-server-secret-set-here']);
    recordSecret('a-server-secret-set-here', 'GOOSE_SERVER__SECRET_KEY given to goose configure set');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /GOOSE_SERVER__SECRET_KEY: \(set, 24 chars\)/);
    r = await goose(home, ['configure', 'unset', 'GOOSE_SERVER__SECRET_KEY']);
    assert.equal(r.code, 0, r.stderr);
    r = await goose(home, ['configure', 'unset', 'nope']);
    assert.equal(r.code, 2);
    assert.equal(readFileSync(file, 'utf8'), 'GOOSE_PORT: 3000\n');
    // a flow mapping cannot be edited line by line: refused, the file untouched
    writeFileSync(file, '{GOOSE_PORT: 3000}\n');
    r = await goose(home, ['configure', 'set', 'api_timeout', '5']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /edit it by hand/);
    assert.equal(readFileSync(file, 'utf8'), '{GOOSE_PORT: 3000}\n');
  });

  it('writes where goosed reads: GOOSE_CONFIG_DIR, XDG_CONFIG_HOME, --config; notes an environment override', async () => {
    const home = tempDir();
    const cdir = path.join(home, 'cfgdir');
    let r = await goose(home, ['configure', 'set', 'GOOSE_MODEL', 'm1'], { GOOSE_CONFIG_DIR: cdir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(path.join(cdir, 'config.yaml'), 'utf8'), 'GOOSE_MODEL: "m1"\n');
    const xdg = path.join(home, 'xdg');
    r = await goose(home, ['configure', 'set', 'GOOSE_MODEL', 'm2'], { XDG_CONFIG_HOME: xdg, GOOSE_MODEL: 'env-model' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /GOOSE_MODEL is set in the environment, which takes precedence/);
    assert.equal(readFileSync(path.join(xdg, 'goose', 'config.yaml'), 'utf8'), 'GOOSE_MODEL: "m2"\n');
    const other = path.join(home, 'other.yaml');
    r = await goose(home, ['configure', 'set', '--config', other, 'GOOSE_MODEL', 'm3']);
    assert.equal(r.code, 0, r.stderr);
    r = await goose(home, ['configure', 'get', 'GOOSE_MODEL', '--config', other, '--json']);
    assert.deepEqual(JSON.parse(r.stdout), { key: 'GOOSE_MODEL', env: 'GOOSE_MODEL', value: 'm3', source: 'file', secret: false });
  });
});

describe('goose configure and goose server: help, version, exit codes', () => {
  it('--help on each subcommand (exit 0), no subcommand exit 2', async () => {
    const home = tempDir();
    for (const sub of ['list', 'get', 'set', 'unset']) {
      const r = await goose(home, ['configure', sub, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`^usage: goose configure ${sub}`));
    }
    let r = await goose(home, ['configure', '--help']);
    assert.equal(r.code, 0);
    for (const sub of ['list', 'get', 'set', 'unset']) assert.match(r.stdout, new RegExp(`^  ${sub} `, 'm'));
    r = await goose(home, ['configure']);
    assert.equal(r.code, 2);
    r = await goose(home, ['configure', 'frob']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command "frob"/);
    r = await goose(home, ['server', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: goose server \[options\]/);
    assert.match(r.stdout, /--port PORT/);
    r = await goose(home, ['server', '--version']);
    assert.match(r.stdout, /^goose server \(goosed\) \d+\.\d+/);
    r = await goose(home, ['server', '--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^goose server: unknown option "--bogus"/);
    r = await goose(home, ['server'], { GOOSE_HOST: '0.0.0.0', GOOSE_PORT: '0' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^goose server: refusing to listen on 0\.0\.0\.0 with no authentication/m);
  });

  it('goose server with the deployment guide\'s environment serves /status and stops cleanly', async () => {
    const home = tempDir();
    const secret = 'compose-secret-key-0123456789';
    // the guide's Compose environment, with the secret key goosed requires on 0.0.0.0
    const env = { GOOSE_HOST: '0.0.0.0', GOOSE_PORT: '0', GOOSE_PROVIDER: 'anthropic', ANTHROPIC_API_KEY: 'sk-ant-compose-0123456789', GOOSE_SERVER__SECRET_KEY: secret };
    recordSecretEnv(env);
    const recorded = recordOutput('goose-server');
    const proc = spawn(GOOSE_BIN, ['server'], { cwd: home, env: childEnv(home, env), stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    proc.stdout.on('data', (d) => recorded.stdout(d));
    const exited = new Promise((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })));
    const url = await new Promise((resolve, reject) => {
      proc.stderr.setEncoding('utf8');
      proc.stderr.on('data', (d) => {
        log += d;
        recorded.stderr(d);
        const m = log.match(LISTENING);
        if (m) resolve(`${m[1]}://127.0.0.1:${m[3]}`);
      });
      exited.then((r) => reject(new Error(`goose server exited (${r.code}) before listening:\n${log}`)));
    });
    try {
      const st = await get(url, '/status');
      assert.equal(st.status, 200);
      const c = await get(url, '/api/config', { headers: { 'X-Secret-Key': secret } });
      assert.equal(c.status, 200);
      assert.equal(c.body.provider, 'anthropic');
    } finally {
      proc.kill('SIGTERM');
    }
    assert.deepEqual(await exited, { code: 0, signal: null });
    assert.match(log, /shutdown complete/);
    assertCleanLog(log, 'goose server');
  });
});
