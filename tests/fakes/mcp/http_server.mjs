// A tiny streamable HTTP MCP server for the transport's tests: it requires the bearer token given
// in MCP_FAKE_TOKEN (when set), answers initialize (with a session id), tools/list and tools/call
// echo as JSON, and with MCP_FAKE_STALE=1 answers 404 to the first tools/call of the first
// session (a session the server forgot), so the client must initialize again. It listens on a
// free port of 127.0.0.1 and prints "port N" on stdout once it does; what it saw goes to stderr
// as one JSON line per request (with its traceparent header, or null). With MCP_FAKE_FORGETFUL=1
// every session's own GET stream is answered 404 (a server that forgets each session at once);
// with MCP_FAKE_RETRY0=1 it is a stream of one event with `retry: 0`, then the end. With
// MCP_FAKE_SID_LONG=1 its session ids are over 300 bytes (MCP does not bound them; goosed does).
// With MCP_FAKE_PINGFLOOD=N its GET stream sends N pings and it never answers the POSTs that
// bring their answers (it holds each open); a tools/call is answered once all N have come.
import http from 'node:http';

const token = process.env.MCP_FAKE_TOKEN;
const stale = process.env.MCP_FAKE_STALE === '1';
const sessions = new Set();
let sessionsMade = 0;
let staleDone = false;
const flood = Number(process.env.MCP_FAKE_PINGFLOOD || 0);
let held = 0; // POSTs of answers held open
let heldAll = null;
const allHeld = new Promise((r) => { heldAll = r; });

const server = http.createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    const sid = req.headers['mcp-session-id'];
    const auth = req.headers.authorization;
    let msg = null;
    try { msg = body ? JSON.parse(body) : null; } catch { /* reported below */ }
    process.stderr.write(JSON.stringify({ method: req.method, rpc: msg?.method ?? null, sid: sid ?? null, auth: auth === `Bearer ${token}`, traceparent: req.headers.traceparent ?? null }) + '\n');
    if (token && auth !== `Bearer ${token}`) { res.writeHead(401); res.end('missing or wrong bearer token'); return; }
    if (req.method === 'GET' && process.env.MCP_FAKE_FORGETFUL === '1') { // once the client is up
      setTimeout(() => { sessions.delete(sid); res.writeHead(404); res.end('session not found'); }, 300);
      return;
    }
    if (req.method === 'GET' && process.env.MCP_FAKE_RETRY0 === '1') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`id: ${Date.now()}\nretry: 0\ndata:\n\n`);
      return;
    }
    if (req.method === 'GET' && flood) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (let i = 0; i < flood; i++) res.write(`data: ${JSON.stringify({ jsonrpc: '2.0', id: `p${i}`, method: 'ping' })}\n\n`);
      return;
    }
    if (req.method === 'GET') { res.writeHead(405); res.end(); return; }
    if (req.method === 'DELETE') { sessions.delete(sid); res.writeHead(200); res.end(); return; }
    if (!msg) { res.writeHead(400); res.end('bad JSON'); return; }
    if (msg.method === 'initialize') {
      const id = process.env.MCP_FAKE_SID_LONG === '1' ? `s${++sessionsMade}${'x'.repeat(300)}` : `s${++sessionsMade}`;
      sessions.add(id);
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': id });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { protocolVersion: msg.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'fake-http', version: '1' } } }));
      return;
    }
    if (!sessions.has(sid) || (stale && !staleDone && msg.method === 'tools/call')) {
      if (msg.method === 'tools/call') { staleDone = true; sessions.delete(sid); }
      res.writeHead(404); res.end('session not found'); return;
    }
    if (flood && msg.id !== undefined && msg.method === undefined) {
      process.stderr.write(JSON.stringify({ held: ++held }) + '\n');
      if (held === flood) heldAll();
      return; // never answered
    }
    if (msg.id === undefined || msg.method === undefined) { res.writeHead(202); res.end(); return; }
    if (flood && msg.method === 'tools/call') {
      allHeld.then(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { content: [{ type: 'text', text: 'all held' }] } }));
      });
      return;
    }
    let result;
    if (msg.method === 'tools/list') result = { tools: [{ name: 'echo', description: 'Echoes a message', inputSchema: { type: 'object', properties: { message: { type: 'string' } } } }] };
    else if (msg.method === 'tools/call') result = { content: [{ type: 'text', text: `Echo: ${msg.params.arguments?.message}` }] };
    else if (msg.method === 'ping') result = {};
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(result ? { jsonrpc: '2.0', id: msg.id, result } : { jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: 'not supported' } }));
  });
});
server.listen(0, '127.0.0.1', () => { process.stdout.write(`port ${server.address().port}\n`); });
process.on('SIGTERM', () => server.close(() => process.exit(0)));
