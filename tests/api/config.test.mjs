// Configuration: flags > environment > config.yaml > defaults, observed through the listening line
// and GET /api/config; --help/--version; errors that stop start-up with exit 2 and one clear line.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, rmSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { startServer, stopAndCheck, runGoosed, tempDir } from './lib/server.mjs';
import { get, request } from './lib/http.mjs';

const DEFAULTS = {
  provider: null, model: null, host: '127.0.0.1', api_timeout: 600, max_retries: 3,
  max_body_size: 10485760, cors_origins: [], log_level: 'info', config_file: null,
};

/** Runs a server with opts, hands it to fn, then stops and checks it. */
async function withServer(opts, fn) {
  const srv = await startServer(opts);
  try {
    return await fn(srv);
  } finally {
    await stopAndCheck(srv);
  }
}

async function getConfig(srv) {
  const r = await get(srv, '/api/config');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
  for (const k of [...Object.keys(DEFAULTS), 'port', 'data_dir']) assert.ok(k in r.body, `/api/config has ${k}: ${r.text}`);
  assert.ok(Number.isInteger(r.body.port));
  assert.equal(typeof r.body.data_dir, 'string');
  return r.body;
}

/** The port /api/config reports: the configured 0 or, better, the bound port. */
function assertPort(cfg, srv) {
  assert.ok(cfg.port === srv.port || cfg.port === 0, `port ${cfg.port}, listening on ${srv.port}`);
}

/** Asserts a start-up failure: exit 2, nothing served, exactly one stderr line matching re. */
function assertStartupError(r, re) {
  assert.ok(!r.timedOut, `goosed did not exit; stderr:\n${r.stderr}`);
  assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /listening on/);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `exactly one stderr line, got:\n${r.stderr}`);
  assert.match(lines[0], /^goosed: /);
  assert.match(lines[0], re);
  return lines[0];
}

/** A HOME with a config.yaml holding `yaml`; returns {home, file}. */
function homeWithConfig(yaml) {
  const home = tempDir();
  const dir = path.join(home, '.config', 'goose');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, yaml);
  return { home, file };
}

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('one-shot runs', () => {
  it('--help prints the usage to stdout and exits 0', async () => {
    const r = await runGoosed(['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /usage/i);
    for (const f of ['--host', '--port', '--log-level', '--config', '--help', '--version']) assert.ok(r.stdout.includes(f), `--help mentions ${f}`);
    assert.doesNotMatch(r.stderr, /listening on/);
  });

  it('--version prints "goosed X.Y.Z" and exits 0', async () => {
    const r = await runGoosed(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^goosed \d+\.\d+\.\d+\n?$/);
  });

  it('--version wins over a broken config file', async () => {
    const { home } = homeWithConfig('a: [\n');
    try {
      const r = await runGoosed(['--version'], { HOME: home });
      assert.equal(r.code, 0, r.stderr);
    } finally { rmSync(home, { recursive: true, force: true }); }
  });

  for (const flag of ['--bogus', '--bogus=1', '-z', '--ports']) {
    it(`an unknown flag (${flag}) is exit 2 naming it`, async () => {
      const r = await runGoosed([flag]);
      assertStartupError(r, new RegExp(esc(flag.split('=')[0])));
    });
  }

  for (const [args, name] of [
    [['--port', 'abc'], '--port'], [['--port', '65536'], '--port'], [['--port', '-1'], '--port'],
    [['--port', ''], '--port'], [['--port=3x'], '--port'], [['--port'], '--port'],
    [['--log-level', 'loud'], '--log-level'], [['--log-level'], '--log-level'], [['--host', ''], '--host'],
    [['--config'], '--config'],
  ]) {
    it(`a bad flag value (${JSON.stringify(args)}) is exit 2 naming ${name}`, async () => {
      const r = await runGoosed(args);
      assertStartupError(r, new RegExp(esc(name)));
    });
  }

  it('a bad GOOSE_PORT: exit 2 with the documented message', async () => {
    const r = await runGoosed([], { GOOSE_PORT: 'abc' });
    const line = assertStartupError(r, /GOOSE_PORT/);
    assert.equal(line, 'goosed: GOOSE_PORT: expected a port 0..65535, got "abc"');
  });

  for (const [name, value] of [
    ['GOOSE_PORT', '70000'], ['GOOSE_PORT', '-3'], ['GOOSE_MAX_BODY_SIZE', 'abc'], ['GOOSE_MAX_BODY_SIZE', '1023'],
    ['RUST_LOG', 'loud'], ['RUST_LOG', 'info,goose=loud'],
  ]) {
    it(`a bad ${name}=${value}: exit 2 naming the variable and the value`, async () => {
      const r = await runGoosed([], { [name]: value });
      assertStartupError(r, new RegExp(`^goosed: ${name}: .*${esc(value.split('=').at(-1))}`));
    });
  }

  it('--config naming a missing file is exit 2 naming the file', async () => {
    const dir = tempDir();
    try {
      const file = path.join(dir, 'nope.yaml');
      const r = await runGoosed(['--config', file]);
      assertStartupError(r, new RegExp(esc(file)));
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  describe('config.yaml errors: exit 2 with file, line and key', () => {
    for (const [what, yaml, line, key, got] of [
      ['api_timeout: abc', 'GOOSE_PROVIDER: openai\nGOOSE_MODEL: gpt-4o\napi_timeout: abc\n', 3, 'api_timeout', 'abc'],
      ['api_timeout: 0', '# comment\napi_timeout: 0\n', 2, 'api_timeout', '0'],
      ['api_timeout: -5', 'api_timeout: -5\n', 1, 'api_timeout', '-5'],
      ['api_timeout: 1.5', '\n\n\n\napi_timeout: 1.5\n', 5, 'api_timeout', '1.5'],
      ['max_retries: 101', 'max_retries: 3\nmax_retries_x: 1\nmax_retries: 101\n', 3, 'max_retries', '101'],
      ['max_retries: -1', 'max_retries: -1\n', 1, 'max_retries', '-1'],
      ['max_body_size: 1023', 'GOOSE_PROVIDER: x\nmax_body_size: 1023\n', 2, 'max_body_size', '1023'],
      ['max_body_size: lots', 'max_body_size: lots\n', 1, 'max_body_size', 'lots'],
      ['GOOSE_PORT: 99999', 'GOOSE_PORT: 99999\n', 1, 'GOOSE_PORT', '99999'],
      ['log_level: loud', 'a: 1\nb: 2\nlog_level: loud\n', 3, 'log_level', 'loud'],
      ['api_timeout as a list', 'api_timeout:\n  - 1\n  - 2\n', 2, 'api_timeout', null],
      ['cors_origins as a mapping', 'cors_origins:\n  a: 1\n', 2, 'cors_origins', null],
      ['max_retries as a mapping', 'max_retries: {a: 1}\n', 1, 'max_retries', null],
    ]) {
      it(what, async () => {
        const { home, file } = homeWithConfig(yaml);
        try {
          const r = await runGoosed([], { HOME: home });
          const l = assertStartupError(r, new RegExp(`^goosed: ${esc(file)}:${line}: ${key}: \\S`));
          if (got !== null) assert.ok(l.includes(got), `the message quotes the bad value ${got}: ${l}`);
        } finally { rmSync(home, { recursive: true, force: true }); }
      });
    }

    it('YAML syntax error: exit 2, file and line of the problem', async () => {
      const { home, file } = homeWithConfig('GOOSE_PROVIDER: openai\nGOOSE_MODEL: gpt-4o\n  api_timeout: 60\n');
      try {
        const r = await runGoosed([], { HOME: home });
        assertStartupError(r, new RegExp(`^goosed: ${esc(file)}:3: \\S`));
      } finally { rmSync(home, { recursive: true, force: true }); }
    });

    it('YAML syntax error: an unclosed flow sequence', async () => {
      const { home, file } = homeWithConfig('cors_origins: [https://a.example,\n');
      try {
        const r = await runGoosed([], { HOME: home });
        assertStartupError(r, new RegExp(`^goosed: ${esc(file)}:\\d+: \\S`));
      } finally { rmSync(home, { recursive: true, force: true }); }
    });

    it('a top level that is not a mapping', async () => {
      const { home, file } = homeWithConfig('- GOOSE_PROVIDER\n- openai\n');
      try {
        const r = await runGoosed([], { HOME: home });
        assertStartupError(r, new RegExp(`^goosed: ${esc(file)}:1: \\S`));
      } finally { rmSync(home, { recursive: true, force: true }); }
    });

    it('--config with a bad value names that file', async () => {
      const dir = tempDir();
      try {
        const file = path.join(dir, 'goose.yaml');
        writeFileSync(file, 'max_retries: many\n');
        const r = await runGoosed(['--config', file]);
        assertStartupError(r, new RegExp(`^goosed: ${esc(file)}:1: max_retries: `));
      } finally { rmSync(dir, { recursive: true, force: true }); }
    });

    it('GOOSE_CONFIG_DIR/config.yaml with a bad value names that file', async () => {
      const dir = tempDir();
      try {
        const file = path.join(dir, 'config.yaml');
        writeFileSync(file, 'GOOSE_MODEL: m\napi_timeout: soon\n');
        const r = await runGoosed([], { GOOSE_CONFIG_DIR: dir });
        assertStartupError(r, new RegExp(`^goosed: ${esc(file)}:2: api_timeout: `));
      } finally { rmSync(dir, { recursive: true, force: true }); }
    });
  });
});

describe('effective configuration', () => {
  it('defaults, with no config file', () => withServer({}, async (srv) => {
    assert.equal(srv.host, '127.0.0.1');
    const cfg = await getConfig(srv);
    for (const [k, v] of Object.entries(DEFAULTS)) assert.deepEqual(cfg[k], v, k);
    assertPort(cfg, srv);
    assert.ok(cfg.data_dir.startsWith(path.join(srv.home, '.local/share/goose')), `data_dir ${cfg.data_dir}`);
    assert.ok(existsSync(path.join(srv.home, '.local/share/goose/sessions/goosed.db')), 'goosed.db is under $HOME/.local/share/goose/sessions');
    assert.ok(!existsSync(path.join(srv.home, '.local/share/goose/sessions/sessions.db')), "the real Goose's sessions.db is never made");
  }));

  it("seed A's config.yaml, verbatim", () => withServer({
    configYaml: 'GOOSE_PROVIDER: anthropic\nGOOSE_MODEL: claude-sonnet-4-20250514\n# Custom provider settings\napi_timeout: 60\nmax_retries: 3\n',
  }, async (srv) => {
    const cfg = await getConfig(srv);
    assert.equal(cfg.provider, 'anthropic');
    assert.equal(cfg.model, 'claude-sonnet-4-20250514');
    assert.equal(cfg.api_timeout, 60);
    assert.equal(cfg.max_retries, 3);
    assert.equal(cfg.config_file, srv.configFile);
  }));

  it("seed A's troubleshooting line: api_timeout: 120 # seconds", () => withServer({
    configYaml: '# config.yaml\napi_timeout: 120 # seconds\n',
  }, async (srv) => {
    assert.equal((await getConfig(srv)).api_timeout, 120);
  }));

  it('every key from config.yaml takes effect', () => withServer({
    configYaml: [
      'GOOSE_PROVIDER: openai', 'GOOSE_MODEL: gpt-4o', 'GOOSE_HOST: 127.0.0.3', 'api_timeout: 30', 'max_retries: 0',
      'max_body_size: 4096', 'cors_origins:', '  - https://a.example', '  - https://b.example', 'log_level: debug', '',
    ].join('\n'),
  }, async (srv) => {
    assert.equal(srv.host, '127.0.0.3', 'listening on the GOOSE_HOST of config.yaml');
    const cfg = await getConfig(srv);
    assert.deepEqual({ ...cfg, port: undefined, data_dir: undefined }, {
      ...cfg, port: undefined, data_dir: undefined, provider: 'openai', model: 'gpt-4o', host: '127.0.0.3',
      api_timeout: 30, max_retries: 0, max_body_size: 4096, cors_origins: ['https://a.example', 'https://b.example'],
      log_level: 'debug', config_file: srv.configFile,
    });
    // ... and is obeyed, not just reported.
    const big = await request(srv, 'POST', '/api/sessions', { body: `{"name":"x"}${' '.repeat(5000)}`, headers: { 'Content-Type': 'application/json' } });
    assert.equal(big.status, 413);
    const c = await get(srv, '/status', { headers: { Origin: 'https://b.example' } });
    assert.equal(c.headers.get('access-control-allow-origin'), 'https://b.example');
  }));

  it('cors_origins may be a single string', () => withServer({ configYaml: 'cors_origins: https://only.example\n' }, async (srv) => {
    assert.deepEqual((await getConfig(srv)).cors_origins, ['https://only.example']);
  }));

  it('unknown keys in config.yaml (the real Goose keeps many) are ignored', () => withServer({
    configYaml: [
      'GOOSE_PROVIDER: anthropic', 'GOOSE_MODE: smart_approve', 'GOOSE_CLI_THEME: dark', 'extensions:', '  developer:',
      '    enabled: true', '    name: developer', '    type: builtin', '    timeout: 300', '  memory:', '    enabled: false',
      '    type: builtin', 'OPENAI_HOST: https://api.openai.com', 'some_list: [1, 2, {a: b}]', '',
    ].join('\n'),
  }, async (srv) => {
    const cfg = await getConfig(srv);
    assert.equal(cfg.provider, 'anthropic');
    assert.equal(cfg.api_timeout, 600);
  }));

  it('an empty or comment-only config.yaml is fine', async () => {
    for (const yaml of ['', '# nothing here\n', '---\n']) {
      await withServer({ configYaml: yaml }, async (srv) => {
        const cfg = await getConfig(srv);
        assert.equal(cfg.api_timeout, 600);
        assert.equal(cfg.provider, null);
      });
    }
  });

  it('GOOSE_CONFIG_DIR/config.yaml is read instead of ~/.config/goose/config.yaml', async () => {
    const dir = tempDir();
    try {
      writeFileSync(path.join(dir, 'config.yaml'), 'GOOSE_MODEL: from-config-dir\n');
      await withServer({ configYaml: 'GOOSE_MODEL: from-home\n', env: { GOOSE_CONFIG_DIR: dir } }, async (srv) => {
        const cfg = await getConfig(srv);
        assert.equal(cfg.model, 'from-config-dir');
        assert.equal(cfg.config_file, path.join(dir, 'config.yaml'));
      });
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('--config FILE is read instead of the default one', async () => {
    const dir = tempDir();
    try {
      const file = path.join(dir, 'other.yaml');
      writeFileSync(file, 'GOOSE_MODEL: from-flag\nmax_retries: 7\n');
      await withServer({ configYaml: 'GOOSE_MODEL: from-home\n', args: ['--config', file] }, async (srv) => {
        const cfg = await getConfig(srv);
        assert.equal(cfg.model, 'from-flag');
        assert.equal(cfg.max_retries, 7);
        assert.equal(cfg.config_file, file);
      });
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('environment beats config.yaml', () => withServer({
    configYaml: 'GOOSE_PROVIDER: anthropic\nGOOSE_MODEL: file-model\nGOOSE_HOST: 127.0.0.3\nmax_body_size: 4096\ncors_origins: [https://file.example]\nlog_level: warn\n',
    env: {
      GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'env-model', GOOSE_HOST: '127.0.0.2', GOOSE_MAX_BODY_SIZE: '8192',
      GOOSE_CORS_ORIGINS: 'https://env1.example,https://env2.example', RUST_LOG: 'debug',
    },
  }, async (srv) => {
    assert.equal(srv.host, '127.0.0.2', 'GOOSE_HOST from the environment');
    const cfg = await getConfig(srv);
    assert.equal(cfg.provider, 'openai');
    assert.equal(cfg.model, 'env-model');
    assert.equal(cfg.host, '127.0.0.2');
    assert.equal(cfg.max_body_size, 8192);
    assert.deepEqual(cfg.cors_origins, ['https://env1.example', 'https://env2.example']);
    assert.equal(cfg.log_level, 'debug');
  }));

  it('flags beat the environment', () => withServer({
    env: { GOOSE_HOST: '127.0.0.2', RUST_LOG: 'warn', GOOSE_PORT: '1' },
    args: ['--host', '127.0.0.1', '--log-level', 'debug'],
  }, async (srv) => {
    assert.equal(srv.host, '127.0.0.1');
    assert.notEqual(srv.port, 1, '--port 0 beats GOOSE_PORT=1');
    const cfg = await getConfig(srv);
    assert.equal(cfg.host, '127.0.0.1');
    assert.equal(cfg.log_level, 'debug');
  }));

  it('GOOSE_PORT from the environment beats config.yaml', () => withServer({
    port: null, configYaml: 'GOOSE_PORT: 1\n', env: { GOOSE_PORT: '0' },
  }, async (srv) => {
    assert.notEqual(srv.port, 1);
    assert.ok(srv.port > 0);
  }));

  it('--port and --host given as --name=value', () => withServer({
    port: null, args: ['--port=0', '--host=127.0.0.4'],
  }, async (srv) => {
    assert.equal(srv.host, '127.0.0.4');
    assert.ok(srv.port > 0);
    assert.equal((await get(srv, '/status')).text, 'ok');
  }));

  it('a port already in use: start-up fails naming the port, nothing else listening', async () => {
    const a = await startServer();
    try {
      const r = await runGoosed(['--port', String(a.port)]);
      assert.ok(!r.timedOut, `a second server on port ${a.port} did not exit`);
      assert.notEqual(r.code, 0);
      assert.doesNotMatch(r.stderr, /listening on/);
      assert.match(r.stderr, new RegExp(`\\b${a.port}\\b`));
      assert.equal((await get(a, '/status')).text, 'ok', 'the first server is unaffected');
    } finally {
      await stopAndCheck(a);
    }
  });

  it("seed A: without --port or GOOSE_PORT goosed listens on 127.0.0.1:3000", async () => {
    // Port 3000 may be taken on this machine (make run uses it): then start-up must fail trying 3000.
    let srv;
    try {
      srv = await startServer({ port: null });
    } catch (e) {
      assert.match(e.message, /127\.0\.0\.1:3000\b.*(in use|Address)/i, 'if it cannot start, it was 3000 it tried');
      return;
    }
    try {
      assert.equal(srv.host, '127.0.0.1');
      assert.equal(srv.port, 3000);
      assert.equal((await getConfig(srv)).port, 3000);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('--host ::1 listens on IPv6 loopback', async (t) => {
    const probe = net.createServer();
    const v6 = await new Promise((resolve) => {
      probe.once('error', () => resolve(false));
      probe.listen(0, '::1', () => probe.close(() => resolve(true)));
    });
    if (!v6) return t.skip('this machine has no IPv6 loopback');
    await withServer({ args: ['--host', '::1'] }, async (srv) => {
      assert.equal(srv.host, '[::1]');
      assert.equal((await get(srv, '/status')).text, 'ok');
    });
  });

  it("seed B's `goosed --host 0.0.0.0 --port …`: listens on every interface", () => withServer({
    args: ['--host', '0.0.0.0', '--insecure-no-auth'], // no authentication configured here
  }, async (srv) => {
    assert.equal(srv.host, '0.0.0.0');
    assert.equal((await get(srv, '/status')).text, 'ok');
    assert.equal((await getConfig(srv)).host, '0.0.0.0');
  }));

  it("seed A's docker-compose environment (GOOSE_HOST=0.0.0.0, GOOSE_PROVIDER)", () => withServer({
    env: { GOOSE_HOST: '0.0.0.0', GOOSE_INSECURE_NO_AUTH: 'true', GOOSE_PORT: '0', GOOSE_PROVIDER: 'anthropic', ANTHROPIC_API_KEY: 'sk-test-not-a-key', GOOSE_DISABLE_TELEMETRY: 'true' },
  }, async (srv) => {
    assert.equal(srv.host, '0.0.0.0');
    const cfg = await getConfig(srv);
    assert.equal(cfg.provider, 'anthropic');
    assert.doesNotMatch(JSON.stringify(cfg), /sk-test-not-a-key/, 'no secret in /api/config');
    assert.doesNotMatch(srv.log(), /sk-test-not-a-key/, 'no secret in the log');
  }));

  it("seed A's RUST_LOG=info,goose=debug is accepted", () => withServer({ env: { RUST_LOG: 'info,goose=debug' } }, async (srv) => {
    const cfg = await getConfig(srv);
    assert.match(cfg.log_level, /goose=debug/);
    assert.equal((await get(srv, '/status')).text, 'ok');
  }));

  it("seed B's --log-level debug is accepted", () => withServer({ args: ['--log-level', 'debug'] }, async (srv) => {
    assert.equal((await getConfig(srv)).log_level, 'debug');
  }));

  it('--log-level trace is accepted', () => withServer({ args: ['--log-level', 'trace'] }, async (srv) => {
    assert.equal((await getConfig(srv)).log_level, 'trace');
    assert.equal((await get(srv, '/status')).text, 'ok');
  }));

  it('XDG_DATA_HOME moves the store', async () => {
    const xdg = tempDir();
    try {
      await withServer({ env: { XDG_DATA_HOME: xdg } }, async (srv) => {
        const cfg = await getConfig(srv);
        assert.ok(cfg.data_dir.startsWith(path.join(xdg, 'goose')), `data_dir ${cfg.data_dir}`);
        assert.ok(existsSync(path.join(xdg, 'goose/sessions/goosed.db')));
        assert.ok(!existsSync(path.join(srv.home, '.local/share/goose/sessions/goosed.db')));
      });
    } finally { rmSync(xdg, { recursive: true, force: true }); }
  });

  it('every log line is "<RFC3339 ms UTC> <LEVEL> <module>: <text>"', () => withServer({ args: ['--log-level', 'debug'] }, async (srv) => {
    await get(srv, '/status');
    await get(srv, '/nope');
    await srv.stop();
    const lines = srv.log().split('\n').filter(Boolean);
    assert.ok(lines.length >= 3);
    for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|WARN|INFO|DEBUG|TRACE) +[\w.-]+: \S/, l);
  }));
});

// batch_scheduling: goosed's threads under SCHED_BATCH (policy 3 in field 41 of /proc/PID/task/TID/stat)
// unless it is false; SCHED_OTHER is 0.
describe('batch_scheduling', () => {
  /** The scheduling policy of each thread of pid, read after the field (comm) in parentheses;
   *  a thread that ends between the listing and the read (a detached start-up check) is skipped. */
  function policies(pid) {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
      let stat;
      try {
        stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      } catch (e) {
        if (e.code === 'ENOENT' || e.code === 'ESRCH') return [];
        throw e;
      }
      return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38])];
    });
  }

  it('by default every thread of goosed runs under SCHED_BATCH, those started by requests too', () => withServer({}, async (srv) => {
    for (let i = 0; i < 3; i++) assert.equal((await get(srv, '/status')).text, 'ok');
    const p = policies(srv.proc.pid);
    assert.ok(p.length >= 4, `threads: ${p.length}`);
    assert.deepEqual([...new Set(p)], [3], `policies: ${p}`);
  }));

  it('false leaves every thread under SCHED_OTHER', () => withServer({ env: { GOOSE_BATCH_SCHEDULING: 'false' } }, async (srv) => {
    assert.equal((await get(srv, '/status')).text, 'ok');
    assert.deepEqual([...new Set(policies(srv.proc.pid))], [0]);
  }));

  it('a value that is not true or false stops start-up naming it', async () => {
    const r = await runGoosed([], { GOOSE_BATCH_SCHEDULING: 'sometimes' });
    assertStartupError(r, /^goosed: GOOSE_BATCH_SCHEDULING: .*sometimes/);
  });
});
