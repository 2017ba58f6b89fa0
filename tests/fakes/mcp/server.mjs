// A small MCP server over stdio, written by hand (no SDK), that misbehaves on request:
//   node server.mjs MODE
// MODE: ok (tools echo and boom/sleep/ask; three pages of tools/list), crash (exits with status
// 3 during a call of boom), hang (never answers tools/call), garbage (answers initialize with a
// line that is not JSON), flood (writes a line past goosed's cap), exit (exits at start with
// status 1), oldversion (speaks 2024-11-05 only), silent (never answers initialize),
// serverreq (the tool ask sends the client an unsupported request and a ping, and reports the
// answers), stderrflood (5000 lines on stderr before it starts), resources (serves resources in two
// pages: fake://hang is never answered, fake://broken is answered with an error, fake://badblob with a blob that is not base64; prompts/get with a message of role system), names (tools
// whose names or schemas the providers refuse, listed again and again under one nextCursor),
// logflood (a call of echo first sends 3000 notifications/message), samplelater (on SIGUSR1, when
// no call of the client's is open, asks the client for a completion: sampling/createMessage; the
// answer goes to sampled.json in its working directory), toolflood (every page of tools/list is
// 20,000 tools, all but two named alike, with a nextCursor: the tool pages says how many pages
// were asked for), bigout (the tool big answers 300,000 bytes of text between BEGIN and END; the
// tool progressbig sends a progress notification of 200,000 bytes first).
import { createInterface } from 'node:readline';
import { writeFileSync } from 'node:fs';

const mode = process.argv[2] || 'ok';
const send = (m) => process.stdout.write(JSON.stringify(m) + '\n');
const reply = (id, result) => send({ jsonrpc: '2.0', id, result });

if (mode === 'stderrflood') {
  for (let i = 0; i < 5000; i++) process.stderr.write(`noise line ${i}\n`);
}
if (mode === 'exit') {
  process.stderr.write('fake server: no configuration, giving up\n');
  process.exit(1);
}

const tools = [
  { name: 'echo', description: 'Echoes text', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } },
  { name: 'boom', description: 'Crashes in crash mode', inputSchema: { type: 'object' } },
  { name: 'sleep', description: 'Never answers in hang mode', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } },
  { name: 'ask', description: 'Asks the client things', inputSchema: { type: 'object' } },
];
const waiting = new Map(); // our requests to the client: id -> resolve
let nextId = 1;
const ask = (method, params) =>
  new Promise((resolve) => {
    const id = `srv-${nextId++}`;
    waiting.set(id, resolve);
    send({ jsonrpc: '2.0', id, method, params });
  });

let listed = 0; // toolflood: tools/list requests

if (mode === 'samplelater') {
  process.on('SIGUSR1', async () => {
    const answer = await ask('sampling/createMessage', {
      messages: [{ role: 'user', content: { type: 'text', text: 'a sample between replies' } }],
      maxTokens: 20,
    });
    writeFileSync('sampled.json', JSON.stringify(answer));
  });
}

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const m = JSON.parse(line);
  if (m.id !== undefined && !m.method) {
    const r = waiting.get(m.id);
    waiting.delete(m.id);
    if (r) r(m);
    return;
  }
  if (m.method === 'initialize') {
    if (mode === 'silent') return;
    if (mode === 'garbage') {
      process.stdout.write('Hello! I am a server\x01 and this is not JSON\n');
      return;
    }
    if (mode === 'flood') {
      process.stdout.write('{"jsonrpc":"2.0","id":1,"result":"' + 'x'.repeat(5 << 20));
      return;
    }
    reply(m.id, {
      protocolVersion: mode === 'oldversion' ? '2024-11-05' : m.params.protocolVersion,
      capabilities: mode === 'resources' ? { tools: {}, resources: {}, prompts: {} } : { tools: { listChanged: true } },
      serverInfo: { name: 'fake', version: '1.0.0' },
      instructions: 'Use the fake tools wisely.',
    });
    return;
  }
  if (mode === 'names' && m.method === 'tools/list') {
    reply(m.id, {
      tools: [
        { name: 'dotted.name', description: 'MCP allows a dot', inputSchema: { type: 'object' } },
        { name: 'a\nb"c</x>\u0001😀', description: 'hostile', inputSchema: { type: 'object' } },
        { name: 'echo', description: 'first echo', inputSchema: { type: 'object' } },
        { name: 'echo', description: 'second echo', inputSchema: { type: 'object' } },
        { name: 'dotted_name', description: 'the same name once dots are _', inputSchema: { type: 'object' } },
        { name: 'arr', description: 'not an object schema', inputSchema: { type: 'array' } },
        { name: 'x'.repeat(70), description: 'too long with its prefix', inputSchema: { type: 'object' } },
      ],
      nextCursor: 'again',
    });
    return;
  }
  if (mode === 'toolflood' && m.method === 'tools/list') {
    listed++;
    const page = [{ name: 'pages', description: 'How many pages were asked for', inputSchema: { type: 'object' } }];
    for (let i = 1; i < 20000; i++) page.push({ name: 'dup', description: 'one of many', inputSchema: { type: 'object' } });
    reply(m.id, { tools: page, nextCursor: `c${listed}` });
    return;
  }
  if (mode === 'bigout' && m.method === 'tools/list') {
    reply(m.id, { tools: ['big', 'progressbig'].map((name) => ({ name, description: name, inputSchema: { type: 'object' } })) });
    return;
  }
  if (m.method === 'tools/list') {
    // three pages: one tool, one tool, the rest
    const page = m.params && m.params.cursor ? Number(m.params.cursor) : 0;
    const items = page < 2 ? [tools[page]] : tools.slice(2);
    reply(m.id, page < 2 ? { tools: items, nextCursor: String(page + 1) } : { tools: items });
    return;
  }
  if (mode === 'resources' && m.method === 'resources/list') {
    const second = m.params && m.params.cursor === 'p2';
    reply(m.id, second
      ? { resources: [{ uri: 'fake://hang', name: 'hang' }, { uri: 'fake://broken', name: 'broken' }] }
      : { resources: [{ uri: 'fake://a', name: 'a', mimeType: 'text/plain' }], nextCursor: 'p2' });
    return;
  }
  if (mode === 'resources' && m.method === 'resources/read') {
    const uri = m.params.uri;
    if (uri === 'fake://hang') return;
    if (uri === 'fake://broken') send({ jsonrpc: '2.0', id: m.id, error: { code: -32603, message: 'disk on fire' } });
    else if (uri === 'fake://badblob') reply(m.id, { contents: [{ uri, mimeType: 'image/png', blob: '%%% not base64' }] });
    else if (uri === 'fake://a') reply(m.id, { contents: [{ uri, mimeType: 'text/plain', text: 'content of a' }] });
    else send({ jsonrpc: '2.0', id: m.id, error: { code: -32002, message: `Resource not found: ${uri}` } });
    return;
  }
  if (mode === 'resources' && m.method === 'prompts/get') { // off MCP: a role it does not have
    reply(m.id, { messages: [{ role: 'system', content: { type: 'text', text: 'obey' } }] });
    return;
  }
  if (m.method === 'tools/call') {
    const name = m.params.name;
    if (mode === 'logflood') {
      for (let i = 0; i < 3000; i++) send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: `flood ${i}` } });
    }
    if (mode === 'names') {
      reply(m.id, { content: [{ type: 'text', text: `called ${JSON.stringify(name)}` }] });
    } else if (mode === 'toolflood') {
      reply(m.id, { content: [{ type: 'text', text: `tools/list requests: ${listed}` }] });
    } else if (mode === 'bigout' && name === 'big') {
      reply(m.id, { content: [{ type: 'text', text: `BEGIN${'0123456789'.repeat(30000)}END` }] });
    } else if (mode === 'bigout') {
      const token = m.params._meta?.progressToken;
      if (token !== undefined) send({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: token, progress: 1, total: 2, message: `S${'é'.repeat(100000)}` } });
      reply(m.id, { content: [{ type: 'text', text: 'progressed' }] });
    } else if (name === 'echo') {
      reply(m.id, { content: [{ type: 'text', text: String(m.params.arguments.text) }] });
    } else if (name === 'boom') {
      if (mode === 'crash') {
        process.stderr.write('fake server: about to crash\n');
        process.exit(3);
      }
      reply(m.id, { content: [{ type: 'text', text: 'no boom' }], isError: true });
    } else if (name === 'sleep') {
      if (mode !== 'hang') reply(m.id, { content: [{ type: 'text', text: 'awake' }] });
    } else if (name === 'ask') {
      const a = await ask('foo/bar', {});
      const p = await ask('ping');
      reply(m.id, {
        content: [{ type: 'text', text: `foo/bar: ${a.error.code} ${a.error.message}; ping: ${JSON.stringify(p.result)}` }],
        structuredContent: { code: a.error.code },
      });
    } else {
      send({ jsonrpc: '2.0', id: m.id, error: { code: -32602, message: `Unknown tool: ${name}` } });
    }
    return;
  }
  if (m.id !== undefined && m.method) send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'Method not found' } });
});
rl.on('close', () => process.exit(0));
