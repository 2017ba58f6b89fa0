// A real Prometheus (Debian's `prometheus`) scrapes goosed every second: once on the main
// listener with an admin's bearer token (`authorization: {credentials: ...}`), once on
// metrics_listen without one. The test waits until both targets are up by polling Prometheus'
// API, then checks PromQL answers: the /status requests it made are counted, and a
// histogram_quantile over the latency buckets is a number. Prometheus is killed at the end.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startServer, stopAndCheck, tempDir, have, freePort } from './lib/server.mjs';
import { get } from './lib/http.mjs';
import { addUser } from './lib/users.mjs';

const WAIT_MS = 60_000; // scrapes every second: a minute is ample even on a busy machine
const POLL_MS = 200; // between two questions to Prometheus' API (it answers; this is not a wait for it)


/** Asks Prometheus' API until check(data) returns something other than undefined. */
async function until(base, apiPath, check, what) {
  const end = Date.now() + WAIT_MS;
  let last;
  while (Date.now() < end) {
    try {
      const r = await fetch(base + apiPath);
      last = await r.json();
      if (last.status === 'success') {
        const v = check(last.data);
        if (v !== undefined) return v;
      }
    } catch (e) {
      last = String(e); // not listening yet
    }
    await delay(POLL_MS);
  }
  assert.fail(`${what}: not seen within ${WAIT_MS} ms; Prometheus' last answer: ${JSON.stringify(last).slice(0, 2000)}`);
}

const query = (q) => `/api/v1/query?query=${encodeURIComponent(q)}`;

describe('a real Prometheus scrapes goosed', { skip: !have('prometheus') && 'prometheus is not installed (scripts/deps.sh test)' }, () => {
  let srv, prom, promLog = '', base, token;
  before(async () => {
    const home = tempDir();
    token = await addUser(home, 'scraper', true);
    srv = await startServer({ home, env: { GOOSE_METRICS_LISTEN: '127.0.0.1:0' } });
    const m = await srv.waitForLog(/metrics served without authentication on http:\/\/([^/\s]+)\/metrics/);
    const dir = tempDir('goosed-prometheus-');
    const tokenFile = path.join(dir, 'token');
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const config = path.join(dir, 'prometheus.yml');
    writeFileSync(config, [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      '  - job_name: goosed',
      '    authorization:',
      `      credentials_file: ${tokenFile}`,
      '    static_configs:',
      `      - targets: ['127.0.0.1:${srv.port}']`,
      '  - job_name: goosed_metrics_listen',
      '    static_configs:',
      `      - targets: ['${m[1]}']`,
      '',
    ].join('\n'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    prom = spawn('prometheus', [
      `--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    prom.stderr.on('data', (d) => { promLog += d; });
    prom.exited = new Promise((resolve) => prom.on('exit', resolve));
  });
  after(async () => {
    if (prom && prom.exitCode === null) {
      prom.kill('SIGKILL');
      await prom.exited;
    }
    await stopAndCheck(srv);
  });

  it('sees both targets up, counts the /status requests and answers a histogram_quantile', async () => {
    const targets = await until(base, '/api/v1/targets', (d) => {
      const t = d.activeTargets;
      return t.length === 2 && t.every((x) => x.health === 'up') ? t : undefined;
    }, 'both targets up');
    assert.deepEqual(targets.map((t) => t.labels.job).sort(), ['goosed', 'goosed_metrics_listen']);

    const N = 25;
    for (let i = 0; i < N; i++) assert.equal((await get(srv, '/status')).status, 200);
    for (const job of ['goosed', 'goosed_metrics_listen']) {
      const n = await until(base, query(`sum(goosed_http_requests_total{job="${job}",route="/status"})`), (d) => {
        const v = Number(d.result[0]?.value[1]);
        return v >= N ? v : undefined;
      }, `the ${N} /status requests counted by job ${job}`);
      assert.equal(n, N, 'exactly the requests this test made');
    }
    const q = await until(base, query('histogram_quantile(0.9, sum by (le) (goosed_http_request_duration_seconds_bucket{job="goosed",route="/status"}))'),
      (d) => (d.result.length ? Number(d.result[0].value[1]) : undefined), 'the 0.9 quantile of /status latency');
    assert.ok(Number.isFinite(q) && q > 0 && q <= 10, `the 0.9 quantile is a number of seconds: ${q}`);
    const up = await until(base, query('up{job="goosed"}'), (d) => d.result[0]?.value[1], 'up');
    assert.equal(up, '1');
    assert.equal(prom.exitCode, null, `Prometheus is still running; its log:\n${promLog}`);
  });
});
