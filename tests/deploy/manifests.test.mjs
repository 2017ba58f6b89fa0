// The deployment files that cannot run here as they would in production, checked as far as this
// machine allows: the Kubernetes manifests against the Kubernetes schemas (kubernetes-models)
// and their probes against a real goosed, the Compose file against the image's paths, the
// systemd unit with `systemd-analyze verify`.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { REPO, GOOSED_BIN, startServer, stopAndCheck, tempDir } from '../api/lib/server.mjs';
import { recordSecret } from '../api/lib/record.mjs';

const K8S = path.join(REPO, 'deploy/kubernetes');
const DATA = '/home/goose/.local/share/goose';
const CONFIG = '/home/goose/.config/goose';

function manifests() {
  const out = [];
  for (const f of readdirSync(K8S).filter((n) => n.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(path.join(K8S, f), 'utf8'))) {
      assert.deepEqual(doc.errors, [], `${f}: YAML errors`);
      if (doc.contents) out.push({ file: f, obj: doc.toJS() });
    }
  }
  return out;
}

async function modelOf(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const mod = await import(`kubernetes-models/${group ? `${group}/` : ''}${version}/${kind}`);
  return mod[kind] || mod.default;
}

const all = manifests();
const get = (kind) => all.find((m) => m.obj.kind === kind).obj;

describe('deploy/kubernetes', () => {
  it('every manifest is valid against the Kubernetes schemas', async () => {
    assert.deepEqual(all.map((m) => m.obj.kind).sort(), ['ConfigMap', 'Deployment', 'PersistentVolumeClaim', 'Secret', 'Service']);
    for (const { file, obj } of all) {
      const Model = await modelOf(obj.apiVersion, obj.kind);
      assert.doesNotThrow(() => new Model(obj).validate(), `${file} (${obj.kind})`);
    }
  });

  it('the schema check does catch a wrong manifest', async () => {
    const d = structuredClone(get('Deployment'));
    d.spec.replicas = 'one';
    const Model = await modelOf(d.apiVersion, d.kind);
    assert.throws(() => new Model(d).validate());
  });

  it('one replica, Recreate, non-root, read-only root, writable volumes where goosed writes', () => {
    const d = get('Deployment');
    assert.equal(d.spec.replicas, 1);
    assert.equal(d.spec.strategy.type, 'Recreate');
    const pod = d.spec.template.spec;
    assert.equal(pod.securityContext.runAsNonRoot, true);
    const c = pod.containers[0];
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(c.resources, { requests: { memory: '256Mi', cpu: '100m' }, limits: { memory: '1Gi', cpu: '500m' } });
    const mounts = Object.fromEntries(c.volumeMounts.map((m) => [m.mountPath, m]));
    const vol = (name) => pod.volumes.find((v) => v.name === name);
    assert.equal(vol(mounts[DATA].name).persistentVolumeClaim.claimName, get('PersistentVolumeClaim').metadata.name);
    assert.ok(vol(mounts['/tmp'].name).emptyDir, '/tmp is an emptyDir');
    const env = Object.fromEntries(c.env.map((e) => [e.name, e]));
    const cfgdir = env.GOOSE_CONFIG_DIR.value;
    assert.equal(vol(mounts[cfgdir].name).configMap.name, get('ConfigMap').metadata.name);
    assert.ok('config.yaml' in get('ConfigMap').data);
    const keyFile = env.GOOSE_SERVER__SECRET_KEY_FILE.value;
    const sec = vol(mounts[path.dirname(keyFile)].name).secret;
    assert.equal(sec.secretName, get('Secret').metadata.name);
    assert.ok(sec.items.some((i) => i.path === path.basename(keyFile) && i.key in get('Secret').stringData));
    assert.equal(env.ANTHROPIC_API_KEY.valueFrom.secretKeyRef.name, get('Secret').metadata.name);
    const svc = get('Service');
    assert.deepEqual(svc.spec.selector, d.spec.selector.matchLabels);
    assert.ok(c.ports.some((p) => p.name === svc.spec.ports[0].targetPort));
  });

  describe('the probes, against a goosed configured as the Deployment configures it', () => {
    const c = get('Deployment').spec.template.spec.containers[0];
    const env = Object.fromEntries(c.env.filter((e) => 'value' in e).map((e) => [e.name, e.value]));
    let srv;
    let dir;
    let keyFile;
    before(async () => {
      dir = tempDir('goosed-k8s-');
      keyFile = path.join(dir, 'secret-key');
      const key = 'k8s-probe-secret-key-0123456789';
      recordSecret(key, 'the Secret');
      writeFileSync(keyFile, key);
      const cfgdir = path.join(dir, 'etc-goose');
      execFileSync('mkdir', ['-p', cfgdir]);
      writeFileSync(path.join(cfgdir, 'config.yaml'), get('ConfigMap').data['config.yaml']);
      // the manifest's environment, but an ephemeral port and the test's paths
      srv = await startServer({
        port: null,
        env: { ...env, GOOSE_PORT: '0', GOOSE_CONFIG_DIR: cfgdir, GOOSE_SERVER__SECRET_KEY_FILE: keyFile },
      });
    });
    after(() => stopAndCheck(srv));

    it('the container port is GOOSE_PORT and the image exposes it', () => {
      assert.equal(String(c.ports.find((p) => p.name === 'http').containerPort), env.GOOSE_PORT);
      assert.match(readFileSync(path.join(REPO, 'deploy/Dockerfile'), 'utf8'), new RegExp(`^EXPOSE ${env.GOOSE_PORT}$`, 'm'));
      assert.match(srv.log(), /authentication on: X-Secret-Key/);
    });

    it('liveness: its httpGet path answers 200 on the named port', async () => {
      const p = c.livenessProbe.httpGet;
      assert.equal(p.port, 'http');
      const r = await fetch(`${srv.url}${p.path}`);
      assert.equal(r.status, 200);
    });

    it('readiness: its command succeeds with the mounted key, fails with a wrong one or no server', () => {
      const [sh, flag, script] = c.readinessProbe.exec.command;
      assert.match(script, /\/api\/health/);
      const run = (e) => spawnSync(sh, [flag, script], { env: { PATH: process.env.PATH, ...e }, encoding: 'utf8' });
      let r = run({ GOOSE_SERVER__SECRET_KEY_FILE: keyFile, GOOSE_PORT: String(srv.port) });
      assert.equal(r.status, 0, r.stderr);
      const wrong = path.join(dir, 'wrong');
      writeFileSync(wrong, 'not-the-key-at-all');
      r = run({ GOOSE_SERVER__SECRET_KEY_FILE: wrong, GOOSE_PORT: String(srv.port) });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /401/);
      assert.ok(!/k8s-probe-secret/.test(srv.log()));
    });
  });
});

describe('deploy/docker-compose.yml', () => {
  const compose = parse(readFileSync(path.join(REPO, 'deploy/docker-compose.yml'), 'utf8'));
  const svc = compose.services.goose;
  it("is the guide's service with the image's volumes, a health check, a restart policy and the key", () => {
    assert.equal(svc.image, 'goose:latest');
    assert.equal(svc.command, 'server');
    const vols = svc.volumes.map((v) => v.split(':'));
    assert.deepEqual(vols.map((v) => v[1]).sort(), [CONFIG, DATA].sort());
    for (const [name] of vols) assert.ok(name in compose.volumes, `volume ${name} declared`);
    const df = readFileSync(path.join(REPO, 'deploy/Dockerfile'), 'utf8');
    assert.ok(df.includes(`VOLUME ["${DATA}", "${CONFIG}"]`));
    assert.ok(svc.healthcheck.test.some((a) => /\/status$/.test(a)));
    assert.equal(svc.restart, 'unless-stopped');
    assert.ok(svc.environment.some((e) => e.startsWith('GOOSE_SERVER__SECRET_KEY=')));
    assert.ok(svc.environment.includes('GOOSE_HOST=0.0.0.0'));
  });
});

describe('deploy/systemd/goosed.service', () => {
  it('passes systemd-analyze verify (ExecStart pointed at the built goose)', () => {
    const dir = tempDir('goosed-unit-');
    const goose = path.join(path.dirname(GOOSED_BIN), 'goose');
    const unit = readFileSync(path.join(REPO, 'deploy/systemd/goosed.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/goose server$/m);
    for (const opt of ['ExecReload=/bin/kill -HUP \\$MAINPID', 'DynamicUser=yes', 'StateDirectory=goosed', 'ProtectSystem=strict', 'ProtectHome=yes', 'NoNewPrivileges=yes', 'PrivateTmp=yes']) {
      assert.match(unit, new RegExp(`^${opt}$`, 'm'));
    }
    const file = path.join(dir, 'goosed.service');
    writeFileSync(file, unit.replace(/^ExecStart=\/usr\/local\/bin\/goose/m, `ExecStart=${goose}`));
    const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', r.stderr);
  });
});
