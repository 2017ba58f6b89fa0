// The MCP SDK's own example server with OAuth (simpleStreamableHttp --oauth --oauth-strict: an
// authorization server with dynamic registration and PKCE, protected resource metadata, tokens
// checked for this resource), for the tests of goosed's OAuth client.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { freePort, REPO } from './server.mjs';

const example = path.join(REPO, 'node_modules/@modelcontextprotocol/sdk/dist/esm/examples/server/simpleStreamableHttp.js');

/** Starts it: {url (its MCP endpoint, on localhost), auth (its authorization server's origin),
 * output() (what it printed: it logs the tokens it checks), stop()}. */
export async function startOAuthServer() {
  const mcpPort = await freePort();
  const authPort = await freePort();
  const proc = spawn(process.execPath, [example, '--oauth', '--oauth-strict'], {
    env: { PATH: process.env.PATH, MCP_PORT: String(mcpPort), MCP_AUTH_PORT: String(authPort) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  await new Promise((resolve, reject) => {
    const check = () => { if (out.includes(`listening on port ${mcpPort}`) && out.includes(`listening on port ${authPort}`)) resolve(); };
    proc.stdout.on('data', (d) => { out += d; check(); });
    proc.stderr.on('data', (d) => { out += d; });
    proc.on('exit', (code) => reject(new Error(`the example server exited with ${code}: ${out}`)));
  });
  const closed = new Promise((resolve) => proc.on('close', resolve));
  return {
    url: `http://localhost:${mcpPort}/mcp`,
    auth: `http://localhost:${authPort}`,
    output: () => out,
    stop: () => { proc.kill('SIGTERM'); return closed; },
  };
}
