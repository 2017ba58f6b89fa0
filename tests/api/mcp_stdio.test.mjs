// `goosed mcp`: the command-line MCP client over stdio, against the pinned reference servers
// (server-everything, server-filesystem) and hand-written servers that misbehave
// (tests/fakes/mcp/server.mjs). Each case checks what the user sees: the exit status and the
// message.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runGoosed, REPO } from './lib/server.mjs';

const NODE = process.execPath;
const EVERYTHING = path.join(REPO, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const FILESYSTEM = path.join(REPO, 'node_modules/@modelcontextprotocol/server-filesystem/dist/index.js');
const FAKE = path.join(REPO, 'tests/fakes/mcp/server.mjs');
const opts = { timeoutMs: 60000 };

const mcp = (args) => runGoosed(['mcp', ...args], {}, opts);
const everything = (...args) => mcp([...args, '--', NODE, EVERYTHING, 'stdio']);
const fake = (mode, ...args) => mcp([...args, '--', NODE, FAKE, mode]);

describe('goosed mcp: usage', () => {
  it('--help prints the usage and exits 0', async () => {
    const r = await mcp(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /usage: goosed mcp tools/);
  });
  it('a usage error exits 2 with the usage', async () => {
    for (const args of [['frobnicate'], ['tools'], ['call', '--', NODE], ['call', 'echo', 'not json', '--', NODE],
      ['tools', '--timeout', 'soon', '--', NODE]]) {
      const r = await mcp(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^goosed mcp: .+\n\nusage: goosed mcp/);
    }
  });
  it('a command that does not exist fails with a clear message', async () => {
    const r = await mcp(['tools', '--', 'no-such-mcp-server-here']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot start 'no-such-mcp-server-here': not found in PATH/);
  });
});

describe('goosed mcp: server-everything over stdio', () => {
  it('tools lists its tools, one per line, and --json the tools/list array', async () => {
    const r = await everything('tools');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^echo {2}Echoes back the input string$/m);
    assert.match(r.stdout, /^get-sum {2}/m);
    const j = await everything('tools', '--json');
    assert.equal(j.code, 0, j.stderr);
    const tools = JSON.parse(j.stdout);
    const echo = tools.find((t) => t.name === 'echo');
    assert.equal(echo.inputSchema.type, 'object');
    assert.ok(echo.inputSchema.properties.message);
  });
  it('call echo prints the text', async () => {
    const r = await everything('call', 'echo', '{"message":"hi"}');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Echo: hi\n');
  });
  it('call get-sum adds', async () => {
    const r = await everything('call', 'get-sum', '{"a":2,"b":40}');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /The sum of 2 and 40 is 42/);
  });
  it('bad arguments: the server says why, exit 1', async () => {
    const r = await everything('call', 'get-sum', '{"a":"two"}');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /expected number/);
  });
  it('an unknown tool names the tools there are, exit 1', async () => {
    const r = await everything('call', 'no-such-tool');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /has no tool named 'no-such-tool'; its tools: echo, /);
  });
  it('a long-running operation reports its progress', async () => {
    const r = await everything('call', 'trigger-long-running-operation', '{"duration":1,"steps":2}');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /progress: 1\/2/);
    assert.match(r.stderr, /progress: 2\/2/);
    assert.match(r.stdout, /Long running operation completed/);
  });
  it('the tiny image comes as an image item; --json gives the whole result', async () => {
    const r = await everything('call', '--json', 'get-tiny-image');
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.equal(res.isError, false);
    const img = res.content.find((c) => c.type === 'image');
    assert.equal(img.mimeType, 'image/png');
    assert.ok(Buffer.from(img.data, 'base64').subarray(1, 4).toString() === 'PNG');
  });
  it('roots/list is answered with the working directory', async () => {
    const r = await everything('call', 'get-roots-list');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /URI: file:\/\//);
  });
  it('the server sees the safe environment, --env and --env-key, and no secret', async () => {
    const r = await runGoosed(['mcp', 'call', '--env', 'FOO=bar baz', '--env-key', 'MY_TOKEN', 'get-env',
      '--', NODE, EVERYTHING, 'stdio'], { SECRET_API_KEY: 'do-not-pass', MY_TOKEN: 'tok-123' }, opts);
    assert.equal(r.code, 0, r.stderr);
    const env = JSON.parse(r.stdout);
    assert.equal(env.FOO, 'bar baz');
    assert.equal(env.MY_TOKEN, 'tok-123');
    assert.ok(env.PATH);
    assert.equal(env.SECRET_API_KEY, undefined);
    assert.doesNotMatch(r.stdout, /do-not-pass/);
  });
  it('structuredContent is kept', async () => {
    const r = await everything('call', '--json', 'get-structured-content', '{"location":"New York"}');
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.equal(typeof res.structuredContent, 'object');
  });
});

describe('goosed mcp: server-filesystem over stdio', () => {
  it('list_directory on a temporary directory', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'goosed-mcpfs-'));
    try {
      writeFileSync(path.join(dir, 'hello.txt'), 'hello\n');
      mkdirSync(path.join(dir, 'sub'));
      // server-filesystem replaces its directories with the client's roots (roots/list: goosed's
      // working directory) once it has them, so both are the temporary directory.
      const inDir = (args) => runGoosed(['mcp', ...args], {}, { ...opts, cwd: dir });
      const r = await inDir(['call', 'list_directory', JSON.stringify({ path: dir }), '--', NODE, FILESYSTEM, dir]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /\[FILE\] hello\.txt/);
      assert.match(r.stdout, /\[DIR\] sub/);
      const out = await inDir(['call', 'read_text_file', JSON.stringify({ path: '/etc/hostname' }), '--', NODE, FILESYSTEM, dir]);
      assert.equal(out.code, 1);
      assert.match(out.stderr, /outside allowed directories|Access denied/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('goosed mcp: servers that misbehave', () => {
  it('tools/list is followed over its pages', async () => {
    const r = await fake('ok', 'tools');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').map((l) => l.split('  ')[0]), ['echo', 'boom', 'sleep', 'ask']);
  });
  it('a tool error is exit 1 with its text', async () => {
    const r = await fake('ok', 'call', 'boom');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'no boom\n');
  });
  it('a server that crashes mid-call: the call fails naming the extension and why', async () => {
    const r = await fake('crash', 'call', 'boom');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /node__boom failed: node: the server exited with status 3/);
  });
  it('a server that hangs past the timeout: timed out after 1 s', async () => {
    const r = await fake('hang', 'call', '--timeout', '1', 'sleep');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /node__sleep: timed out after 1 s/);
  });
  it('a server that never answers initialize: the start fails', async () => {
    const r = await fake('silent', 'tools', '--timeout', '1');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /did not answer initialize: timed out after 1 s/);
  });
  it('a server that writes garbage is cut off, the garbage shown escaped', async () => {
    const r = await fake('garbage', 'tools');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /wrote something that is not JSON-RPC: Hello! I am a server\\x01 and this is not JSON/);
  });
  it('a server that floods a line past the cap is cut off', async () => {
    const r = await fake('flood', 'tools');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /wrote a line of more than 4194304 bytes/);
  });
  it('a server that exits at start', async () => {
    const r = await fake('exit', 'tools');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the server exited with status 1/);
  });
  it('a server of an unsupported protocol version: both versions named', async () => {
    const r = await fake('oldversion', 'tools');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /speaks MCP protocol version "2024-11-05"; goosed speaks 2025-11-25/);
  });
  it('a flood on stderr: 200 lines logged, tagged, and a count of the rest', async () => {
    const r = await runGoosed(['mcp', 'tools', '--', NODE, FAKE, 'stderrflood'], { RUST_LOG: 'info' }, opts);
    assert.equal(r.code, 0, r.stderr);
    const noise = r.stderr.split('\n').filter((l) => /mcp:node: noise line \d+$/.test(l));
    assert.equal(noise.length, 200);
    const m = r.stderr.match(/mcp:node: \((\d+) more lines of stderr not logged\)/);
    assert.ok(m, r.stderr.slice(-500));
    assert.ok(Number(m[1]) > 0);
  });
  it('a request we do not serve is answered -32601, ping with {}', async () => {
    const r = await fake('serverreq', 'call', 'ask');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'foo/bar: -32601 Method not found; ping: {}\n');
  });
});
