// Proves the fake provider speaks each wire format: node --test tests/fakes/
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startFake, parseSSE } from './lib.mjs';

let fake;
// Its refusals are this suite's own: kept out of a run's FAKE_PROVIDER_REFUSALS file.
before(async () => { fake = await startFake({ env: { FAKE_PROVIDER_REFUSALS: '' } }); });
after(async () => { await fake?.stop(); });
beforeEach(async () => { await fake.reset(); });

const ANTHROPIC_HEADERS = { 'anthropic-version': '2023-06-01' };
const GEMINI_STREAM = '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse';
const GEMINI_WHOLE = '/v1beta/models/gemini-2.5-flash:generateContent';

/**
 * POSTs `body` and reads the whole response, tolerating a connection that drops mid-body.
 * Resolves with {status, headers, text, error}; `error` is set when the body did not end cleanly
 * or the `signal` aborted it (what arrived until then is in `text`).
 */
async function post(path, body, { headers = {}, signal } = {}) {
  const res = await fetch(fake.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal,
  });
  let text = '';
  let error = null;
  const dec = new TextDecoder();
  try {
    for await (const chunk of res.body) text += dec.decode(chunk, { stream: true });
  } catch (e) {
    error = e;
  }
  return { status: res.status, headers: res.headers, text, error };
}

const json = (r) => JSON.parse(r.text);
const dataEvents = (r) => parseSSE(r.text).filter((e) => e.data !== null);

// --- reassemblers, written from each provider's documentation, not from the fake's code -------

function reassembleOpenAI(events) {
  const out = { text: '', reasoning: '', tools: [], finish: null, usage: null, done: false, chunks: [] };
  for (const e of events) {
    if (e.data === '[DONE]') { out.done = true; continue; }
    const c = JSON.parse(e.data);
    out.chunks.push(c);
    if (c.usage) out.usage = c.usage;
    for (const ch of c.choices) {
      const d = ch.delta;
      if (d.content) out.text += d.content;
      if (d.reasoning_content) out.reasoning += d.reasoning_content;
      for (const tc of d.tool_calls ?? []) {
        out.tools[tc.index] ??= { id: null, name: null, arguments: '' };
        const t = out.tools[tc.index];
        if (tc.id) t.id = tc.id;
        if (tc.function?.name) t.name = tc.function.name;
        if (tc.function?.arguments) t.arguments += tc.function.arguments;
      }
      if (ch.finish_reason) out.finish = ch.finish_reason;
    }
  }
  return out;
}

function reassembleAnthropic(events) {
  const out = { blocks: [], stop: null, usage: {}, names: [], message: null, stopped: false, error: null };
  for (const e of events) {
    const d = JSON.parse(e.data);
    assert.equal(d.type, e.event, 'SSE event name matches the data type');
    out.names.push(e.event);
    if (d.type === 'message_start') { out.message = d.message; Object.assign(out.usage, d.message.usage); }
    if (d.type === 'content_block_start') out.blocks[d.index] = { ...d.content_block, json: '' };
    if (d.type === 'content_block_delta') {
      const b = out.blocks[d.index];
      if (d.delta.type === 'text_delta') b.text += d.delta.text;
      if (d.delta.type === 'thinking_delta') b.thinking += d.delta.thinking;
      if (d.delta.type === 'signature_delta') b.signature = d.delta.signature;
      if (d.delta.type === 'input_json_delta') b.json += d.delta.partial_json;
    }
    if (d.type === 'content_block_stop') {
      const b = out.blocks[d.index];
      if (b.type === 'tool_use') b.input = JSON.parse(b.json);
      b.stopped = true;
    }
    if (d.type === 'message_delta') { out.stop = d.delta.stop_reason; Object.assign(out.usage, d.usage); }
    if (d.type === 'message_stop') out.stopped = true;
    if (d.type === 'error') out.error = d.error;
  }
  return out;
}

function reassembleGemini(events) {
  const out = { text: '', thought: '', calls: [], finish: null, usage: null, chunks: [] };
  for (const e of events) {
    const c = JSON.parse(e.data);
    out.chunks.push(c);
    if (c.usageMetadata) out.usage = c.usageMetadata;
    const cand = c.candidates[0];
    for (const part of cand.content.parts) {
      if (part.functionCall) out.calls.push(part.functionCall);
      else if (part.thought) out.thought += part.text;
      else if (typeof part.text === 'string') out.text += part.text;
    }
    if (cand.finishReason) out.finish = cand.finishReason;
  }
  return out;
}

const TOOLS = [
  { id: 'call_1', name: 'developer__shell', arguments: { command: 'ls -la "/tmp/a b"', timeout: 30 } },
  { id: 'call_2', name: 'developer__text_editor', arguments: { command: 'view', path: '/etc/hosts', view_range: [1, 5] } },
];

// ---------------------------------------------------------------------------------------------

describe('process and control routes', () => {
  test('runs as a separate process and answers health', async () => {
    assert.notEqual(fake.pid, process.pid);
    const r = await fetch(`${fake.url}/_fake/health`);
    assert.equal(r.status, 200);
  });

  test('startFake rejects, with the output, when the process cannot start', async () => {
    await assert.rejects(startFake({ args: ['--bogus'] }), /exited before listening[\s\S]*unknown argument --bogus/);
  });

  test('model lists answer for the OpenAI, Anthropic, Gemini and Ollama shapes', async () => {
    const get = async (p, headers = {}) => (await fetch(fake.url + p, { headers })).json();
    assert.equal((await get('/v1/models')).object, 'list');
    assert.equal((await get('/v1/models', ANTHROPIC_HEADERS)).data[0].type, 'model');
    assert.match((await get('/v1beta/models')).models[0].name, /^models\//);
    assert.ok(Array.isArray((await get('/api/tags')).models));
  });

  test('an empty queue answers the default short reply', async () => {
    const r = await post('/v1/chat/completions', { model: 'gpt-4o', messages: [] });
    assert.equal(r.status, 200);
    assert.equal(json(r).choices[0].message.content, 'Hello from the fake.');
  });

  test('a scripted default replaces the built-in reply once the queue is empty', async () => {
    await fake.script({ responses: [{ text: 'first' }], default: { text: 'again' } });
    const texts = [];
    for (let i = 0; i < 3; i++) texts.push(json(await post('/v1/chat/completions', { model: 'm', messages: [] })).choices[0].message.content);
    assert.deepEqual(texts, ['first', 'again', 'again']);
  });

  test('bad scripts are refused with the reason', async () => {
    await assert.rejects(fake.script([{ txet: 'typo' }]), /unknown key "txet"/);
    await assert.rejects(fake.script([{ text: 'ab', chunks: ['a', 'c'] }]), /do not join/);
    await assert.rejects(fake.script([{ tool_calls: [{ arguments: {} }] }]), /name/);
  });

  test('the request log records method, path, query, headers and parsed bodies; DELETE clears it', async () => {
    const body = { model: 'gpt-4o', messages: [{ role: 'tool', tool_call_id: 'call_1', content: 'ok' }], tools: [{ type: 'function', function: { name: 'x' } }] };
    await post('/v1/chat/completions?trace=1', body, { headers: { authorization: 'Bearer sk-x' } });
    await post('/v1/messages', { model: 'claude', messages: [] }, { headers: ANTHROPIC_HEADERS });
    const log = await fake.requests();
    assert.equal(log.length, 2);
    assert.equal(log[0].method, 'POST');
    assert.equal(log[0].path, '/v1/chat/completions');
    assert.deepEqual(log[0].query, { trace: '1' });
    assert.equal(log[0].headers.authorization, 'Bearer sk-x');
    assert.equal(log[0].provider, 'openai');
    assert.deepEqual(log[0].body, body);
    assert.equal(log[1].provider, 'anthropic');
    assert.deepEqual((await fake.requests('anthropic')).map((x) => x.path), ['/v1/messages']);
    await fake.clearRequests();
    assert.deepEqual(await fake.requests(), []);
  });

  test('reset clears the queue and the log', async () => {
    await fake.script([{ text: 'never' }]);
    await post('/v1/chat/completions', { model: 'm', messages: [] });
    await fake.script([{ text: 'never' }]);
    await fake.reset();
    assert.deepEqual(await fake.requests(), []);
    assert.equal(json(await post('/v1/chat/completions', { model: 'm' })).choices[0].message.content, 'Hello from the fake.');
  });

  test('provider_delay_ms holds back the status line', async () => {
    await fake.script([{ text: 'late', provider_delay_ms: 150 }]);
    const t0 = performance.now();
    const res = await fetch(`${fake.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', stream: true }) });
    const elapsed = performance.now() - t0;
    await res.text();
    assert.ok(elapsed >= 140, `headers after ${elapsed} ms`);
  });
});

// ---------------------------------------------------------------------------------------------

describe('OpenAI chat completions (and the compatible family)', () => {
  test('streamed text reassembles; chunk shape, finish_reason, [DONE]', async () => {
    await fake.script([{ text: 'The quick brown fox jumps.', chunks: 4 }]);
    const r = await post('/v1/chat/completions', { model: 'gpt-4o-mini', stream: true, messages: [] });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    assert.equal(r.error, null);
    assert.ok(r.text.endsWith('data: [DONE]\n\n'));
    const events = dataEvents(r);
    const o = reassembleOpenAI(events);
    assert.equal(o.text, 'The quick brown fox jumps.');
    assert.equal(o.finish, 'stop');
    assert.equal(o.done, true);
    assert.equal(o.usage, null);
    assert.equal(o.chunks.filter((c) => c.choices[0]?.delta.content).length, 4);
    const first = o.chunks[0];
    assert.equal(first.object, 'chat.completion.chunk');
    assert.equal(first.model, 'gpt-4o-mini');
    assert.match(first.id, /^chatcmpl-/);
    assert.equal(first.choices[0].delta.role, 'assistant');
    assert.ok(o.chunks.every((c) => c.id === first.id && !('usage' in c)));
    assert.deepEqual(o.chunks.at(-1).choices[0].delta, {});
  });

  test('stream_options.include_usage adds a final usage chunk with empty choices; other chunks carry usage null', async () => {
    await fake.script([{ text: 'hi there', usage: { input: 12, output: 3 } }]);
    const r = await post('/v1/chat/completions', { model: 'm', stream: true, stream_options: { include_usage: true } });
    const o = reassembleOpenAI(dataEvents(r));
    const last = o.chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 });
    assert.ok(o.chunks.slice(0, -1).every((c) => c.usage === null));
  });

  test('streamed tool calls: several per turn, id and name on the first chunk, arguments split', async () => {
    await fake.script([{ text: 'Let me look.', tool_calls: TOOLS, split: 4 }]);
    const r = await post('/v1/chat/completions', { model: 'm', stream: true });
    const o = reassembleOpenAI(dataEvents(r));
    assert.equal(o.text, 'Let me look.');
    assert.equal(o.finish, 'tool_calls');
    assert.equal(o.tools.length, 2);
    for (const [i, t] of o.tools.entries()) {
      assert.equal(t.id, TOOLS[i].id);
      assert.equal(t.name, TOOLS[i].name);
      assert.deepEqual(JSON.parse(t.arguments), TOOLS[i].arguments);
    }
    const argChunks = o.chunks.filter((c) => c.choices[0]?.delta.tool_calls?.[0].function.arguments);
    assert.equal(argChunks.length, 8);
    const headers = o.chunks.filter((c) => c.choices[0]?.delta.tool_calls?.[0].id);
    assert.deepEqual(headers.map((c) => c.choices[0].delta.tool_calls[0].type), ['function', 'function']);
    assert.ok(argChunks.every((c) => !('id' in c.choices[0].delta.tool_calls[0])));
  });

  test('tool ids are generated in OpenAI style when the script gives none', async () => {
    await fake.script([{ tool_calls: [{ name: 'developer__shell', arguments: { command: 'ls' } }] }]);
    const o = reassembleOpenAI(dataEvents(await post('/v1/chat/completions', { model: 'm', stream: true })));
    assert.match(o.tools[0].id, /^call_/);
    assert.equal(o.text, '');
  });

  test('finish_reason length', async () => {
    await fake.script([{ text: 'cut sh', finish_reason: 'length' }]);
    assert.equal(reassembleOpenAI(dataEvents(await post('/v1/chat/completions', { model: 'm', stream: true }))).finish, 'length');
  });

  test('thinking streams as reasoning_content', async () => {
    await fake.script([{ thinking: 'step one', text: 'answer' }]);
    const o = reassembleOpenAI(dataEvents(await post('/v1/chat/completions', { model: 'm', stream: true })));
    assert.equal(o.reasoning, 'step one');
    assert.equal(o.text, 'answer');
  });

  test('stream:false answers one chat.completion object', async () => {
    await fake.script([{ text: 'whole', usage: { input: 7, output: 2 } }, { text: 'pre', tool_calls: TOOLS }]);
    const a = json(await post('/v1/chat/completions', { model: 'gpt-4o' }));
    assert.equal(a.object, 'chat.completion');
    assert.deepEqual(a.choices[0].message, { role: 'assistant', content: 'whole', refusal: null });
    assert.equal(a.choices[0].finish_reason, 'stop');
    assert.deepEqual(a.usage, { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 });
    const b = json(await post('/v1/chat/completions', { model: 'gpt-4o' }));
    assert.equal(b.choices[0].finish_reason, 'tool_calls');
    assert.equal(b.choices[0].message.content, 'pre');
    assert.deepEqual(b.choices[0].message.tool_calls.map((t) => [t.id, t.type, t.function.name, JSON.parse(t.function.arguments)]),
      TOOLS.map((t) => [t.id, 'function', t.name, t.arguments]));
  });

  test('any path ending in /chat/completions works (base paths, Azure deployments, Ollama)', async () => {
    for (const p of ['/openai/deployments/my-dep/chat/completions?api-version=2024-10-21', '/api/v1/chat/completions', '/chat/completions']) {
      const r = await post(p, { messages: [], stream: true });
      assert.equal(r.status, 200, p);
      assert.equal(reassembleOpenAI(dataEvents(r)).text, 'Hello from the fake.');
    }
    assert.equal(JSON.parse(dataEvents(await post('/openai/deployments/my-dep/chat/completions', { stream: true }))[0].data).model, 'my-dep');
  });

  test('a configured key is required: 401 in OpenAI shape when missing or wrong; Bearer or Azure api-key pass', async () => {
    await fake.config({ keys: { openai: 'sk-right-key-123456' } });
    await fake.script([{ text: 'ok1' }, { text: 'ok2' }]);
    const none = await post('/v1/chat/completions', { model: 'm' });
    assert.equal(none.status, 401);
    assert.equal(json(none).error.type, 'invalid_request_error');
    const wrong = await post('/v1/chat/completions', { model: 'm' }, { headers: { authorization: 'Bearer sk-wrong-key-0000' } });
    assert.equal(wrong.status, 401);
    assert.equal(json(wrong).error.code, 'invalid_api_key');
    assert.match(json(wrong).error.message, /^Incorrect API key provided/);
    assert.ok(!json(wrong).error.message.includes('sk-wrong-key-0000'), 'the key is masked');
    const ok = await post('/v1/chat/completions', { model: 'm' }, { headers: { authorization: 'Bearer sk-right-key-123456' } });
    assert.equal(json(ok).choices[0].message.content, 'ok1', 'auth failures do not consume the queue');
    const azure = await post('/openai/deployments/d/chat/completions', { model: 'm' }, { headers: { 'api-key': 'sk-right-key-123456' } });
    assert.equal(json(azure).choices[0].message.content, 'ok2');
  });

  test('an invalid JSON request body gets a 400 and is logged raw', async () => {
    const r = await post('/v1/chat/completions', '{"model": ');
    assert.equal(r.status, 400);
    assert.equal(json(r).error.type, 'invalid_request_error');
    const [entry] = await fake.requests();
    assert.equal(entry.body, null);
    assert.equal(entry.raw, '{"model": ');
  });
});

// ---------------------------------------------------------------------------------------------

describe('Anthropic messages', () => {
  test('streamed text with thinking: event order, deltas, signature, usage, stop_reason', async () => {
    await fake.script([{ thinking: 'Let me think about it.', text: 'Here it is, friend.', chunks: 3, usage: { input: 25, output: 9 } }]);
    const r = await post('/v1/messages', { model: 'claude-x', stream: true, max_tokens: 100, messages: [] }, { headers: ANTHROPIC_HEADERS });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    const a = reassembleAnthropic(parseSSE(r.text));
    assert.equal(a.names[0], 'message_start');
    assert.equal(a.names[1], 'content_block_start');
    assert.equal(a.names[2], 'ping');
    assert.deepEqual(a.names.slice(-2), ['message_delta', 'message_stop']);
    assert.equal(a.message.model, 'claude-x');
    assert.match(a.message.id, /^msg_/);
    assert.deepEqual(a.message.content, []);
    assert.equal(a.message.stop_reason, null);
    assert.equal(a.blocks[0].type, 'thinking');
    assert.equal(a.blocks[0].thinking, 'Let me think about it.');
    assert.ok(a.blocks[0].signature.length > 0);
    assert.equal(a.blocks[1].type, 'text');
    assert.equal(a.blocks[1].text, 'Here it is, friend.');
    assert.equal(parseSSE(r.text).filter((e) => e.data.includes('"text_delta"')).length, 3);
    assert.ok(a.blocks.every((b) => b.stopped));
    assert.equal(a.stop, 'end_turn');
    assert.equal(a.usage.input_tokens, 25);
    assert.equal(a.usage.output_tokens, 9);
    assert.equal(a.stopped, true);
  });

  test('streamed tool_use: partial_json split across events reassembles; stop_reason tool_use', async () => {
    await fake.script([{ text: 'Checking.', tool_calls: TOOLS, split: 5 }]);
    const r = await post('/v1/messages', { model: 'c', stream: true }, { headers: ANTHROPIC_HEADERS });
    const a = reassembleAnthropic(parseSSE(r.text));
    assert.equal(a.blocks[0].text, 'Checking.');
    const tools = a.blocks.filter((b) => b.type === 'tool_use');
    assert.deepEqual(tools.map((t) => [t.id, t.name, t.input]), TOOLS.map((t) => [t.id, t.name, t.arguments]));
    const partials = parseSSE(r.text).map((e) => JSON.parse(e.data)).filter((d) => d.delta?.type === 'input_json_delta' && d.delta.partial_json !== '');
    assert.equal(partials.length, 10);
    assert.equal(a.stop, 'tool_use');
  });

  test('finish_reason length maps to max_tokens; default tool ids look like toolu_', async () => {
    await fake.script([{ text: 'trunc', finish_reason: 'length' }, { tool_calls: [{ name: 't', arguments: {} }] }]);
    assert.equal(reassembleAnthropic(parseSSE((await post('/v1/messages', { stream: true }, { headers: ANTHROPIC_HEADERS })).text)).stop, 'max_tokens');
    const a = reassembleAnthropic(parseSSE((await post('/v1/messages', { stream: true }, { headers: ANTHROPIC_HEADERS })).text));
    assert.match(a.blocks[0].id, /^toolu_/);
    assert.deepEqual(a.blocks[0].input, {});
  });

  test('non-streaming answers one message object', async () => {
    await fake.script([{ thinking: 'hmm', text: 'pre', tool_calls: TOOLS.slice(0, 1), usage: { input: 3, output: 4 } }]);
    const m = json(await post('/v1/messages', { model: 'claude-x', max_tokens: 10 }, { headers: ANTHROPIC_HEADERS }));
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.model, 'claude-x');
    assert.equal(m.stop_reason, 'tool_use');
    assert.equal(m.stop_sequence, null);
    assert.deepEqual(m.content.map((b) => b.type), ['thinking', 'text', 'tool_use']);
    assert.deepEqual(m.content[2].input, TOOLS[0].arguments);
    assert.equal(m.usage.input_tokens, 3);
    assert.equal(m.usage.output_tokens, 4);
  });

  test('x-api-key and anthropic-version are checked', async () => {
    await fake.config({ keys: { anthropic: 'sk-ant-good' } });
    const noVersion = await post('/v1/messages', { model: 'c' }, { headers: { 'x-api-key': 'sk-ant-good' } });
    assert.equal(noVersion.status, 400);
    assert.equal(json(noVersion).error.type, 'invalid_request_error');
    const none = await post('/v1/messages', { model: 'c' }, { headers: ANTHROPIC_HEADERS });
    assert.equal(none.status, 401);
    assert.deepEqual(Object.keys(json(none)).sort(), ['error', 'request_id', 'type']);
    assert.equal(json(none).type, 'error');
    assert.equal(json(none).error.type, 'authentication_error');
    const bad = await post('/v1/messages', { model: 'c' }, { headers: { ...ANTHROPIC_HEADERS, 'x-api-key': 'nope' } });
    assert.equal(json(bad).error.message, 'invalid x-api-key');
    const ok = await post('/v1/messages', { model: 'c' }, { headers: { ...ANTHROPIC_HEADERS, 'x-api-key': 'sk-ant-good' } });
    assert.equal(ok.status, 200);
  });

  test('an in-stream error event after some text', async () => {
    await fake.script([{ text: 'one two three', error: { status: 529, message: 'Overloaded', in_stream: true, after: 2 } }]);
    const r = await post('/v1/messages', { stream: true }, { headers: ANTHROPIC_HEADERS });
    assert.equal(r.status, 200);
    assert.equal(r.error, null);
    const events = parseSSE(r.text);
    const last = events.at(-1);
    assert.equal(last.event, 'error');
    assert.deepEqual(JSON.parse(last.data), { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    assert.equal(reassembleAnthropic(events).blocks[0].text, 'one two');
    assert.ok(!events.some((e) => e.event === 'message_stop'));
  });
});

// ---------------------------------------------------------------------------------------------

describe('Google Gemini', () => {
  test('streamGenerateContent?alt=sse: text parts reassemble; CRLF framing; finishReason; usageMetadata', async () => {
    await fake.script([{ text: 'Gemini says hello to you.', chunks: 3, usage: { input: 8, output: 6 } }]);
    const r = await post(GEMINI_STREAM, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    assert.ok(r.text.startsWith('data: {'));
    assert.ok(r.text.endsWith('}\r\n\r\n'));
    const events = dataEvents(r);
    assert.equal(events.length, 3);
    const g = reassembleGemini(events);
    assert.equal(g.text, 'Gemini says hello to you.');
    assert.equal(g.finish, 'STOP');
    assert.deepEqual(g.usage, { promptTokenCount: 8, candidatesTokenCount: 6, totalTokenCount: 14 });
    assert.ok(g.chunks.every((c) => c.candidates[0].content.role === 'model' && c.modelVersion === 'gemini-2.5-flash'));
    assert.ok(g.chunks.slice(0, -1).every((c) => !('finishReason' in c.candidates[0])));
  });

  test('functionCall parts with args objects; several calls in one turn; thought parts', async () => {
    await fake.script([{ thinking: 'plan', text: 'Running.', tool_calls: TOOLS }]);
    const g = reassembleGemini(dataEvents(await post(GEMINI_STREAM, { contents: [] })));
    assert.equal(g.thought, 'plan');
    assert.equal(g.text, 'Running.');
    assert.deepEqual(g.calls.map((c) => [c.name, c.args]), TOOLS.map((t) => [t.name, t.arguments]));
    assert.equal(g.finish, 'STOP');
    assert.ok(g.chunks.at(-1).candidates[0].content.parts[0].thoughtSignature);
  });

  test('MAX_TOKENS; the key in x-goog-api-key or ?key=', async () => {
    await fake.config({ keys: { google: 'AIza-good' } });
    await fake.script([{ text: 'a b', finish_reason: 'length' }, { text: 'c' }]);
    const none = await post(GEMINI_STREAM, { contents: [] });
    assert.equal(none.status, 403);
    assert.equal(json(none).error.status, 'PERMISSION_DENIED');
    const bad = await post(`${GEMINI_STREAM}&key=wrong`, { contents: [] });
    assert.equal(bad.status, 400);
    assert.equal(json(bad).error.status, 'INVALID_ARGUMENT');
    assert.equal(json(bad).error.details[0].reason, 'API_KEY_INVALID');
    const viaHeader = await post(GEMINI_STREAM, { contents: [] }, { headers: { 'x-goog-api-key': 'AIza-good' } });
    assert.equal(reassembleGemini(dataEvents(viaHeader)).finish, 'MAX_TOKENS');
    const viaQuery = await post(`${GEMINI_STREAM}&key=AIza-good`, { contents: [] });
    assert.equal(reassembleGemini(dataEvents(viaQuery)).text, 'c');
  });

  test('generateContent answers one GenerateContentResponse', async () => {
    await fake.script([{ text: 'whole', tool_calls: TOOLS.slice(1), usage: { input: 2, output: 3 } }]);
    const r = json(await post(GEMINI_WHOLE, { contents: [] }));
    assert.deepEqual(r.candidates[0].content, { parts: [{ text: 'whole' }, { functionCall: { name: TOOLS[1].name, args: TOOLS[1].arguments } }], role: 'model' });
    assert.equal(r.candidates[0].finishReason, 'STOP');
    assert.deepEqual(r.usageMetadata, { promptTokenCount: 2, candidatesTokenCount: 3, totalTokenCount: 5 });
  });

  test('streamGenerateContent without alt=sse streams one JSON array', async () => {
    await fake.script([{ text: 'x y z' }]);
    const r = await post('/v1beta/models/gemini-2.5-pro:streamGenerateContent', { contents: [] });
    const arr = json(r);
    assert.ok(Array.isArray(arr));
    assert.equal(arr.map((c) => c.candidates[0].content.parts[0].text).join(''), 'x y z');
  });
});

// ---------------------------------------------------------------------------------------------

describe('conversation rules: every tool call answered, as the real APIs demand', () => {
  const OA = '/v1/chat/completions';
  const call = (id, name = 'developer__shell') => ({ id, type: 'function', function: { name, arguments: '{}' } });
  const asst = (...ids) => ({ role: 'assistant', content: null, tool_calls: ids.map((id) => call(id)) });
  const tool = (id) => ({ role: 'tool', tool_call_id: id, content: 'ok' });
  const user = (text) => ({ role: 'user', content: text });

  /** Posts, expects a 400 in the provider's shape, and that no scripted response was taken. */
  async function refused(path, body, headers = {}) {
    await fake.script([{ text: 'kept' }]);
    const before = (await fake.stats()).refused;
    const r = await post(path, body, { headers });
    assert.equal(r.status, 400, r.text);
    assert.equal((await fake.stats()).refused, before + 1);
    assert.equal((await fake.stats()).queued, 1, 'a refused request takes no scripted response');
    assert.match(fake.stderr(), /fake-provider: refused/);
    return json(r);
  }
  async function accepted(path, body, headers = {}) {
    await fake.script([{ text: 'fine' }]);
    const r = await post(path, body, { headers });
    assert.equal(r.status, 200, r.text);
    return r;
  }

  test('openai: each tool_call_id answered by tool messages before any other role', async () => {
    await accepted(OA, { model: 'm', messages: [user('hi'), asst('a', 'b'), tool('b'), tool('a'), user('next')] });
    await accepted(OA, { model: 'm', messages: [user('hi'), asst('a'), tool('a')] });
    const e = (await refused(OA, { model: 'm', messages: [user('hi'), asst('a', 'b'), tool('a'), user('next')] })).error;
    assert.equal(e.message, "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: b");
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(e.param, 'messages.[3].role');
    // a user message (the images of a turn) between the tool messages ends the answers
    const e2 = (await refused(OA, { model: 'm', messages: [asst('a', 'b'), tool('a'), user('img'), tool('b')] })).error;
    assert.match(e2.message, /did not have response messages: b$/);
    // the conversation ends after the calls
    const e3 = (await refused(OA, { model: 'm', stream: true, messages: [user('hi'), asst('x', 'y')] })).error;
    assert.match(e3.message, /did not have response messages: x, y$/);
  });

  test('openai: a tool message must answer a preceding tool call', async () => {
    const msg = "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.";
    let e = (await refused(OA, { model: 'm', messages: [user('hi'), tool('a')] })).error;
    assert.equal(e.message, msg);
    assert.equal(e.param, 'messages.[1].role');
    e = (await refused(OA, { model: 'm', messages: [asst('a'), tool('a'), tool('a')] })).error;
    assert.equal(e.message, msg, 'answered twice');
    e = (await refused(OA, { model: 'm', messages: [asst('a'), tool('zzz')] })).error;
    assert.equal(e.message, msg, 'an id no call had');
  });

  test('openai: content null or left out only beside tool_calls, never an empty array', async () => {
    await accepted(OA, { model: 'm', messages: [user('hi'), { role: 'assistant', content: '' }, user('again')] });
    await accepted(OA, { model: 'm', messages: [user('hi'), asst('a'), tool('a')] });
    let e = (await refused(OA, { model: 'm', messages: [user('hi'), { role: 'assistant', content: null }, user('again')] })).error;
    assert.equal(e.message, "Invalid value for 'content': expected a string, got null.");
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(e.param, 'messages.[1].content');
    assert.equal(e.code, null);
    // an empty tool_calls list is no tool call
    e = (await refused(OA, { model: 'm', messages: [user('hi'), { role: 'assistant', content: null, tool_calls: [] }] })).error;
    assert.equal(e.param, 'messages.[1].content');
    e = (await refused(OA, { model: 'm', messages: [user('hi'), { role: 'assistant' }] })).error;
    assert.equal(e.message, "Missing required parameter: 'messages.[1].content'.");
    assert.equal(e.code, 'missing_required_parameter');
    e = (await refused(OA, { model: 'm', messages: [{ role: 'user', content: [] }] })).error;
    assert.equal(e.code, 'empty_array');
    assert.equal(e.param, 'messages.[0].content');
  });

  const AN = '/v1/messages';
  const use = (id) => ({ type: 'tool_use', id, name: 'developer__shell', input: {} });
  const result = (id, content) => ({ type: 'tool_result', tool_use_id: id, ...(content ? { content } : {}) });
  const image = (source) => ({ type: 'image', source });
  const png = { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' };

  test('anthropic: every tool_use has its tool_result in the very next message', async () => {
    const h = ANTHROPIC_HEADERS;
    await accepted(AN, { model: 'm', max_tokens: 10, messages: [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: [{ type: 'text', text: 'ok' }, use('t1'), use('t2')] },
      { role: 'user', content: [result('t2'), result('t1', [{ type: 'text', text: 'x' }, image(png)]), { type: 'text', text: 'more' }] },
    ] }, h);
    const b = await refused(AN, { model: 'm', max_tokens: 10, messages: [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: [use('t1'), use('t2')] },
      { role: 'user', content: [result('t1')] },
    ] }, h);
    assert.equal(b.type, 'error');
    assert.equal(b.error.type, 'invalid_request_error');
    assert.equal(b.error.message, 'messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: t2. Each `tool_use` block must have a corresponding `tool_result` block in the next message.');
    // answered one message too late
    const b2 = await refused(AN, { model: 'm', max_tokens: 10, messages: [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: [use('t1')] },
      { role: 'user', content: 'wait' },
      { role: 'assistant', content: 'sure' },
      { role: 'user', content: [result('t1')] },
    ] }, h);
    assert.match(b2.error.message, /^messages\.1: `tool_use` ids were found without `tool_result` blocks immediately after: t1\./);
  });

  test('anthropic: a tool_result needs its tool_use in the previous message', async () => {
    const b = await refused(AN, { model: 'm', max_tokens: 10, messages: [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: [use('t1')] },
      { role: 'user', content: [result('t1'), result('t9')] },
    ] }, ANTHROPIC_HEADERS);
    assert.equal(b.error.message, 'messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: t9. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.');
  });

  test('anthropic: image blocks need a base64 source with a known media_type and data', async () => {
    const conv = (img) => ({ model: 'm', max_tokens: 10, messages: [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: [use('t1')] },
      { role: 'user', content: [result('t1', [image(img)])] },
    ] });
    await accepted(AN, conv(png), ANTHROPIC_HEADERS);
    let b = await refused(AN, conv({ ...png, media_type: 'image/svg+xml' }), ANTHROPIC_HEADERS);
    assert.match(b.error.message, /^messages\.2\.content\.0\.tool_result\.content\.0\.image\.source\.base64\.media_type: Input should be/);
    b = await refused(AN, conv({ type: 'base64', media_type: 'image/png' }), ANTHROPIC_HEADERS);
    assert.match(b.error.message, /base64\.data: Field required$/);
    b = await refused(AN, conv({ type: 'file', file_id: 'f' }), ANTHROPIC_HEADERS);
    assert.match(b.error.message, /Input tag 'file' found/);
    b = await refused(AN, { model: 'm', max_tokens: 10, messages: [{ role: 'user', content: [image({ type: 'base64', data: 'x' })] }] }, ANTHROPIC_HEADERS);
    assert.match(b.error.message, /^messages\.0\.content\.0\.image\.source\.base64\.media_type/);
  });

  test('anthropic: every message has content but a last assistant one; no blank text block', async () => {
    const h = ANTHROPIC_HEADERS;
    const conv = (...messages) => ({ model: 'm', max_tokens: 10, messages });
    await accepted(AN, conv({ role: 'user', content: 'hi' }, { role: 'assistant', content: [] }), h);
    await accepted(AN, conv({ role: 'user', content: 'hi' }, { role: 'assistant', content: '' }), h);
    const msg = 'messages.1: all messages must have non-empty content except for the optional final assistant message';
    let b = await refused(AN, conv({ role: 'user', content: 'hi' }, { role: 'assistant', content: [] }, { role: 'user', content: 'again' }), h);
    assert.equal(b.type, 'error');
    assert.equal(b.error.type, 'invalid_request_error');
    assert.equal(b.error.message, msg);
    b = await refused(AN, conv({ role: 'user', content: 'hi' }, { role: 'user', content: '' }), h);
    assert.equal(b.error.message, msg, 'a last user message is no prefill');
    b = await refused(AN, conv({ role: 'user', content: [{ type: 'text', text: '' }] }), h);
    assert.equal(b.error.message, 'messages: text content blocks must be non-empty');
    b = await refused(AN, conv({ role: 'user', content: [{ type: 'text', text: ' \n' }] }), h);
    assert.equal(b.error.message, 'messages: text content blocks must contain non-whitespace text');
  });

  test('gemini: every content has at least one part', async () => {
    const b = await refused(GEMINI_STREAM, { contents: [
      { role: 'user', parts: [{ text: 'hi' }] }, { role: 'model', parts: [] }, { role: 'user', parts: [{ text: 'again' }] },
    ] });
    assert.equal(b.error.code, 400);
    assert.equal(b.error.status, 'INVALID_ARGUMENT');
    assert.equal(b.error.message, '* GenerateContentRequest.contents[1].parts: contents.parts must not be empty.\n');
    const b2 = await refused(GEMINI_WHOLE, { contents: [{ role: 'user' }] });
    assert.match(b2.error.message, /contents\[0\]\.parts: contents\.parts must not be empty/);
  });

  const fcall = (name) => ({ functionCall: { name, args: {} } });
  const fresp = (name) => ({ functionResponse: { name, response: { content: 'ok' } } });

  test('gemini: as many functionResponse parts in the next user turn as functionCall parts', async () => {
    await accepted(GEMINI_STREAM, { contents: [
      { role: 'user', parts: [{ text: 'hi' }] },
      { role: 'model', parts: [{ text: 'ok' }, fcall('a'), fcall('b')] },
      { role: 'user', parts: [fresp('a'), fresp('b'), { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } }, { text: 'more' }] },
    ] });
    const msg = 'Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.';
    for (const next of [[fresp('a')], [{ text: 'no answers' }], null]) {
      const contents = [{ role: 'user', parts: [{ text: 'hi' }] }, { role: 'model', parts: [fcall('a'), fcall('b')] }];
      if (next) contents.push({ role: 'user', parts: next });
      const b = await refused(GEMINI_STREAM, { contents });
      assert.equal(b.error.code, 400);
      assert.equal(b.error.status, 'INVALID_ARGUMENT');
      assert.equal(b.error.message, msg);
    }
    const b = await refused(GEMINI_WHOLE, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }, { role: 'model', parts: [{ text: 'x' }] }, { role: 'user', parts: [fresp('a')] }] });
    assert.equal(b.error.message, 'Please ensure that function response turn comes immediately after a function call turn.');
  });

  test('check_conversation: false lets anything through', async () => {
    await fake.config({ check_conversation: false });
    await accepted(OA, { model: 'm', messages: [user('hi'), tool('nobody')] });
    await fake.config({ check_conversation: true });
    await refused(OA, { model: 'm', messages: [user('hi'), tool('nobody')] });
  });
});

// ---------------------------------------------------------------------------------------------

describe('errors in each provider shape, with Retry-After', () => {
  const cases = [
    ['openai', '/v1/chat/completions', {}, (b) => { assert.equal(typeof b.error.message, 'string'); assert.ok('type' in b.error && 'param' in b.error && 'code' in b.error); }],
    ['anthropic', '/v1/messages', ANTHROPIC_HEADERS, (b) => { assert.equal(b.type, 'error'); assert.equal(typeof b.error.type, 'string'); }],
    ['google', GEMINI_STREAM, {}, (b) => { assert.equal(typeof b.error.code, 'number'); assert.equal(typeof b.error.status, 'string'); }],
  ];
  const expectedType = {
    openai: { 401: 'invalid_request_error', 429: 'requests', 500: 'server_error', 503: 'server_error' },
    anthropic: { 401: 'authentication_error', 429: 'rate_limit_error', 500: 'api_error', 503: 'api_error' },
    google: { 401: 'UNAUTHENTICATED', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE' },
  };
  for (const [provider, path, headers, shape] of cases) {
    test(`${provider}: 401, 429 (Retry-After), 500, 503 for streamed requests`, async () => {
      await fake.script([
        { error: { status: 401, message: 'bad key' } },
        { error: { status: 429, message: 'rate limited', retry_after: 2 } },
        { error: { status: 500 } },
        { error: { status: 503, message: 'try later', retry_after: 1 } },
      ]);
      for (const status of [401, 429, 500, 503]) {
        const r = await post(path, { model: 'm', stream: true, contents: [] }, { headers });
        assert.equal(r.status, status);
        assert.match(r.headers.get('content-type'), /^application\/json/);
        const b = json(r);
        shape(b);
        const type = provider === 'openai' ? b.error.type : provider === 'anthropic' ? b.error.type : b.error.status;
        assert.equal(type, expectedType[provider][status]);
        if (status === 429) {
          assert.equal(r.headers.get('retry-after'), '2');
          assert.equal(b.error.message, 'rate limited');
          if (provider === 'google') assert.equal(b.error.details.find((d) => d['@type'].endsWith('RetryInfo')).retryDelay, '2s');
        }
        if (status === 500) assert.equal(r.headers.get('retry-after'), null);
        if (status === 503) assert.equal(r.headers.get('retry-after'), '1');
      }
    });
  }

  test('openai and gemini in-stream errors', async () => {
    await fake.script([
      { text: 'a b c', error: { status: 500, message: 'boom', in_stream: true, after: 1 } },
      { text: 'a b c', error: { status: 503, message: 'busy', in_stream: true, after: 1 } },
    ]);
    const o = await post('/v1/chat/completions', { stream: true });
    const oe = dataEvents(o);
    assert.deepEqual(JSON.parse(oe.at(-1).data), { error: { message: 'boom', type: 'server_error', param: null, code: null } });
    assert.ok(!o.text.includes('[DONE]'));
    const g = await post(GEMINI_STREAM, { contents: [] });
    const ge = dataEvents(g);
    assert.deepEqual(JSON.parse(ge.at(-1).data), { error: { code: 503, message: 'busy', status: 'UNAVAILABLE' } });
    assert.equal(JSON.parse(ge[0].data).candidates[0].content.parts[0].text, 'a');
  });
});

// ---------------------------------------------------------------------------------------------

describe('broken streams', () => {
  const providers = [
    ['openai', '/v1/chat/completions', {}, (evs) => evs.filter((e) => e.data !== '[DONE]' && JSON.parse(e.data).choices[0]?.delta.content).length],
    ['anthropic', '/v1/messages', ANTHROPIC_HEADERS, (evs) => evs.filter((e) => e.event === 'content_block_delta').length],
    ['google', GEMINI_STREAM, {}, (evs) => evs.length],
  ];

  for (const [provider, path, headers, countDeltas] of providers) {
    test(`${provider}: truncate_after closes the socket mid-stream, no terminator`, async () => {
      await fake.script([{ text: 'one two three four five', truncate_after: 2 }]);
      const r = await post(path, { stream: true, contents: [] }, { headers });
      assert.equal(r.status, 200);
      assert.ok(r.error, 'the body did not end cleanly');
      const evs = parseSSE(r.text).filter((e) => !e.incomplete && e.data !== null);
      assert.equal(countDeltas(evs), 2);
      assert.ok(!r.text.includes('[DONE]') && !r.text.includes('message_stop') && !r.text.includes('finishReason'));
    });

    test(`${provider}: garbage_after sends one invalid JSON data line, then the stream goes on`, async () => {
      await fake.script([{ text: 'one two three', garbage_after: 1 }]);
      const r = await post(path, { stream: true, contents: [] }, { headers });
      assert.equal(r.error, null);
      const bad = dataEvents(r).filter((e) => { try { JSON.parse(e.data); return false; } catch { return e.data !== '[DONE]'; } });
      assert.equal(bad.length, 1);
      assert.ok(r.text.indexOf(bad[0].data) > r.text.indexOf('one'));
      assert.ok(r.text.indexOf(bad[0].data) < r.text.indexOf(' two'));
    });

    test(`${provider}: stall sends headers, then nothing until the deadline`, async () => {
      await fake.script([{ text: 'never arrives', stall_ms: 3000, stall_after: 0 }]);
      const ac = new AbortController();
      const res = await fetch(fake.url + path, {
        method: 'POST', headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ stream: true, contents: [] }), signal: ac.signal,
      });
      assert.equal(res.status, 200, 'headers arrived before the stall');
      const timer = setTimeout(() => ac.abort(), 300);
      let got = '';
      await assert.rejects(async () => { for await (const c of res.body) got += Buffer.from(c).toString(); }, /abort/i);
      clearTimeout(timer);
      assert.equal(got, '');
    });
  }

  test('stall_after N: the first N deltas arrive, then silence', async () => {
    await fake.script([{ text: 'first second third', stall_ms: 3000, stall_after: 1 }]);
    const ac = new AbortController();
    const res = await fetch(`${fake.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ stream: true }), signal: ac.signal });
    let got = '';
    const timer = setTimeout(() => ac.abort(), 300);
    await assert.rejects(async () => { for await (const c of res.body) got += Buffer.from(c).toString(); }, /abort/i);
    clearTimeout(timer);
    assert.equal(reassembleOpenAI(parseSSE(got)).text, 'first');
  });

  test('a stall ends and the stream resumes', async () => {
    await fake.script([{ text: 'before after', stall_ms: 120, stall_after: 1 }]);
    const t0 = performance.now();
    const r = await post(GEMINI_STREAM, { contents: [] });
    assert.ok(performance.now() - t0 >= 110);
    assert.equal(reassembleGemini(dataEvents(r)).text, 'before after');
  });

  test('"after N" past the end acts after the last delta', async () => {
    await fake.script([
      { text: 'a b', truncate_after: 99 },
      { text: 'a b', error: { status: 500, message: 'late', in_stream: true, after: 99 } },
    ]);
    const t = await post('/v1/messages', { stream: true }, { headers: ANTHROPIC_HEADERS });
    assert.ok(t.error);
    assert.equal(reassembleAnthropic(parseSSE(t.text).filter((e) => !e.incomplete)).blocks[0].text, 'a b');
    assert.ok(!t.text.includes('message_delta'));
    const e = await post('/v1/chat/completions', { stream: true });
    const o = reassembleOpenAI(dataEvents(e).slice(0, -1));
    assert.equal(o.text, 'a b');
    assert.equal(o.finish, null);
    assert.equal(JSON.parse(dataEvents(e).at(-1).data).error.message, 'late');
  });

  test('non-streaming truncation and garbage', async () => {
    await fake.script([{ text: 'x', truncate_after: 0 }, { text: 'y', garbage_after: 0 }]);
    const t = await post('/v1/chat/completions', { model: 'm' });
    assert.ok(t.error);
    const g = await post('/v1/chat/completions', { model: 'm' });
    assert.equal(g.status, 200);
    assert.throws(() => JSON.parse(g.text));
  });
});

// ---------------------------------------------------------------------------------------------

describe('benchmark mode', () => {
  test('tokens/interval_ms: N one-word deltas at a fixed interval', async () => {
    await fake.script([{ tokens: 20, interval_ms: 10 }]);
    const t0 = performance.now();
    const r = await post('/v1/chat/completions', { stream: true });
    const elapsed = performance.now() - t0;
    const o = reassembleOpenAI(dataEvents(r));
    assert.equal(o.chunks.filter((c) => c.choices[0]?.delta.content).length, 20);
    assert.equal(o.text, Array.from({ length: 20 }, (_, i) => `w${i}`).join(' '));
    assert.ok(elapsed >= 185, `19 intervals of 10 ms took ${elapsed} ms`); // it paces; how well is make bench's
  });

  test('500 concurrent streams of 50 tokens 20 ms apart all run at once and complete', async () => {
    await fake.script({ responses: [], default: { tokens: 50, interval_ms: 20 } });
    await fake.config({ log: false });
    const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
    const { port } = new URL(fake.url);
    const one = () => new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent }, (res) => {
        let n = 0;
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { buf += d; });
        res.on('end', () => {
          n = (buf.match(/"content":"/g) ?? []).length - 1; // minus the role chunk's empty content
          resolve({ n, done: buf.endsWith('data: [DONE]\n\n') });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end('{"stream":true}');
    });
    const results = await Promise.all(Array.from({ length: 500 }, one));
    agent.destroy();
    assert.ok(results.every((x) => x.n === 50 && x.done));
    // They ran at the same time, each paced; how close to the ideal time is measured by make
    // bench (stats.late_mean_ms there), not asserted here: a loaded machine is slower, not wrong.
    const stats = await fake.stats();
    assert.ok(stats.peak >= 200, `peak concurrency ${stats.peak}`);
    assert.equal(stats.paced_deltas, 500 * 49);
    assert.equal(typeof stats.late_mean_ms, 'number');
  });

  test('full speed: 100,000 tokens with interval 0', async () => {
    await fake.script([{ tokens: 100000 }]);
    const r = await post('/v1/chat/completions', { stream: true });
    assert.equal(r.error, null);
    assert.ok(r.text.endsWith('data: [DONE]\n\n'));
    assert.equal((r.text.match(/"content":"/g) ?? []).length - 1, 100000);
  });
});
