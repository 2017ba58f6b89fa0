// The conformance suite's client for its scenarios with a client registered beforehand (its
// context names it): `goosed mcp tools URL` as a user runs it, given that client with
// --client-id and --client-secret-env or --client-key (a PEM file), and the user's browser,
// which visits the sign-in address goosed prints and follows the authorization server's
// redirect back to goosed. Usage: node given-client.mjs GOOSED_BIN URL (the suite adds URL).
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [bin, url] = process.argv.slice(2);
const ctx = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT || '{}');
const args = ['mcp', 'tools', '--client-id', ctx.client_id];
const env = { PATH: process.env.PATH, HOME: '/nonexistent' };
const dir = mkdtempSync(path.join(os.tmpdir(), 'goosed-given-client-'));
if (ctx.private_key_pem) {
  const key = path.join(dir, 'client.pem');
  writeFileSync(key, ctx.private_key_pem, { mode: 0o600 });
  args.push('--client-key', key);
} else if (ctx.client_secret) {
  env.GIVEN_CLIENT_SECRET = ctx.client_secret;
  args.push('--client-secret-env', 'GIVEN_CLIENT_SECRET');
}
args.push(url);

const proc = spawn(bin, args, { env, stdio: ['ignore', 'inherit', 'pipe'] });
let stderr = '';
let visited = false;
proc.stderr.on('data', async (d) => {
  stderr += d;
  process.stderr.write(d);
  const m = /^\s+(http\S+)$/m.exec(stderr);
  if (!m || visited) return;
  visited = true;
  const a = await fetch(m[1], { redirect: 'manual' }); // the suite's authorization server approves
  await fetch(a.headers.get('location')); // and the browser comes back to goosed
});
proc.on('exit', (code) => {
  rmSync(dir, { recursive: true, force: true });
  process.exit(code ?? 1);
});
