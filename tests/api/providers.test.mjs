// Providers (seed 001): list, current, and POST /api/providers, which keeps the key in
// secrets.yaml (0600), never echoes or logs it, and survives a restart.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAndCheck } from './lib/server.mjs';
import { get, post, assertError } from './lib/http.mjs';
import { startFake } from '../fakes/lib.mjs';

const KEY = 'sk-ant-secret-4242';

describe('providers', () => {
  it('lists every known provider, none current by default', async () => {
    const srv = await startServer();
    try {
      const r = await get(srv, '/api/providers');
      assert.equal(r.status, 200);
      const names = r.body.map((p) => p.name);
      for (const n of ['openai', 'anthropic', 'google', 'ollama', 'openrouter', 'groq', 'deepseek', 'mistral', 'xai', 'together', 'lmstudio', 'litellm', 'custom']) {
        assert.ok(names.includes(n), `${n} is listed`);
      }
      const openai = r.body.find((p) => p.name === 'openai');
      assert.deepEqual(openai.required_keys, ['OPENAI_API_KEY']);
      assert.equal(openai.configured, false);
      assert.equal(r.body.find((p) => p.name === 'ollama').configured, true, 'ollama needs no key');
      assert.ok(r.body.every((p) => p.current === false));
      const cur = await get(srv, '/api/providers/current');
      assert.deepEqual(cur.body, { name: null, model: null });
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('refuses bad input, naming the field', async () => {
    const srv = await startServer();
    try {
      assertError(await post(srv, '/api/providers', {}), 400, 'bad_request', /name/);
      assertError(await post(srv, '/api/providers', { name: 'nope' }), 400, 'bad_request', /unknown provider 'nope'/);
      assertError(await post(srv, '/api/providers', { name: 'anthropic' }), 400, 'bad_request', /api_key.*ANTHROPIC_API_KEY/);
      assertError(await post(srv, '/api/providers', { name: 'anthropic', api_key: 7 }), 400, 'bad_request', /api_key/);
      assertError(await post(srv, '/api/providers', { name: 'anthropic', api_key: 'k', model: '' }), 400, 'bad_request', /model/);
      // what a header or a line of secrets.yaml would end at, or YAML fold: never stored
      for (const k of ['sk-a\nb', 'sk-a\u0085b', 'sk a', 'sk-\u00e9', 'sk-\u2028']) {
        assertError(await post(srv, '/api/providers', { name: 'anthropic', api_key: k }), 400, 'bad_request', /api_key: must be printable ASCII/);
      }
      for (const m of ['gpt\u0085x', 'gpt\u2029', 'gpt\u009f', 'gpt\x7f']) {
        assertError(await post(srv, '/api/providers', { name: 'anthropic', api_key: 'k', model: m }), 400, 'bad_request', /model: must not hold control characters/);
      }
    } finally {
      await stopAndCheck(srv);
    }
  });

  it("seed 001's POST /api/providers: stores the key privately, makes it current, survives a restart", async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    let srv = await startServer({ keepHome: true, env: { OPENAI_HOST: fake.url } });
    const home = srv.home;
    try {
      const r = await post(srv, '/api/providers', { name: 'openai', api_key: KEY, model: 'gpt-test' });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body, { name: 'openai', model: 'gpt-test', configured: true });
      assert.ok(!r.text.includes(KEY), 'the key is not echoed');
      assert.deepEqual((await get(srv, '/api/providers/current')).body, { name: 'openai', model: 'gpt-test' });
      const cfg = await get(srv, '/api/config');
      assert.equal(cfg.body.provider, 'openai');
      assert.ok(!cfg.text.includes(KEY));
      const list = await get(srv, '/api/providers');
      assert.equal(list.body.find((p) => p.name === 'openai').configured, true);
      assert.ok(!list.text.includes(KEY));

      const secrets = path.join(home, '.config/goose/secrets.yaml');
      assert.equal(statSync(secrets).mode & 0o777, 0o600, 'secrets.yaml is private');
      assert.match(readFileSync(secrets, 'utf8'), new RegExp(`OPENAI_API_KEY: "${KEY}"`));

      const s = await post(srv, '/api/sessions', { working_directory: home });
      await fake.script([{ text: 'keyed reply' }]);
      const m = await post(srv, `/api/sessions/${s.body.id}/messages`, { content: 'hi' });
      assert.equal(m.status, 200, m.text);
      assert.equal(m.body.content, 'keyed reply');
      assert.equal((await fake.requests()).at(-1).headers.authorization, `Bearer ${KEY}`);

      await stopAndCheck(srv);
      assert.ok(!srv.log().includes(KEY), 'the key is never logged');
      srv = await startServer({ home, env: { OPENAI_HOST: fake.url } });
      assert.deepEqual((await get(srv, '/api/providers/current')).body, { name: 'openai', model: 'gpt-test' });
      await fake.script([{ text: 'after restart' }]);
      const m2 = await post(srv, `/api/sessions/${s.body.id}/messages`, { content: 'again' });
      assert.equal(m2.body.content, 'after restart');
    } finally {
      await stopAndCheck(srv);
      await fake.stop();
    }
  });

  it('keeps the comments and other keys of an existing config.yaml', async () => {
    const srv = await startServer({ configYaml: '# my settings\nGOOSE_PROVIDER: anthropic\napi_timeout: 60\n' });
    try {
      const r = await post(srv, '/api/providers', { name: 'ollama' });
      assert.equal(r.status, 200, r.text);
      const text = readFileSync(path.join(srv.home, '.config/goose/config.yaml'), 'utf8');
      assert.match(text, /^# my settings$/m);
      assert.match(text, /^api_timeout: 60$/m);
      assert.match(text, /^GOOSE_PROVIDER: "ollama"$/m);
      assert.doesNotMatch(text, /anthropic/);
    } finally {
      await stopAndCheck(srv);
    }
  });
});
