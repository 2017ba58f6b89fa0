// GOOSE_ALLOWLIST, enforced by goosed: from a file and from a URL (a tiny HTTP server here),
// listed commands allowed, others and extra arguments refused with 403 and why, an unreachable
// list refusing every stdio extension, GOOSE_ALLOWLIST_WARNING=true only warning, and enabled
// entries of config.yaml refused at start.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAndCheck, tempDir } from './lib/server.mjs';
import { get, post, assertError } from './lib/http.mjs';

const LIST = `extensions:
  - id: slack
    command: uvx mcp_slack
  - id: everything
    command: npx -y @modelcontextprotocol/server-everything
`;

const stdio = (name, cmd, args = []) => ({ name, config: { type: 'stdio', cmd, args } });

/** The checks every allowlist source must pass once it is readable. */
async function checkEnforced(srv) {
  let r = await post(srv, '/api/extensions', stdio('slack', 'uvx', ['mcp_slack']));
  assert.equal(r.status, 201, r.text);
  r = await post(srv, '/api/extensions', stdio('slack2', 'uvx', ['mcp_slack@1.2.0']));
  assert.equal(r.status, 201, `a package@version is the package: ${r.text}`);
  r = await post(srv, '/api/extensions', stdio('everything', 'npx', ['-y', '@modelcontextprotocol/server-everything']));
  assert.equal(r.status, 201, r.text);
  assertError(await post(srv, '/api/extensions', stdio('slack3', 'uvx', ['mcp_slack', '--verbose'])), 403, 'forbidden',
    /adds arguments to 'uvx mcp_slack'/);
  assertError(await post(srv, '/api/extensions', stdio('evil', 'bash', ['-c', 'id'])), 403, 'forbidden', /'bash -c id' is not in the allowlist/);
  // other types are not the allowlist's business
  r = await post(srv, '/api/extensions', { name: 'remote', config: { type: 'streamable_http', uri: 'http://127.0.0.1:9/mcp' } });
  assert.equal(r.status, 201);
  const l = await get(srv, '/api/extensions');
  assert.ok(!l.body.extensions.some((e) => e.name === 'slack3' || e.name === 'evil'));
  // per session too: at creation and later
  assertError(await post(srv, '/api/sessions', { working_directory: srv.home, extensions: [stdio('evil', 'bash', ['-c', 'id'])] }), 403, 'forbidden',
    /'bash -c id' is not in the allowlist/);
  const s = await post(srv, '/api/sessions', { working_directory: srv.home });
  assertError(await post(srv, `/api/sessions/${s.body.id}/extensions`, stdio('evil', 'bash', ['-c', 'id'])), 403, 'forbidden', /not in the allowlist/);
  r = await post(srv, `/api/sessions/${s.body.id}/extensions`, stdio('slack9', 'uvx', ['mcp_slack']));
  assert.equal(r.status, 200, r.text);
}

describe('GOOSE_ALLOWLIST', () => {
  let listServer;
  let served = LIST;
  before(async () => {
    listServer = http.createServer((req, res) => {
      if (req.url === '/allow.yaml') {
        res.writeHead(200, { 'Content-Type': 'application/yaml' });
        res.end(served);
      } else {
        res.writeHead(404);
        res.end('no');
      }
    });
    await new Promise((resolve) => listServer.listen(0, '127.0.0.1', resolve));
  });
  after(() => new Promise((resolve) => listServer.close(resolve)));
  const url = (p) => `http://127.0.0.1:${listServer.address().port}${p}`;

  it('from a file: listed allowed, others and extra arguments refused with why', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'allow.yaml');
    writeFileSync(file, LIST);
    const srv = await startServer({ env: { GOOSE_ALLOWLIST: file } });
    try {
      await checkEnforced(srv);
      // the file is read again when it changes
      writeFileSync(file, 'extensions:\n  - id: other\n    command: other-cmd\n');
      assertError(await post(srv, '/api/extensions', stdio('slack4', 'uvx', ['mcp_slack'])), 403, 'forbidden', /not in the allowlist/);
      assert.equal((await post(srv, '/api/extensions', stdio('other', 'other-cmd'))).status, 201);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('from a URL', async () => {
    served = LIST;
    const srv = await startServer({ env: { GOOSE_ALLOWLIST: url('/allow.yaml') } });
    try {
      await checkEnforced(srv);
      // a disabled stdio extension is checked as well (it may be enabled later)
      const r = await post(srv, '/api/extensions', { name: 'later', config: { type: 'stdio', cmd: 'uvx', args: ['mcp_slack'], enabled: false } });
      assert.equal(r.status, 201);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('unreachable, missing or unparsable: every stdio extension refused, saying why', async () => {
    const cases = [
      [url('/missing.yaml'), /unavailable: fetching it answered HTTP 404/],
      ['http://127.0.0.1:1/allow.yaml', /unavailable: cannot fetch it/],
      [path.join(tempDir(), 'none.yaml'), /unavailable: cannot read it/],
    ];
    for (const [src, why] of cases) {
      const srv = await startServer({ env: { GOOSE_ALLOWLIST: src } });
      try {
        assertError(await post(srv, '/api/extensions', stdio('slack', 'uvx', ['mcp_slack'])), 403, 'forbidden', why);
        assert.equal((await post(srv, '/api/extensions', { name: 'developer', config: { allow_shell: false } })).status, 200,
          'a builtin is not refused');
      } finally {
        await stopAndCheck(srv);
      }
    }
    served = 'extensions: [unclosed';
    const srv = await startServer({ env: { GOOSE_ALLOWLIST: url('/allow.yaml') } });
    try {
      assertError(await post(srv, '/api/extensions', stdio('slack', 'uvx', ['mcp_slack'])), 403, 'forbidden', /unavailable: cannot parse it/);
    } finally {
      served = LIST;
      await stopAndCheck(srv);
    }
  });

  it('GOOSE_ALLOWLIST_WARNING=true logs instead of refusing', async () => {
    const srv = await startServer({ env: { GOOSE_ALLOWLIST: url('/allow.yaml'), GOOSE_ALLOWLIST_WARNING: 'true' } });
    try {
      const r = await post(srv, '/api/extensions', stdio('evil', 'bash', ['-c', 'id']));
      assert.equal(r.status, 201, r.text);
      await srv.waitForLog(/extension evil: the command 'bash -c id' is not in the allowlist \(allowed: GOOSE_ALLOWLIST_WARNING=true\)/);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it("config.yaml's enabled stdio entries the list refuses are kept, marked, logged", async () => {
    const configYaml = `extensions:
  slack:
    enabled: true
    type: stdio
    cmd: uvx
    args: [mcp_slack]
  evil:
    enabled: true
    type: stdio
    cmd: bash
    args: ["-c", "id"]
  off:
    enabled: false
    type: stdio
    cmd: bash
`;
    const srv = await startServer({ configYaml, env: { GOOSE_ALLOWLIST: url('/allow.yaml') } });
    try {
      const l = (await get(srv, '/api/extensions')).body.extensions;
      const evil = l.find((e) => e.name === 'evil');
      assert.equal(evil.status, 'failed');
      assert.match(evil.refused, /'bash -c id' is not in the allowlist/);
      assert.equal(evil.error, evil.refused);
      assert.equal(l.find((e) => e.name === 'slack').refused, undefined);
      assert.equal(l.find((e) => e.name === 'off').refused, undefined, 'a disabled entry is not checked at start');
      assert.match(srv.log(), /extension evil not started: .*not in the allowlist/);
      // enabling a refused one through the API is refused too
      assertError(await post(srv, '/extensions/off/enable'), 403, 'forbidden', /'bash' is not in the allowlist/);
    } finally {
      await stopAndCheck(srv);
    }
  });
});
