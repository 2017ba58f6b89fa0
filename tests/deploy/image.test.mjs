// deploy/Dockerfile built and run for real, with no registry and no container engine: the base
// images come from debootstrap (tests/deploy/base.sh), `buildah bud --isolation=chroot` builds the
// Dockerfile unchanged, and `buildah run --isolation=chroot` starts the guide's `goose server`
// from the image (the chroot shares the host's network, so the fake provider runs on the host).
// A streamed conversation is held with it, with the secret key the image generated at its first
// start. The image's size and the time from `buildah run` to the first /status answer are printed
// and written to build/deploy/image-report.json.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO } from '../api/lib/server.mjs';
import { recordOutput, recordSecret, recordSecretEnv } from '../api/lib/record.mjs';
import { startFake, parseSSE } from '../fakes/lib.mjs';

const CACHE = process.env.DEPLOY_CACHE || path.join(REPO, 'build/deploy');
const IMAGE = 'goose:latest';
const KEY = 'sk-ant-deploy-image-test';
const START_TIMEOUT_MS = 30_000;
const SECRET_FILE = '/home/goose/.local/share/goose/sessions/secret_key';

mkdirSync(CACHE, { recursive: true });
const CONF = path.join(CACHE, 'containers.conf');
// crun/runc and podman cannot start containers here; the chroot isolation needs no runtime, and
// the empty default_ulimits stops buildah from setting limits the machine refuses.
writeFileSync(CONF, '[containers]\ndefault_ulimits = []\n');
const ENV = { ...process.env, CONTAINERS_CONF: CONF };
// set once base.sh has chosen the storage driver (overlay, or vfs where overlay cannot mount)
let B = [];

/** The first process named comm found below pid (breadth first), or 0. */
function descendant(pid, comm) {
  const parent = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), { ppid: Number(rest[1]), comm: st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')) });
    } catch {
      // gone meanwhile
    }
  }
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift();
    for (const [child, info] of parent) {
      if (info.ppid !== p) continue;
      if (info.comm === comm) return child;
      queue.push(child);
    }
  }
  return 0;
}

function buildah(args, opts = {}) {
  return execFileSync('buildah', [...B, ...args], { env: ENV, encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
}

describe('deploy/Dockerfile, built with buildah and run', () => {
  let fake;
  let ctr;
  let proc;
  let log = '';
  let exited;
  let url;
  let secret;
  const report = {};

  before(async () => {
    execFileSync(path.join(REPO, 'tests/deploy/base.sh'), { env: { ...ENV, DEPLOY_CACHE: CACHE }, stdio: 'inherit' });
    const driver = readFileSync(path.join(CACHE, 'driver'), 'utf8').trim();
    B = ['--root', path.join(CACHE, `storage-${driver}`), '--runroot', path.join(CACHE, `run-${driver}`), '--storage-driver', driver];
    report.storage_driver = driver;
    // --layers: the package layers are reused while scripts/deps.sh and the Dockerfile stay the same.
    // No -f: the guide's `docker build -t goose:latest .` finds ./Dockerfile (deploy/Dockerfile).
    const t0 = process.hrtime.bigint();
    buildah(['bud', '--isolation=chroot', '--pull=never', '--layers', '--format=docker', '-t', IMAGE, '.'],
      { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
    report.build_seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    fake = await startFake({ keys: { anthropic: KEY } });
  });

  after(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await exited;
    }
    if (ctr) buildah(['rm', ctr]);
    if (fake) await fake.stop();
    writeFileSync(path.join(CACHE, 'image-report.json'), JSON.stringify(report, null, 2) + '\n');
    console.log(`# container image: ${JSON.stringify(report)}`);
  });

  it('is configured as the deployment guide runs it', () => {
    const cfg = JSON.parse(buildah(['inspect', '--type', 'image', IMAGE]));
    const c = cfg.Docker.config;
    assert.deepEqual(c.Entrypoint, ['goose']);
    assert.deepEqual(c.Cmd, ['server']);
    assert.equal(c.User, 'goose');
    assert.deepEqual(Object.keys(c.Volumes).sort(), ['/home/goose/.config/goose', '/home/goose/.local/share/goose']);
    assert.deepEqual(Object.keys(c.ExposedPorts), ['3000/tcp']);
    assert.ok(c.Env.includes('GOOSE_HOST=0.0.0.0'));
    assert.match(c.Healthcheck.Test.join(' '), /\/status/);
    // buildah's own figure ("150 MB"), and the unpacked root file system's bytes
    report.image_size = JSON.parse(buildah(['images', '--json', IMAGE]))[0].size;
    const w = buildah(['from', '--pull=never', IMAGE]).trim();
    try {
      const mnt = buildah(['mount', w]).trim();
      report.rootfs_bytes = Number(execFileSync('du', ['-sb', mnt], { encoding: 'utf8' }).split('\t')[0]);
      buildah(['umount', w]);
    } finally {
      buildah(['rm', w]);
    }
    assert.match(report.image_size, /^\d+(\.\d+)? MB$/);
    assert.ok(report.rootfs_bytes > 0);
  });

  it("starts the guide's `goose server` with no secret given: authentication on, a key generated", async () => {
    ctr = buildah(['from', '--pull=never', IMAGE]).trim();
    // The guide's `docker run -p 3000:3000 -e GOOSE_PROVIDER=anthropic -e ANTHROPIC_API_KEY=...`;
    // GOOSE_PORT=0 instead of 3000 (the host's network is shared), ANTHROPIC_HOST: the fake.
    const env = { GOOSE_PROVIDER: 'anthropic', ANTHROPIC_API_KEY: KEY, ANTHROPIC_HOST: fake.url, GOOSE_PORT: '0' };
    recordSecretEnv(env);
    const recorded = recordOutput('image');
    const t0 = process.hrtime.bigint();
    proc = spawn('buildah', [...B, 'run', '--isolation=chroot', ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]), ctr, '--', 'goose', 'server'],
      { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    exited = new Promise((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })));
    proc.stderr.setEncoding('utf8');
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => { log += d; recorded.stdout(d); });
    const port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line within ${START_TIMEOUT_MS} ms:\n${log}`)), START_TIMEOUT_MS);
      exited.then((r) => reject(new Error(`goose server exited (${JSON.stringify(r)}):\n${log}`)));
      proc.stderr.on('data', (d) => {
        log += d;
        recorded.stderr(d);
        const m = log.match(/listening on http:\/\/0\.0\.0\.0:(\d+)/);
        if (m) { clearTimeout(timer); resolve(Number(m[1])); }
      });
    });
    url = `http://127.0.0.1:${port}`;
    const st = await fetch(`${url}/status`);
    report.start_to_status_ms = Math.round(Number(process.hrtime.bigint() - t0) / 1e5) / 10;
    assert.equal(st.status, 200);
    assert.equal(await st.text(), 'ok');
    assert.match(log, new RegExp(`generated a secret key .*cat ${SECRET_FILE}`));
    const open = await fetch(`${url}/api/sessions`);
    assert.equal(open.status, 401, 'the image requires authentication');
    // the README's way to read it (docker exec CONTAINER cat ...), never from the log
    secret = buildah(['run', '--isolation=chroot', ctr, '--', 'cat', SECRET_FILE]).trim();
    recordSecret(secret, 'the generated secret key');
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(!log.includes(secret), 'the key is not in the log');
    const mode = buildah(['run', '--isolation=chroot', ctr, '--', 'stat', '-c', '%a %U', SECRET_FILE]).trim();
    assert.equal(mode, '600 goose');
  });

  it('holds a streamed conversation through the fake provider', async () => {
    assert.ok(secret, 'the server started');
    const H = { 'X-Secret-Key': secret, 'Content-Type': 'application/json' };
    const s = await fetch(`${url}/api/sessions`, { method: 'POST', headers: H, body: JSON.stringify({ name: 'image', working_directory: '/home/goose' }) });
    assert.equal(s.status, 201);
    const { id } = await s.json();
    await fake.script([{ text: 'Hello from inside the image.', chunks: 4 }, { text: 'Still here.' }]);
    for (const [content, want] of [['hello', 'Hello from inside the image.'], ['again', 'Still here.']]) {
      const r = await fetch(`${url}/sessions/${id}/messages`, { method: 'POST', headers: H, body: JSON.stringify({ content }) });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type'), /^text\/event-stream/);
      const events = parseSSE(await r.text());
      const chunks = events.filter((e) => e.event === 'message_chunk');
      assert.equal(chunks.map((e) => JSON.parse(e.data).text).join(''), want);
      assert.equal(events.at(-1).event, 'message_complete');
    }
    const sent = await fake.requests();
    assert.equal(sent.length, 2);
    assert.equal(sent[0].headers['x-api-key'], KEY);
    assert.deepEqual(sent[1].body.messages.map((m) => m.role), ['user', 'assistant', 'user']);
  });

  it('stops on SIGTERM (docker stop) with exit status 0', async () => {
    assert.ok(proc, 'the server started');
    // buildah's chroot isolation does not pass signals on (it kills its child when signalled):
    // SIGTERM goes to goose itself, as `docker stop` sends it to the container's first process.
    const pid = descendant(proc.pid, 'goose');
    assert.ok(pid, 'the goose process under buildah run');
    process.kill(pid, 'SIGTERM');
    const r = await exited;
    assert.deepEqual(r, { code: 0, signal: null }, log);
    assert.match(log, /shutdown complete/);
  });
});
