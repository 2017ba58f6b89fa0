// Configured extensions: config.yaml's `extensions:` map in the real Goose's format, listed,
// added, toggled, removed through both seeds' routes, written back keeping every other line,
// and still there after a restart.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startServer, stopAndCheck } from './lib/server.mjs';
import { get, post, del, request, assertError } from './lib/http.mjs';

const patch = (s, p, o) => request(s, 'PATCH', p, o);

// As the real Goose writes it, with comments a person added.
const GOOSE_CONFIG = `# my goose settings
GOOSE_PROVIDER: openai
GOOSE_MODEL: gpt-4o
extensions:
  # the built-in one
  developer:
    bundled: true
    display_name: Developer
    enabled: true
    name: developer
    timeout: 300
    type: builtin
  computercontroller: {bundled: true, display_name: Computer Controller, enabled: false, name: computercontroller, timeout: 300, type: builtin}
  # a stdio server
  everything:
    args:
    - -y
    - "@modelcontextprotocol/server-everything"
    cmd: npx
    enabled: true
    envs: {LOG_LEVEL: debug}
    name: everything
    timeout: 300
    type: stdio
  weird:
    type: stdio
    timeout: "soon"
GOOSE_MODE: auto  # kept as it is
`;

const byName = (list, n) => list.extensions.find((e) => e.name === n);

describe('extensions', () => {
  it('lists a config.yaml written by the real Goose: supported, unsupported, invalid, secrets masked', async () => {
    const srv = await startServer({ configYaml: GOOSE_CONFIG });
    try {
      const r = await get(srv, '/api/extensions');
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.extensions.map((e) => e.name), ['developer', 'computercontroller', 'everything', 'weird']);
      const dev = byName(r.body, 'developer');
      assert.equal(dev.type, 'builtin');
      assert.equal(dev.enabled, true);
      assert.equal(dev.supported, true);
      assert.equal(dev.status, 'stopped');
      assert.deepEqual(dev.tools, []);
      const cc = byName(r.body, 'computercontroller');
      assert.equal(cc.supported, false);
      assert.equal(cc.enabled, false);
      assert.match(cc.error, /not supported/);
      const ev = byName(r.body, 'everything');
      assert.deepEqual(ev.config.args, ['-y', '@modelcontextprotocol/server-everything']);
      assert.deepEqual(ev.config.envs, { LOG_LEVEL: '***' });
      assert.ok(!r.text.includes('debug'), 'env values are not shown');
      const weird = byName(r.body, 'weird');
      assert.equal(weird.supported, false);
      assert.match(weird.error, /timeout/);
      assert.match(srv.log(), /weird: timeout/);
      // seed 000's path answers the same
      const a = await get(srv, '/extensions');
      assert.deepEqual(a.body, r.body);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('without an extensions map: the developer extension alone, enabled', async () => {
    const srv = await startServer({ configYaml: 'GOOSE_PROVIDER: openai\n' });
    try {
      const r = await get(srv, '/api/extensions');
      assert.deepEqual(r.body.extensions.map((e) => [e.name, e.enabled, e.type]), [['developer', true, 'builtin']]);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('adds, toggles, enables, disables and removes; config.yaml keeps every other line; a restart sees it', async () => {
    let srv = await startServer({ configYaml: GOOSE_CONFIG, keepHome: true });
    const home = srv.home;
    const configFile = srv.configFile;
    try {
      // seed 001's example, verbatim: configures the developer, keeping its other keys
      let r = await post(srv, '/api/extensions', { name: 'developer', config: { allow_shell: true } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.config.allow_shell, true);
      assert.equal(r.body.config.display_name, 'Developer');
      r = await post(srv, '/api/extensions', {
        name: 'My Fetch',
        config: { type: 'streamable_http', uri: 'http://127.0.0.1:9/mcp', headers: { Authorization: 'Bearer sekrit' } },
      });
      assert.equal(r.status, 201, r.text);
      assert.equal(r.body.name, 'myfetch', 'named as the real Goose names it');
      assert.deepEqual(r.body.config.headers, { Authorization: '***' });
      assert.ok(!r.text.includes('sekrit'));
      r = await patch(srv, '/api/extensions/everything/toggle');
      assert.equal(r.status, 200);
      assert.equal(r.body.enabled, false);
      r = await patch(srv, '/api/extensions/everything/toggle', { json: { enabled: false } });
      assert.equal(r.body.enabled, false, 'an explicit value is set, not flipped');
      r = await post(srv, '/extensions/everything/enable');
      assert.equal(r.status, 200);
      assert.equal(r.body.enabled, true);
      r = await post(srv, '/extensions/everything/disable');
      assert.equal(r.body.enabled, false);
      r = await del(srv, '/api/extensions/computercontroller');
      assert.equal(r.status, 204);

      const text = readFileSync(configFile, 'utf8');
      for (const line of ['# my goose settings', 'GOOSE_PROVIDER: openai', '  # the built-in one', '  # a stdio server',
        'GOOSE_MODE: auto  # kept as it is', '    - "@modelcontextprotocol/server-everything"', '    envs: {LOG_LEVEL: debug}',
        '  weird:', '    timeout: "soon"']) {
        assert.ok(text.split('\n').includes(line), `config.yaml still has ${JSON.stringify(line)}:\n${text}`);
      }
      assert.ok(!text.includes('computercontroller'));
      assert.match(text, /  everything:\n    args:\n/, 'the toggled entry keeps its lines');
      assert.match(text, /    enabled: false\n    envs: \{LOG_LEVEL: debug\}/);
      assert.match(text, /Bearer sekrit/, 'the header is saved');

      await stopAndCheck(srv);
      srv = await startServer({ home });
      r = await get(srv, '/api/extensions');
      assert.deepEqual(r.body.extensions.map((e) => [e.name, e.enabled]),
        [['developer', true], ['everything', false], ['weird', false], ['myfetch', true]]);
      assert.equal(byName(r.body, 'developer').config.allow_shell, true);
      assert.equal(byName(r.body, 'myfetch').config.uri, 'http://127.0.0.1:9/mcp');
      // every extension removed: an empty map, not the developer default, after a restart
      for (const n of ['developer', 'everything', 'weird', 'myfetch']) assert.equal((await del(srv, `/api/extensions/${n}`)).status, 204);
      assert.match(readFileSync(configFile, 'utf8'), /^extensions: \{\}$/m);
      await stopAndCheck(srv);
      srv = await startServer({ home });
      assert.deepEqual((await get(srv, '/api/extensions')).body, { extensions: [] });
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('a first change without a map writes the developer and the new one', async () => {
    let srv = await startServer({ configYaml: '# only a comment\nGOOSE_PROVIDER: openai', keepHome: true });
    const home = srv.home;
    try {
      const r = await post(srv, '/api/extensions', { name: 'fs', config: { type: 'stdio', cmd: 'node', args: ['server.js'] } });
      assert.equal(r.status, 201, r.text);
      const text = readFileSync(srv.configFile, 'utf8');
      assert.ok(text.startsWith('# only a comment\nGOOSE_PROVIDER: openai\nextensions:\n'), text);
      await stopAndCheck(srv);
      srv = await startServer({ home });
      assert.deepEqual((await get(srv, '/api/extensions')).body.extensions.map((e) => e.name), ['developer', 'fs']);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('every error answers its code, naming the field', async () => {
    const srv = await startServer({ configYaml: GOOSE_CONFIG });
    try {
      assertError(await post(srv, '/api/extensions', {}), 400, 'bad_request', /name/);
      assertError(await post(srv, '/api/extensions', { name: 'x', config: 3 }), 400, 'bad_request', /config/);
      assertError(await post(srv, '/api/extensions', { name: 'x', config: {} }), 400, 'bad_request', /type/);
      assertError(await post(srv, '/api/extensions', { name: 'x', config: { type: 'stdio' } }), 400, 'bad_request', /cmd/);
      assertError(await post(srv, '/api/extensions', { name: 'x', config: { type: 'stdio', cmd: 'a\nb' } }), 400, 'bad_request', /cmd/);
      assertError(await post(srv, '/api/extensions', { name: 'x', config: { type: 'stdio', cmd: 'a', args: [1] } }), 400, 'bad_request', /args\[0\]/);
      assertError(await post(srv, '/api/extensions', { name: 'x', config: { type: 'stdio', cmd: 'a', timeout: 0 } }), 400, 'bad_request', /timeout/);
      assertError(await post(srv, '/api/extensions', { name: 'x', config: { type: 'sse', uri: 'ftp://h' } }), 400, 'bad_request', /uri/);
      assertError(await post(srv, '/api/extensions', { name: 'x', config: { type: 'streamable_http', uri: 'http://h', headers: { A: 'b\r\nc' } } }), 400, 'bad_request', /headers/);
      assertError(await post(srv, '/api/extensions', { name: 'x', config: { type: 'stdio', cmd: 'a', envs: { 'A=B': 'c' } } }), 400, 'bad_request', /envs/);
      assertError(await post(srv, '/api/extensions', { name: 'a__b', config: { type: 'stdio', cmd: 'a' } }), 400, 'bad_request', /__/);
      assertError(await post(srv, '/api/extensions', { name: 'x'.repeat(64), config: { type: 'stdio', cmd: 'a' } }), 400, 'bad_request', /longer than 63/);
      assertError(await post(srv, '/api/extensions', { name: '   ', config: { type: 'stdio', cmd: 'a' } }), 400, 'bad_request', /name/);
      assertError(await post(srv, '/api/extensions', { name: 'developer', config: { allow_shell: 'yes' } }), 400, 'bad_request', /allow_shell/);
      assertError(await patch(srv, '/api/extensions/everything/toggle', { json: { enabled: 'no' } }), 400, 'bad_request', /enabled/);
      assertError(await request(srv, 'POST', '/api/extensions', { body: 'name=x', headers: { 'Content-Type': 'text/plain' } }), 415, 'unsupported_media_type');
      assertError(await patch(srv, '/api/extensions/nope/toggle'), 404, 'not_found', /nope/);
      assertError(await del(srv, '/api/extensions/nope'), 404, 'not_found', /nope/);
      assertError(await post(srv, '/extensions/nope/enable'), 404, 'not_found', /nope/);
      assertError(await post(srv, '/extensions/nope/disable'), 404, 'not_found', /nope/);
      // an unknown type is not an error: listed as unsupported
      const r = await post(srv, '/api/extensions', { name: 'fe', config: { type: 'frontend' } });
      assert.equal(r.status, 201);
      assert.equal(r.body.supported, false);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('503 when config.yaml cannot be written, and nothing changes', async () => {
    const srv = await startServer({ configYaml: GOOSE_CONFIG, args: [] });
    try {
      const { chmodSync } = await import('node:fs');
      const path = await import('node:path');
      const dir = path.dirname(srv.configFile);
      chmodSync(dir, 0o500);
      try {
        const r = await post(srv, '/api/extensions', { name: 'fs', config: { type: 'stdio', cmd: 'node' } });
        if (process.getuid && process.getuid() === 0) return; // root writes anyway
        assertError(r, 503, 'storage_unavailable', /config\.yaml/);
        assertError(await patch(srv, '/api/extensions/everything/toggle'), 503, 'storage_unavailable');
        const l = await get(srv, '/api/extensions');
        assert.equal(byName(l.body, 'fs'), undefined);
        assert.equal(byName(l.body, 'everything').enabled, true);
      } finally {
        chmodSync(dir, 0o700);
      }
    } finally {
      await stopAndCheck(srv);
    }
  });
});
