// The agent: a message goes in, the (fake) provider streams a reply, tools run, and the client
// watches it over SSE or gets the final message as JSON. The provider is tests/fakes, a separate
// process speaking OpenAI's exact streaming format.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAndCheck, tempDir } from './lib/server.mjs';
import { request, get, post, assertError, assertAlive } from './lib/http.mjs';
import { startFake, parseSSE } from '../fakes/lib.mjs';
import { watch } from './lib/events.mjs';

const KEY = 'sk-test-key';

async function newSession(srv, dir) {
  const r = await post(srv, '/api/sessions', { name: 'agent test', working_directory: dir });
  assert.equal(r.status, 201, r.text);
  return r.body.id;
}

/** POSTs a message and reads the whole SSE reply (it ends after message_complete or error). */
async function sse(srv, p, content, headers = {}) {
  const r = await request(srv, 'POST', p, { json: { content }, headers });
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^text\/event-stream/);
  return parseSSE(r.text).map((e) => ({ ...e, json: JSON.parse(e.data) }));
}

function texts(events) {
  return events.filter((e) => e.event === 'message_chunk').map((e) => e.json.text).join('');
}

describe('agent with an OpenAI-compatible provider', () => {
  let fake;
  let srv;
  let dir;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
    dir = tempDir('goosed-agent-cwd-');
    srv = await startServer({
      env: { GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, ANTHROPIC_API_KEY: 'sk-ant-hidden', GOOSED_TEST_VISIBLE: 'visible' },
    });
  });
  after(async () => {
    try {
      await stopAndCheck(srv);
    } finally {
      await fake.stop();
    }
  });

  it('streams a text reply as SSE and stores both messages', async () => {
    await fake.reset();
    await fake.script([{ text: 'Hello there, friend.', chunks: 4, delay_ms: 50, usage: { input: 12, output: 5 } }]);
    const id = await newSession(srv, dir);
    const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'Say hello');
    assert.equal(texts(events), 'Hello there, friend.');
    assert.ok(events.filter((e) => e.event === 'message_chunk').length >= 2, 'the reply arrived in pieces');
    const last = events.at(-1);
    assert.equal(last.event, 'message_complete');
    assert.equal(last.json.stop_reason, 'end_turn');
    assert.deepEqual(last.json.usage, { input_tokens: 12, output_tokens: 5 });
    const ids = events.map((e) => Number(e.id));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'event ids increase');
    assert.equal(new Set(ids).size, ids.length, 'event ids are unique');

    const hist = await get(srv, `/api/sessions/${id}/messages`);
    assert.equal(hist.status, 200);
    assert.deepEqual(hist.body.map((m) => m.role), ['user', 'assistant']);
    assert.deepEqual(hist.body[0].content, [{ type: 'text', text: 'Say hello' }]);
    assert.deepEqual(hist.body[1].content, [{ type: 'text', text: 'Hello there, friend.' }]);
    assert.equal(hist.body[1].id, last.json.message_id);

    const s = await get(srv, `/api/sessions/${id}`);
    assert.equal(s.body.message_count, 2);
    assert.equal(s.body.input_tokens, 12);
    assert.equal(s.body.output_tokens, 5);
    assert.equal(s.body.total_tokens, 17);

    const sent = await fake.requests();
    assert.equal(sent.length, 1);
    assert.equal(sent[0].headers.authorization, `Bearer ${KEY}`);
    assert.equal(sent[0].body.model, 'gpt-test');
    assert.equal(sent[0].body.stream, true);
    assert.equal(sent[0].body.messages[0].role, 'system');
    assert.match(sent[0].body.messages[0].content, new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    assert.deepEqual(sent[0].body.messages.at(-1), { role: 'user', content: 'Say hello' });
    assert.ok(sent[0].body.tools.some((t) => t.function.name === 'developer__shell'), 'the developer tools are offered');
  });

  it("seed 000's POST /sessions/{id}/messages and Accept: text/event-stream stream too", async () => {
    const id = await newSession(srv, dir);
    await fake.script([{ text: 'one' }, { text: 'two' }]);
    const a = await sse(srv, `/sessions/${id}/messages`, 'first');
    assert.equal(texts(a), 'one');
    const b = await sse(srv, `/api/sessions/${id}/messages`, 'second', { Accept: 'text/event-stream' });
    assert.equal(texts(b), 'two');
    assert.ok(Number(b[0].id) > Number(a.at(-1).id), 'event ids go on across replies');
    const sent = await fake.requests();
    const second = sent.at(-1).body.messages;
    assert.deepEqual(second.slice(1).map((m) => m.role), ['user', 'assistant', 'user'], 'history is sent back');
  });

  it("answers seed 001's JSON message when the client does not ask for a stream", async () => {
    const id = await newSession(srv, dir);
    await fake.script([{ text: "I'll create a Python script...", usage: { input: 3, output: 4 } }]);
    const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'Create a Python script', role: 'user' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.role, 'assistant');
    assert.equal(r.body.content, "I'll create a Python script...");
    assert.equal(r.body.stop_reason, 'end_turn');
    assert.deepEqual(r.body.usage, { input_tokens: 3, output_tokens: 4 });
    const hist = await get(srv, `/api/sessions/${id}/messages`);
    assert.equal(hist.body.at(-1).id, r.body.id);
  });

  it('runs a tool call in the working directory and sends the result back to the model', async () => {
    const id = await newSession(srv, dir);
    await fake.script([
      { text: 'Let me check', tool_calls: [{ id: 'call_1', name: 'developer__shell', arguments: { command: 'echo hello-from-shell > made.txt && cat made.txt' } }], split: 3 },
      { text: 'The file says hello.' },
    ]);
    const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'Make a file');
    const names = events.map((e) => e.event);
    assert.deepEqual(names.filter((n) => n !== 'message_chunk'), ['tool_call', 'tool_result', 'message_complete']);
    const call = events.find((e) => e.event === 'tool_call').json;
    assert.deepEqual(call, { id: 'call_1', tool: 'developer__shell', arguments: { command: 'echo hello-from-shell > made.txt && cat made.txt' }, status: 'running' });
    const result = events.find((e) => e.event === 'tool_result').json;
    assert.equal(result.id, 'call_1');
    assert.equal(result.is_error, false);
    assert.match(result.result, /hello-from-shell/);
    assert.equal(readFileSync(path.join(dir, 'made.txt'), 'utf8'), 'hello-from-shell\n');
    assert.equal(texts(events), 'Let me checkThe file says hello.');

    const sent = await fake.requests();
    const msgs = sent.at(-1).body.messages;
    const tool = msgs.find((m) => m.role === 'tool');
    assert.equal(tool.tool_call_id, 'call_1');
    assert.match(tool.content, /hello-from-shell/);
    const asked = msgs.find((m) => m.role === 'assistant' && m.tool_calls);
    assert.equal(asked.tool_calls[0].function.name, 'developer__shell');

    const hist = await get(srv, `/api/sessions/${id}/messages`);
    assert.deepEqual(hist.body.map((m) => m.role), ['user', 'assistant', 'user', 'assistant']);
    assert.equal(hist.body[1].content.at(-1).type, 'tool_request');
    assert.equal(hist.body[2].content[0].type, 'tool_response');
    assert.equal(hist.body[2].content[0].id, 'call_1');
  });

  it('a model that gives two calls one id (or none): each gets an id of its own, and the session goes on', async () => {
    const id = await newSession(srv, dir);
    const call = (cid, word) => ({ id: cid, name: 'developer__shell', arguments: { command: `echo ${word}` } });
    await fake.script([
      { tool_calls: [call('same', 'one'), call('same', 'two'), call('same_2', 'three')] },
      { text: 'Three ran.' },
      { text: 'Still here.' },
    ]);
    const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'Run them');
    const calls = events.filter((e) => e.event === 'tool_call').map((e) => [e.json.id, e.json.arguments.command]);
    assert.deepEqual(calls, [['same', 'echo one'], ['same_2', 'echo two'], ['same_2_2', 'echo three']]);
    const results = events.filter((e) => e.event === 'tool_result').map((e) => [e.json.id, e.json.result.trim()]);
    assert.deepEqual(results.map(([rid]) => rid), ['same', 'same_2', 'same_2_2']);
    assert.equal(events.at(-1).event, 'message_complete');
    // the provider was sent each call with its own answer (the fake refuses otherwise), and again next time
    const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'and now?' });
    assert.equal(r.status, 200, r.text);
    const sent = (await fake.requests()).at(-1).body.messages;
    const asked = sent.find((m) => m.role === 'assistant' && m.tool_calls);
    assert.deepEqual(asked.tool_calls.map((c) => c.id), ['same', 'same_2', 'same_2_2']);
    assert.deepEqual(sent.filter((m) => m.role === 'tool').map((m) => m.tool_call_id), ['same', 'same_2', 'same_2_2']);
  });

  it("the shell sees an allow-listed environment: no API keys, no other variable of goosed's", async () => {
    const id = await newSession(srv, dir);
    const command = 'echo "openai=${OPENAI_API_KEY:-unset} anthropic=${ANTHROPIC_API_KEY:-unset} other=${GOOSED_TEST_VISIBLE:-unset} path=${PATH:+set}"';
    await fake.script([{ tool_calls: [{ id: 'call_env', name: 'developer__shell', arguments: { command } }] }, { text: 'done' }]);
    const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'print the keys');
    const result = events.find((e) => e.event === 'tool_result').json;
    assert.match(result.result, /openai=unset anthropic=unset other=unset path=set/);
  });

  it("reports the provider's own error, as an SSE error event and as a 502 in JSON", async () => {
    const id = await newSession(srv, dir);
    await fake.script([{ error: { status: 400, message: 'This model does not exist (fake)' } }]);
    const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'hi');
    assert.equal(events.at(-1).event, 'error');
    assert.match(events.at(-1).json.error, /This model does not exist \(fake\)/);
    assert.equal(events.at(-1).json.code, 'provider_error');
    await fake.script([{ error: { status: 400, message: 'Still no such model' } }]);
    const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'hi' });
    assertError(r, 502, 'provider_error', /Still no such model/);
    await assertAlive(srv);
  });

  it('retries a 500 and a 429 with Retry-After, then succeeds', async () => {
    const id = await newSession(srv, dir);
    await fake.reset();
    await fake.script([
      { error: { status: 500, message: 'upstream hiccup' } },
      { error: { status: 429, message: 'slow down', retry_after: 1 } },
      { text: 'third time lucky' },
    ]);
    const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'hi');
    assert.equal(texts(events), 'third time lucky');
    assert.equal(events.at(-1).event, 'message_complete');
    assert.equal((await fake.requests()).length, 3);
  });

  it('a truncated stream is an error, not a silent partial reply', async () => {
    const id = await newSession(srv, dir);
    await fake.script([{ text: 'one two three four five', chunks: 5, truncate_after: 2 }]);
    const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'hi');
    assert.equal(events.at(-1).event, 'error');
    assert.match(events.at(-1).json.error, /ended before it was complete/);
  });

  it('an invalid JSON chunk is an error naming it, and the server keeps serving', async () => {
    const id = await newSession(srv, dir);
    await fake.script([{ text: 'one two three four five', chunks: ['one', ' two', ' three', ' four', ' five'], garbage_after: 2 }]);
    const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'hi');
    assert.equal(texts(events), 'one two', 'what came before the bad chunk was relayed');
    assert.equal(events.at(-1).event, 'error');
    assert.equal(events.at(-1).json.code, 'provider_error');
    assert.match(events.at(-1).json.error, /stream chunk that is not valid JSON/);
    // What the user saw is kept: the partial reply is stored as the assistant's message.
    const hist = await get(srv, `/api/sessions/${id}/messages`);
    assert.deepEqual(hist.body.map((m) => [m.role, m.content]), [
      ['user', [{ type: 'text', text: 'hi' }]],
      ['assistant', [{ type: 'text', text: 'one two' }]],
    ]);
    await assertAlive(srv);
  });

  it("an error inside the stream carries the provider's own message", async () => {
    const id = await newSession(srv, dir);
    await fake.reset();
    await fake.script([{ text: 'partial answer here', chunks: ['partial', ' answer', ' here'], error: { status: 500, message: 'The server had an error (fake)', in_stream: true, after: 1 } }]);
    const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'hi');
    assert.equal(texts(events), 'partial');
    assert.equal(events.at(-1).event, 'error');
    assert.equal(events.at(-1).json.code, 'provider_error');
    assert.match(events.at(-1).json.error, /The server had an error \(fake\)/);
    assert.equal((await fake.requests()).length, 1, 'not retried once output reached the client');
    const hist = await get(srv, `/api/sessions/${id}/messages`);
    assert.deepEqual(hist.body.map((m) => [m.role, m.content]), [
      ['user', [{ type: 'text', text: 'hi' }]],
      ['assistant', [{ type: 'text', text: 'partial' }]],
    ]);
  });

  it('answers 409 to a second message while a reply runs, and cancel stops it', async () => {
    const id = await newSession(srv, dir);
    await fake.script([{ text: 'slow reply', chunks: 2, stall_after: 1, stall_ms: 20000 }]);
    const ctl = new AbortController();
    const res = await fetch(`${srv.url}/api/sessions/${id}/messages/stream`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'go' }), signal: ctl.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let text = '';
    while (!text.includes('message_chunk')) { // the reply is running: its first chunk arrived
      const { value, done } = await reader.read();
      assert.ok(!done, 'stream ended early');
      text += dec.decode(value);
    }
    const busy = await post(srv, `/api/sessions/${id}/messages`, { content: 'again' });
    assertError(busy, 409, 'reply_running');
    const c = await post(srv, `/api/sessions/${id}/cancel`, undefined);
    assert.equal(c.status, 202);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value);
    }
    const events = parseSSE(text);
    const end = events.at(-1);
    assert.equal(end.event, 'message_complete');
    assert.equal(JSON.parse(end.data).stop_reason, 'cancelled');
    const none = await post(srv, `/api/sessions/${id}/cancel`, undefined);
    assertError(none, 409, 'no_reply_running');
    const hist = await get(srv, `/api/sessions/${id}/messages`);
    assert.deepEqual(hist.body.map((m) => m.role), ['user', 'assistant'], 'what arrived before the cancel is kept');
    const kept = hist.body[1].content[0].text;
    assert.ok(kept.length > 0 && 'slow reply'.startsWith(kept) && kept !== 'slow reply', `kept "${kept}"`);
  });

  it('replays missed events to a watcher that sends Last-Event-ID', async () => {
    const id = await newSession(srv, dir);
    await fake.script([{ text: 'abc', chunks: 3 }]);
    const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'hi');
    const first = Number(events[0].id);
    const ctl = new AbortController();
    const res = await fetch(`${srv.url}/api/sessions/${id}/events`, { headers: { 'Last-Event-ID': String(first) }, signal: ctl.signal });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let text = '';
    while (!text.includes('event: message_complete')) {
      const { value, done } = await reader.read();
      assert.ok(!done);
      text += dec.decode(value);
    }
    ctl.abort();
    const replayed = parseSSE(text).filter((e) => !e.incomplete);
    assert.deepEqual(replayed.map((e) => Number(e.id)), events.slice(1).map((e) => Number(e.id)));
  });

  it('validates the message and the session', async () => {
    const id = await newSession(srv, dir);
    assertError(await post(srv, `/api/sessions/${id}/messages`, {}), 400, 'bad_request', /content/);
    assertError(await post(srv, `/api/sessions/${id}/messages`, { content: '' }), 400, 'bad_request', /content/);
    assertError(await post(srv, `/api/sessions/${id}/messages`, { content: 'x', role: 'assistant' }), 400, 'bad_request', /role/);
    assertError(await post(srv, '/api/sessions/00000000-0000-4000-8000-000000000000/messages', { content: 'x' }), 404, 'not_found');
    assertError(await post(srv, '/api/sessions/00000000-0000-4000-8000-000000000000/cancel', undefined), 404, 'not_found');
  });
});

describe('agent without a provider', () => {
  it('tells the user how to configure one, and keeps serving', async () => {
    const srv = await startServer();
    try {
      const r = await post(srv, '/api/sessions', { working_directory: srv.home });
      const m = await post(srv, `/api/sessions/${r.body.id}/messages`, { content: 'hi' });
      assertError(m, 503, 'provider_not_configured', /GOOSE_PROVIDER/);
      await assertAlive(srv);
    } finally {
      await stopAndCheck(srv);
    }
  });
});

// The same tool loop through the Anthropic and Gemini dialects: each provider's own wire format,
// and the tool result sent back the way that provider wants it.
for (const prov of [
  {
    name: 'anthropic', env: (url) => ({ ANTHROPIC_HOST: url, ANTHROPIC_API_KEY: 'ak' }), keys: { anthropic: 'ak' },
    resultSent: (body) => body.messages.flatMap((m) => (Array.isArray(m.content) ? m.content : [])).find((b) => b.type === 'tool_result'),
    check: (r) => { assert.equal(r.tool_use_id, 'toolu_1'); assert.match(JSON.stringify(r.content), /hi-from-tool/); },
  },
  {
    name: 'google', env: (url) => ({ GOOGLE_HOST: url, GOOGLE_API_KEY: 'gk' }), keys: { google: 'gk' },
    resultSent: (body) => body.contents.flatMap((c) => c.parts).find((p) => p.functionResponse),
    check: (r) => { assert.equal(r.functionResponse.name, 'developer__shell'); assert.match(JSON.stringify(r.functionResponse.response), /hi-from-tool/); },
  },
]) {
  describe(`agent with the ${prov.name} provider`, () => {
    it('streams text, runs a tool call and sends its result back in the provider\'s format', async () => {
      const fake = await startFake({ keys: prov.keys });
      const srv = await startServer({ env: { GOOSE_PROVIDER: prov.name, ...prov.env(fake.url) } });
      try {
        const dir = tempDir('goosed-agent-cwd-');
        const id = await newSession(srv, dir);
        await fake.script([
          { text: 'Let me look', tool_calls: [{ id: 'toolu_1', name: 'developer__shell', arguments: { command: 'echo hi-from-tool' } }], split: 3, usage: { input: 7, output: 3 } },
          { text: 'All done.', usage: { input: 9, output: 2 } },
        ]);
        const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'run it');
        assert.equal(texts(events), 'Let me lookAll done.');
        const call = events.find((e) => e.event === 'tool_call').json;
        assert.deepEqual(call.arguments, { command: 'echo hi-from-tool' });
        assert.match(events.find((e) => e.event === 'tool_result').json.result, /hi-from-tool/);
        const end = events.at(-1);
        assert.equal(end.event, 'message_complete');
        assert.deepEqual(end.json.usage, { input_tokens: 16, output_tokens: 5 });
        const sent = await fake.requests();
        assert.equal(sent.length, 2);
        prov.check(prov.resultSent(sent[1].body));
      } finally {
        try {
          await stopAndCheck(srv);
        } finally {
          await fake.stop();
        }
      }
    });
  });
}

/** Each provider dialect against the fake: its name, goosed's environment for it, the fake's keys. */
const DIALECTS = [
  { name: 'openai', env: (url) => ({ OPENAI_HOST: url, OPENAI_API_KEY: KEY }), keys: { openai: KEY } },
  { name: 'ollama', env: (url) => ({ OLLAMA_HOST: url }), keys: {} },
  { name: 'anthropic', env: (url) => ({ ANTHROPIC_HOST: url, ANTHROPIC_API_KEY: 'ak' }), keys: { anthropic: 'ak' } },
  { name: 'google', env: (url) => ({ GOOGLE_HOST: url, GOOGLE_API_KEY: 'gk' }), keys: { google: 'gk' } },
];

// A reply with nothing a provider could be sent back (no text and no tool call, or thinking only)
// is kept in the session; every later request must still be one the real API takes: OpenAI and
// Ollama refuse an assistant message with content null and no tool_calls, Anthropic one with no
// content before the last, Gemini a content without parts (the fake refuses each likewise).
describe('a reply with nothing to send back', () => {
  for (const prov of DIALECTS) {
    it(`${prov.name}: the session goes on after an empty, a blank and a thinking-only reply`, async () => {
      const fake = await startFake({ keys: prov.keys });
      const srv = await startServer({ env: { GOOSE_PROVIDER: prov.name, ...prov.env(fake.url) } });
      try {
        for (const empty of [{ text: '' }, { text: '  \n' }, { thinking: 'hmm, nothing to say', signature: '' }]) {
          const id = await newSession(srv, srv.home);
          await fake.script([empty, { text: 'second answer' }, { text: 'third answer' }]);
          const first = await post(srv, `/api/sessions/${id}/messages`, { content: 'first' });
          assert.equal(first.status, 200, first.text);
          for (const [said, want] of [['second', 'second answer'], ['third', 'third answer']]) {
            const r = await post(srv, `/api/sessions/${id}/messages`, { content: said });
            assert.equal(r.status, 200, `${JSON.stringify(empty)}, then "${said}": ${r.text}`);
            assert.equal(r.body.content, want);
          }
          const h = await get(srv, `/api/sessions/${id}/messages`);
          assert.deepEqual(h.body.map((m) => m.role), ['user', 'assistant', 'user', 'assistant', 'user', 'assistant'],
            'the empty reply stays in the history');
        }
        assert.equal((await fake.stats()).refused, 0, fake.stderr());
      } finally {
        try {
          await stopAndCheck(srv);
        } finally {
          await fake.stop();
        }
      }
    });
  }
});

describe("a tool name or call id no API takes back, from the model or another provider", () => {
  for (const prov of DIALECTS.filter((p) => p.name !== 'ollama')) { // ollama: openai's
    it(`${prov.name}: a call of "repo browser/open.file" with id "functions.x:0" is answered, and the session goes on`, async () => {
      const fake = await startFake({ keys: prov.keys });
      const srv = await startServer({ env: { GOOSE_PROVIDER: prov.name, ...prov.env(fake.url) } });
      try {
        const id = await newSession(srv, srv.home);
        await fake.script([
          { tool_calls: [{ id: 'functions.x:0', name: 'repo browser/open.file', arguments: { path: 'a' } }] },
          { text: 'no such tool, then' },
          { text: 'still here' },
        ]);
        const first = await post(srv, `/api/sessions/${id}/messages`, { content: 'open it' });
        assert.equal(first.status, 200, first.text);
        assert.equal(first.body.content, 'no such tool, then');
        const again = await post(srv, `/api/sessions/${id}/messages`, { content: 'and now?' });
        assert.equal(again.status, 200, again.text);
        assert.equal(again.body.content, 'still here');
        assert.equal((await fake.stats()).refused, 0, fake.stderr());
        const h = await get(srv, `/api/sessions/${id}/messages`);
        const call = h.body.flatMap((m) => m.content).find((c) => c.type === 'tool_request');
        assert.equal(call.name, 'repo browser/open.file', 'stored as it came');
      } finally {
        try {
          await stopAndCheck(srv);
        } finally {
          await fake.stop();
        }
      }
    });
  }
});

describe('provider edge cases', () => {
  it("a wrong API key: the provider's 401 message, not retried", async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const srv = await startServer({ env: { GOOSE_PROVIDER: 'openai', OPENAI_HOST: fake.url, OPENAI_API_KEY: 'sk-wrong-key-1234' } });
    try {
      const id = await newSession(srv, srv.home);
      const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'hi');
      assert.equal(events.at(-1).event, 'error');
      assert.equal(events.at(-1).json.code, 'provider_error');
      assert.match(events.at(-1).json.error, /HTTP 401: Incorrect API key provided/);
      assert.doesNotMatch(events.at(-1).json.error, /sk-wrong-key-1234/, 'the key itself is not repeated');
      assert.equal((await fake.requests()).length, 1, 'a 401 is not retried');
      const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'hi' });
      assertError(r, 502, 'provider_error', /Incorrect API key/);
    } finally {
      try {
        await stopAndCheck(srv);
      } finally {
        await fake.stop();
      }
    }
  });

  it('a provider (or a proxy before it) that quotes the whole key: the key reaches neither the client nor the log', async () => {
    const fake = await startFake();
    const srv = await startServer({ env: { GOOSE_PROVIDER: 'openai', OPENAI_HOST: fake.url, OPENAI_API_KEY: 'sk-echoed-key-5678' } });
    try {
      const id = await newSession(srv, srv.home);
      await fake.script([{ error: { status: 401, message: 'Incorrect API key provided: Bearer sk-echoed-key-5678 (again: sk-echoed-key-5678)' } }]);
      const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'hi' });
      assertError(r, 502, 'provider_error', /Incorrect API key provided: Bearer \*\*\* \(again: \*\*\*\)/);
      assert.doesNotMatch(r.text, /sk-echoed-key-5678/);
      assert.doesNotMatch(srv.log(), /sk-echoed-key-5678/);
    } finally {
      try {
        await stopAndCheck(srv);
      } finally {
        await fake.stop();
      }
    }
  });

  /** A fake provider and a goosed using it with key (extra env), for fn({fake, srv, id}). */
  async function withOpenAI(key, extra, fn) {
    const fake = await startFake();
    const srv = await startServer({ env: { GOOSE_PROVIDER: 'openai', OPENAI_HOST: fake.url, OPENAI_API_KEY: key, ...extra } });
    try {
      await fn({ fake, srv, id: await newSession(srv, srv.home) });
    } finally {
      try {
        await stopAndCheck(srv);
      } finally {
        await fake.stop();
      }
    }
  }

  it('the key quoted in an error inside a stream (a retryable one, logged at each retry) reaches neither the client nor the log', async () => {
    await withOpenAI('sk-instream-key-2468', { GOOSE_MAX_RETRIES: '1' }, async ({ fake, srv, id }) => {
      const error = { status: 500, message: 'upstream refused Bearer sk-instream-key-2468', in_stream: true, after: 0 };
      await fake.script([{ error }, { error }]);
      const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'hi');
      assert.equal(events.at(-1).event, 'error');
      assert.match(events.at(-1).json.error, /upstream refused Bearer \*\*\*/);
      assert.doesNotMatch(JSON.stringify(events), /sk-instream-key-2468/);
      assert.equal((await fake.requests()).length, 2, 'retried once');
      assert.match(srv.log(), /retrying in/);
      assert.doesNotMatch(srv.log(), /sk-instream-key-2468/);
    });
  });

  it('token counts past any sane size are taken as 10^12, and added up without overflowing', async () => {
    await withOpenAI(KEY, {}, async ({ fake, srv, id }) => {
      const huge = { input: 4600000000000000000, output: 4600000000000000000 }; // their sum still a long long
      await fake.script([
        { tool_calls: [{ name: 'developer__shell', arguments: { command: 'true' } }], usage: huge },
        { text: 'done', usage: huge },
      ]);
      const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'hi' });
      assert.equal(r.status, 200, r.text);
      const s = await get(srv, `/api/sessions/${id}`);
      assert.equal(s.body.input_tokens, 2e12);
      assert.equal(s.body.output_tokens, 2e12);
      await assertAlive(srv);
    });
  });

  it('a Retry-After of 1e300 seconds waits goosed\'s longest (30 s), not forever; the reply can be cancelled meanwhile', async () => {
    await withOpenAI(KEY, {}, async ({ fake, srv, id }) => {
      await fake.script([{ error: { status: 429, retry_after: 1e300 } }, { text: 'never asked for' }]);
      const w = await watch(srv, id);
      const pending = post(srv, `/api/sessions/${id}/messages`, { content: 'hi' });
      await srv.waitForLog(/retrying in (-?\d+) ms/);
      assert.match(srv.log(), /retrying in 30000 ms/);
      assert.equal((await post(srv, `/api/sessions/${id}/cancel`, {})).status, 202);
      await pending;
      await w.until(['message_complete', 'error']);
      w.close();
      assert.equal((await fake.requests()).length, 1);
    });
  });

  it('a stream of keep-alive comments and nothing else ends after api_timeout, as silence does', async () => {
    await withOpenAI(KEY, { GOOSE_API_TIMEOUT: '1', GOOSE_MAX_RETRIES: '0' }, async ({ fake, srv, id }) => {
      await fake.script([{ comments_ms: 100 }]);
      const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'hi');
      assert.equal(events.at(-1).event, 'error');
      assert.equal(events.at(-1).json.code, 'provider_error');
      assert.match(events.at(-1).json.error, /no data from .* for 1 s/);
    });
  });

  it('a tool call whose id or name passes 256 bytes is refused as a broken answer, nothing of it stored', async () => {
    await withOpenAI(KEY, { GOOSE_MAX_RETRIES: '0' }, async ({ fake, srv, id }) => {
      await fake.script([
        { tool_calls: [{ id: `call_${'x'.repeat(300)}`, name: 'developer__shell', arguments: { command: 'true' } }] },
        { tool_calls: [{ name: `developer__${'y'.repeat(300)}`, arguments: {} }] },
      ]);
      for (let i = 0; i < 2; i++) {
        const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'hi' });
        assertError(r, 502, 'provider_error', /tool call whose id or name passes 256 bytes/);
      }
      const hist = await get(srv, `/api/sessions/${id}/messages`);
      assert.doesNotMatch(hist.text, /xxxxxxxx|yyyyyyyy/);
    });
  });

  it("200 with an error in JSON instead of a stream: the provider's own message, not retried", async () => {
    await withOpenAI(KEY, {}, async ({ fake, srv, id }) => {
      await fake.script([{ body: { status: 200, text: JSON.stringify({ error: { message: 'model overloaded, try later (fake)', type: 'server_error' } }) } }]);
      const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'hi' });
      assertError(r, 502, 'provider_error', /HTTP 200 with an error: model overloaded, try later \(fake\)/);
      assert.equal((await fake.requests()).length, 1);
    });
  });

  it('Anthropic overloaded inside the stream, before any output: retried like a 529', async () => {
    const fake = await startFake({ keys: { anthropic: 'ak' } });
    const srv = await startServer({ env: { GOOSE_PROVIDER: 'anthropic', ANTHROPIC_HOST: fake.url, ANTHROPIC_API_KEY: 'ak' } });
    try {
      const id = await newSession(srv, srv.home);
      await fake.script([
        { text: 'never seen', error: { status: 529, in_stream: true, after: 0 } },
        { text: 'second try' },
        { text: 'not retried', chunks: ['not', ' retried'], error: { status: 529, in_stream: true, after: 1 } },
        { text: 'must not be asked for' },
      ]);
      let events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'hi');
      assert.equal(texts(events), 'second try');
      assert.equal(events.at(-1).event, 'message_complete');
      assert.equal((await fake.requests()).length, 2);
      events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'again');
      assert.equal(texts(events), 'not');
      assert.deepEqual([events.at(-1).event, events.at(-1).json.error], ['error', 'Overloaded']);
      assert.equal((await fake.requests()).length, 3);
      await fake.script([{ error: { status: 400, message: 'prompt is too long (fake)', in_stream: true, after: 0 } }, { text: 'must not be asked for' }]);
      events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'a third');
      assert.deepEqual([events.at(-1).event, events.at(-1).json.error], ['error', 'prompt is too long (fake)']);
      assert.equal((await fake.requests()).length, 4, 'a request error is not retried');
    } finally {
      try {
        await stopAndCheck(srv);
      } finally {
        await fake.stop();
      }
    }
  });

  it('Anthropic extended thinking: asked for with CLAUDE_THINKING_ENABLED, streamed, and sent back signed', async () => {
    const fake = await startFake({ keys: { anthropic: 'ak' } });
    const env = { GOOSE_PROVIDER: 'anthropic', ANTHROPIC_HOST: fake.url, ANTHROPIC_API_KEY: 'ak', CLAUDE_THINKING_ENABLED: 'true', CLAUDE_THINKING_BUDGET: '4096' };
    const srv = await startServer({ env });
    try {
      const id = await newSession(srv, tempDir('goosed-agent-cwd-'));
      await fake.script([
        { thinking: 'I should list the files.', signature: 'sig_think', tool_calls: [{ id: 'toolu_t', name: 'developer__list_files', arguments: {} }] },
        { text: 'Listed.' },
      ]);
      const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'what is here?');
      const thought = events.filter((e) => e.event === 'message_chunk' && e.json.type === 'thinking').map((e) => e.json.text).join('');
      assert.equal(thought, 'I should list the files.');
      assert.equal(events.at(-1).event, 'message_complete');
      const sent = await fake.requests();
      assert.deepEqual(sent[0].body.thinking, { type: 'enabled', budget_tokens: 4096 });
      assert.ok(sent[0].body.max_tokens > 4096, `max_tokens ${sent[0].body.max_tokens} leaves room for the answer`);
      const back = sent[1].body.messages.find((m) => m.role === 'assistant').content;
      assert.deepEqual(back[0], { type: 'thinking', thinking: 'I should list the files.', signature: 'sig_think' });
      assert.equal(back[1].type, 'tool_use');
    } finally {
      await stopAndCheck(srv);
    }
    const bad = await startServer({ env: { ...env, CLAUDE_THINKING_BUDGET: '100' } });
    try {
      const id = await newSession(bad, bad.home);
      assertError(await post(bad, `/api/sessions/${id}/messages`, { content: 'hi' }), 503, 'provider_not_configured', /CLAUDE_THINKING_BUDGET: 100 is not a number of tokens from 1024/);
    } finally {
      try {
        await stopAndCheck(bad);
      } finally {
        await fake.stop();
      }
    }
  });

  it('Azure OpenAI: the deployment URL with its api-version, and the key in api-key', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const srv = await startServer({
      env: { GOOSE_PROVIDER: 'azure_openai', AZURE_OPENAI_ENDPOINT: fake.url, AZURE_OPENAI_API_KEY: KEY, AZURE_OPENAI_DEPLOYMENT_NAME: 'my-deployment' },
    });
    try {
      const id = await newSession(srv, srv.home);
      await fake.script([{ text: 'from azure' }]);
      const r = await post(srv, `/api/sessions/${id}/messages`, { content: 'hi' });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.content, 'from azure');
      const [sent] = await fake.requests();
      assert.equal(sent.path, '/openai/deployments/my-deployment/chat/completions');
      assert.equal(new URLSearchParams(sent.query).get('api-version'), '2024-10-21');
      assert.equal(sent.headers['api-key'], KEY);
      assert.equal(sent.headers.authorization, undefined);
    } finally {
      try {
        await stopAndCheck(srv);
      } finally {
        await fake.stop();
      }
    }
  });

  it('a provider that stalls past api_timeout ends the reply with an error', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const srv = await startServer({
      env: { GOOSE_PROVIDER: 'openai', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY, GOOSE_API_TIMEOUT: '1', GOOSE_MAX_RETRIES: '0' },
    });
    try {
      const id = await newSession(srv, srv.home);
      await fake.script([{ text: 'never arrives', stall_after: 0, stall_ms: 8000 }]);
      const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'hi');
      assert.equal(events.at(-1).event, 'error');
      assert.equal(events.at(-1).json.code, 'provider_error');
      await assertAlive(srv);
    } finally {
      try {
        await stopAndCheck(srv);
      } finally {
        await fake.stop();
      }
    }
  });
});

describe('watching replies', () => {
  it('several clients see the same reply, and a client that leaves does not stop it', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const srv = await startServer({ env: { GOOSE_PROVIDER: 'openai', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY } });
    try {
      const id = await newSession(srv, srv.home);
      const a = await watch(srv, id);
      const b = await watch(srv, id);
      await fake.script([{ text: 'one two three four', chunks: 4, delay_ms: 20 }]);
      // The sender reads its first chunk, then goes away.
      const ctl = new AbortController();
      const res = await fetch(`${srv.url}/api/sessions/${id}/messages/stream`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content: 'count' }), signal: ctl.signal,
      });
      const reader = res.body.getReader();
      const first = await reader.read();
      assert.ok(!first.done);
      ctl.abort();
      const ea = await a.until('message_complete');
      const eb = await b.until('message_complete');
      a.close();
      b.close();
      assert.deepEqual(ea.map((e) => e.id), eb.map((e) => e.id), 'both watchers saw the same events');
      assert.equal(ea.filter((e) => e.event === 'message_chunk').map((e) => JSON.parse(e.data).text).join(''), 'one two three four');
      const hist = await get(srv, `/api/sessions/${id}/messages`);
      assert.deepEqual(hist.body.map((m) => m.role), ['user', 'assistant']);
      assert.deepEqual(hist.body[1].content, [{ type: 'text', text: 'one two three four' }], 'the whole reply was stored');
    } finally {
      try {
        await stopAndCheck(srv);
      } finally {
        await fake.stop();
      }
    }
  });
});

describe('cancelling before any output', () => {
  it('ends with message_id null and never labels the user message as the assistant', async () => {
    const fake = await startFake({ keys: { openai: KEY } });
    const srv = await startServer({ env: { GOOSE_PROVIDER: 'openai', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY } });
    try {
      const id = await newSession(srv, srv.home);
      await fake.script([{ text: 'never', stall_after: 0, stall_ms: 20000 }]);
      const pending = post(srv, `/api/sessions/${id}/messages`, { content: 'cancel me' });
      // cancel once the reply is running: a 409 no_reply_running means it has not started yet
      for (let i = 0; i < 200; i++) {
        const c = await post(srv, `/api/sessions/${id}/cancel`, undefined);
        if (c.status === 202) break;
        assertError(c, 409, 'no_reply_running');
      }
      const r = await pending;
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.stop_reason, 'cancelled');
      assert.equal(r.body.id, null);
      assert.equal(r.body.content, '');
    } finally {
      try {
        await stopAndCheck(srv);
      } finally {
        await fake.stop();
      }
    }
  });
});

describe('a tool call cut by a provider error while streaming (Anthropic)', () => {
  let fake, srv;
  before(async () => {
    fake = await startFake({ keys: { anthropic: 'sk-ant-cut' } });
    srv = await startServer({
      env: { GOOSE_PROVIDER: 'anthropic', GOOSE_MODEL: 'claude-test', ANTHROPIC_HOST: fake.url, ANTHROPIC_API_KEY: 'sk-ant-cut', GOOSE_MAX_RETRIES: '0' },
    });
  });
  after(async () => {
    try { await stopAndCheck(srv); } finally { await fake.stop(); }
  });

  it('is never announced: every tool_call a client sees gets its tool_result, and none is stored half', async () => {
    const id = await newSession(srv, tempDir('goosed-agent-cut-'));
    // the first tool_use block is complete when the stream fails, during the second
    await fake.script([{
      tool_calls: [
        { id: 'toolu_one', name: 'developer__shell', arguments: { command: 'echo one' }, split: 1 },
        { id: 'toolu_two', name: 'developer__shell', arguments: { command: 'echo two' }, split: 1 },
      ],
      error: { status: 529, in_stream: true, after: 2, type: 'overloaded_error', message: 'Overloaded' },
    }]);
    const events = await sse(srv, `/api/sessions/${id}/messages/stream`, 'run two commands');
    const names = events.map((e) => e.event);
    assert.equal(names.at(-1), 'error', names.join(','));
    const calls = events.filter((e) => e.event === 'tool_call').map((e) => JSON.parse(e.data).id);
    const results = events.filter((e) => e.event === 'tool_result').map((e) => JSON.parse(e.data).id);
    assert.deepEqual(calls.filter((c) => !results.includes(c)), [], `announced and never answered: ${names.join(',')}`);
    const hist = await get(srv, `/api/sessions/${id}/messages`);
    const requests = hist.body.flatMap((m) => m.content.filter((x) => x.type === 'tool_request'));
    assert.deepEqual(requests, []);
  });
});

describe('deleting an idle session', () => {
  it('tells its watchers (error session_gone) and ends their streams', { timeout: 30_000 }, async () => {
    const srv = await startServer({});
    try {
      const id = await newSession(srv, tempDir('goosed-agent-del-'));
      const res = await fetch(`${srv.url}/api/sessions/${id}/events`);
      assert.equal(res.status, 200);
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let text = '';
      // the head (and a first keep-alive or nothing) is there: the watcher is attached
      const del = await request(srv, 'DELETE', `/api/sessions/${id}`);
      assert.equal(del.status, 204, del.text);
      for (;;) {
        const r = await reader.read();
        if (r.done) break; // the stream ends: no watcher is left hanging on a deleted session
        text += dec.decode(r.value);
      }
      const ev = parseSSE(text).filter((e) => e.event === 'error');
      assert.equal(ev.length, 1, text);
      assert.equal(JSON.parse(ev[0].data).code, 'session_gone');
    } finally {
      await stopAndCheck(srv);
    }
  });
});
