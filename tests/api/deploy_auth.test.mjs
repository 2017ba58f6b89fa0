// The secret key of a deployment: read from a file (GOOSE_SERVER__SECRET_KEY_FILE, a mounted
// container or Kubernetes secret), or generated at the first start into the data directory
// (GOOSE_GENERATE_SECRET, what the container image asks for, so that the guide's `docker run`
// with no key serves 0.0.0.0 with authentication on). The key's path is logged, never the key.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAndCheck, tempDir, runGoosed } from './lib/server.mjs';
import { recordSecret } from './lib/record.mjs';

const KEY = 'file-held-secret-key-0123456789';

async function status(srv, p, headers = {}) {
  return (await fetch(`${srv.url}${p}`, { headers })).status;
}

describe('GOOSE_SERVER__SECRET_KEY_FILE', () => {
  it('is the X-Secret-Key (its trailing newline dropped), and opens 0.0.0.0', async () => {
    recordSecret(KEY, 'the key file');
    const dir = tempDir('goosed-keyfile-');
    const file = path.join(dir, 'key');
    writeFileSync(file, `${KEY}\n`, { mode: 0o600 });
    const srv = await startServer({ args: ['--host', '0.0.0.0'], env: { GOOSE_SERVER__SECRET_KEY_FILE: file } });
    try {
      assert.equal(await status(srv, '/api/sessions'), 401);
      assert.equal(await status(srv, '/api/sessions', { 'X-Secret-Key': `${KEY}\n`.trim() }), 200);
      assert.equal(await status(srv, '/api/sessions', { 'X-Secret-Key': `${KEY}x` }), 401);
      assert.match(srv.log(), /authentication on: X-Secret-Key/);
      assert.ok(!srv.log().includes(KEY));
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('the config.yaml key names it too', async () => {
    const dir = tempDir('goosed-keyfile-');
    const file = path.join(dir, 'key');
    writeFileSync(file, KEY);
    const srv = await startServer({ configYaml: `GOOSE_SERVER__SECRET_KEY_FILE: ${file}\n` });
    try {
      assert.equal(await status(srv, '/api/sessions'), 401);
      assert.equal(await status(srv, '/api/sessions', { 'X-Secret-Key': KEY }), 200);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('missing, empty or given with GOOSE_SERVER__SECRET_KEY: exit 2, saying why, without the key', async () => {
    const dir = tempDir('goosed-keyfile-');
    const missing = path.join(dir, 'nope');
    let r = await runGoosed(['--port', '0'], { HOME: dir, GOOSE_SERVER__SECRET_KEY_FILE: missing });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot read the secret key file \\(secret_key_file\\) ${missing}: No such file`));
    const empty = path.join(dir, 'empty');
    writeFileSync(empty, '\n');
    r = await runGoosed(['--port', '0'], { HOME: dir, GOOSE_SERVER__SECRET_KEY_FILE: empty });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /must hold one secret key of 1 to 511 bytes/);
    const file = path.join(dir, 'key');
    writeFileSync(file, KEY);
    r = await runGoosed(['--port', '0'], { HOME: dir, GOOSE_SERVER__SECRET_KEY_FILE: file, GOOSE_SERVER__SECRET_KEY: 'another-key-123456' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /both GOOSE_SERVER__SECRET_KEY and GOOSE_SERVER__SECRET_KEY_FILE are set/);
    assert.ok(!r.stderr.includes(KEY) && !r.stderr.includes('another-key-123456'));
  });
});

describe('GOOSE_GENERATE_SECRET', () => {
  it('makes a key at the first start (0600, in the data directory), logs its path, keeps it', async () => {
    const home = tempDir('goosed-gen-');
    const file = path.join(home, '.local/share/goose/sessions/secret_key');
    const opts = { home, args: ['--host', '0.0.0.0'], env: { GOOSE_GENERATE_SECRET: 'true' } };
    let srv = await startServer(opts);
    let key;
    try {
      key = readFileSync(file, 'utf8').trim();
      recordSecret(key, 'the generated key');
      assert.match(key, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.match(srv.log(), new RegExp(`generated a secret key .*cat ${file}`));
      assert.ok(!srv.log().includes(key), 'the key is not in the log');
      assert.equal(await status(srv, '/api/sessions'), 401);
      assert.equal(await status(srv, '/api/sessions', { 'X-Secret-Key': key }), 200);
    } finally {
      await stopAndCheck(srv);
    }
    srv = await startServer(opts);
    try {
      assert.equal(readFileSync(file, 'utf8').trim(), key, 'the same key at the next start');
      assert.doesNotMatch(srv.log(), /generated a secret key/);
      assert.match(srv.log(), new RegExp(`secret key is the one generated at the first start, in ${file}`));
      assert.equal(await status(srv, '/api/sessions', { 'X-Secret-Key': key }), 200);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('a key given wins: no file is made', async () => {
    const home = tempDir('goosed-gen-');
    const srv = await startServer({ home, env: { GOOSE_GENERATE_SECRET: 'true', GOOSE_SERVER__SECRET_KEY: KEY } });
    try {
      assert.ok(!existsSync(path.join(home, '.local/share/goose/sessions/secret_key')));
      assert.equal(await status(srv, '/api/sessions', { 'X-Secret-Key': KEY }), 200);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('off (the default): 0.0.0.0 with nothing configured is still refused', async () => {
    const r = await runGoosed(['--host', '0.0.0.0', '--port', '0'], { GOOSE_GENERATE_SECRET: 'false' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0/);
  });
});
