#!/usr/bin/env node
// A fake LLM provider for goosed's tests: one HTTP server (node:http only) that speaks the
// OpenAI Chat Completions, Anthropic Messages and Google Gemini wire formats, streamed and not,
// and answers each provider request with the next scripted response.
//
//   node tests/fakes/fake-provider.mjs [--port 0] [--host 127.0.0.1]
//        [--openai-key K] [--anthropic-key K] [--google-key K] [--no-log] [--verbose]
//
// Prints exactly one line on stdout when ready: `listening on http://HOST:PORT`.
// See README.md in this directory for the script format and the control routes (/_fake/...).
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';

// ---------------------------------------------------------------------------------------------
// Command line and state
// ---------------------------------------------------------------------------------------------

function parseArgs(argv) {
  const o = { port: 0, host: '127.0.0.1', keys: {}, log: true, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) die(`missing value for ${a}`);
      return argv[++i];
    };
    if (a === '--port') o.port = Number(val());
    else if (a === '--host') o.host = val();
    else if (a === '--openai-key') o.keys.openai = val();
    else if (a === '--anthropic-key') o.keys.anthropic = val();
    else if (a === '--google-key') o.keys.google = val();
    else if (a === '--no-log') o.log = false;
    else if (a === '--verbose') o.verbose = true;
    else if (a === '--help' || a === '-h') {
      process.stderr.write('usage: fake-provider.mjs [--port N] [--host H] [--openai-key K] '
        + '[--anthropic-key K] [--google-key K] [--no-log] [--verbose]\n');
      process.exit(0);
    } else die(`unknown argument ${a}`);
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) die('bad --port');
  return o;
}

function die(msg) {
  process.stderr.write(`fake-provider: ${msg}\n`);
  process.exit(2);
}

const ARGS = parseArgs(process.argv.slice(2));

function initialConfig() {
  return {
    keys: { openai: ARGS.keys.openai ?? null, anthropic: ARGS.keys.anthropic ?? null, google: ARGS.keys.google ?? null },
    log: ARGS.log,
    require_anthropic_version: true,
    // Refuse, as the real APIs do, a conversation whose tool calls are not all answered
    // (see checkConversation).
    check_conversation: true,
    // The model's context window in tokens (0: none): a longer request is refused as the real
    // APIs refuse it (tokens counted here as the request body's bytes / 4).
    context_window: 0,
  };
}

const state = {
  queue: [],
  defaultResponse: null,
  requests: [],
  config: initialConfig(),
  seq: 0,
  stats: freshStats(),
};

function freshStats() {
  // late_*: how far after its due time each paced delta (delay_ms/interval_ms) was written, i.e.
  // the fake's own scheduling error, so a benchmark can tell the fake's delay from goosed's.
  return { active: 0, peak: 0, served: 0, refused: 0, paced_deltas: 0, late_max_ms: 0, late_sum_ms: 0 };
}

const DEFAULT_TEXT = 'Hello from the fake.';

function verbose(msg) {
  if (ARGS.verbose) process.stderr.write(`fake-provider: ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

const B62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function rid(n = 24) {
  const bytes = randomBytes(n);
  let s = '';
  for (let i = 0; i < n; i++) s += B62[bytes[i] % 62];
  return s;
}

/** Splits text into word pieces, each carrying its leading whitespace; joins back to `text`. */
function wordPieces(text) {
  if (text === '') return [];
  const m = text.match(/\s*\S+|\s+$/g);
  return m ?? [text];
}

/** Splits text into `n` pieces of nearly equal length (by code point); joins back to `text`. */
function nPieces(text, n) {
  const cps = Array.from(text);
  if (cps.length === 0) return [];
  n = Math.max(1, Math.min(n, cps.length));
  const out = [];
  const base = Math.floor(cps.length / n);
  let extra = cps.length % n;
  let at = 0;
  for (let i = 0; i < n; i++) {
    const len = base + (extra > 0 ? 1 : 0);
    if (extra > 0) extra--;
    out.push(cps.slice(at, at + len).join(''));
    at += len;
  }
  return out;
}

function maskKey(k) {
  const s = String(k);
  if (s.length <= 8) return '*'.repeat(s.length);
  return `${s.slice(0, 3)}${'*'.repeat(Math.min(s.length - 7, 20))}${s.slice(-4)}`;
}

// ---------------------------------------------------------------------------------------------
// Script validation and normalisation into a "plan"
// ---------------------------------------------------------------------------------------------

const RESPONSE_KEYS = new Set([
  'text', 'chunks', 'delay_ms', 'interval_ms', 'usage', 'thinking', 'thinking_chunks', 'signature',
  'tool_calls', 'split', 'error', 'truncate_after', 'garbage_after', 'stall_ms', 'stall_after',
  'tokens', 'provider_delay_ms', 'finish_reason', 'model', 'headers', 'id', 'eol', 'comments_ms',
  'body',
]);
const TOOL_KEYS = new Set(['id', 'name', 'arguments', 'split']);
const ERROR_KEYS = new Set(['status', 'message', 'retry_after', 'type', 'code', 'in_stream', 'after']);

function isObj(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }
function nonNegInt(v) { return Number.isInteger(v) && v >= 0; }

/** Returns an error string, or null when `r` is a valid scripted response. */
function validateResponse(r, where) {
  if (!isObj(r)) return `${where}: a response must be an object`;
  for (const k of Object.keys(r)) if (!RESPONSE_KEYS.has(k)) return `${where}: unknown key "${k}"`;
  if (r.text !== undefined && typeof r.text !== 'string') return `${where}.text: must be a string`;
  if (r.chunks !== undefined) {
    if (Array.isArray(r.chunks)) {
      if (!r.chunks.every((c) => typeof c === 'string')) return `${where}.chunks: array items must be strings`;
      if (r.text !== undefined && r.chunks.join('') !== r.text) return `${where}.chunks: pieces do not join to text`;
    } else if (!(Number.isInteger(r.chunks) && r.chunks >= 1)) return `${where}.chunks: a positive integer or an array of strings`;
  }
  if (r.thinking !== undefined && typeof r.thinking !== 'string') return `${where}.thinking: must be a string`;
  if (r.thinking_chunks !== undefined && !(Number.isInteger(r.thinking_chunks) && r.thinking_chunks >= 1)) return `${where}.thinking_chunks: a positive integer`;
  if (r.signature !== undefined && typeof r.signature !== 'string') return `${where}.signature: must be a string`;
  for (const k of ['delay_ms', 'interval_ms', 'truncate_after', 'garbage_after', 'stall_ms', 'stall_after', 'tokens', 'provider_delay_ms', 'comments_ms']) {
    if (r[k] !== undefined && !nonNegInt(r[k])) return `${where}.${k}: a non-negative integer`;
  }
  if (r.split !== undefined && !(Number.isInteger(r.split) && r.split >= 1)) return `${where}.split: a positive integer`;
  if (r.tokens !== undefined && (r.text !== undefined || r.chunks !== undefined)) return `${where}: tokens excludes text/chunks`;
  if (r.usage !== undefined) {
    if (!isObj(r.usage)) return `${where}.usage: an object {input, output}`;
    for (const k of Object.keys(r.usage)) {
      if (k !== 'input' && k !== 'output') return `${where}.usage: unknown key "${k}"`;
      if (!nonNegInt(r.usage[k])) return `${where}.usage.${k}: a non-negative integer`;
    }
  }
  if (r.tool_calls !== undefined) {
    if (!Array.isArray(r.tool_calls)) return `${where}.tool_calls: must be an array`;
    for (const [i, tc] of r.tool_calls.entries()) {
      if (!isObj(tc)) return `${where}.tool_calls[${i}]: must be an object`;
      for (const k of Object.keys(tc)) if (!TOOL_KEYS.has(k)) return `${where}.tool_calls[${i}]: unknown key "${k}"`;
      if (typeof tc.name !== 'string' || tc.name === '') return `${where}.tool_calls[${i}].name: a non-empty string`;
      if (tc.id !== undefined && typeof tc.id !== 'string') return `${where}.tool_calls[${i}].id: a string`;
      if (tc.split !== undefined && !(Number.isInteger(tc.split) && tc.split >= 1)) return `${where}.tool_calls[${i}].split: a positive integer`;
    }
  }
  if (r.error !== undefined) {
    if (!isObj(r.error)) return `${where}.error: must be an object`;
    for (const k of Object.keys(r.error)) if (!ERROR_KEYS.has(k)) return `${where}.error: unknown key "${k}"`;
    const st = r.error.status ?? 500;
    if (!(Number.isInteger(st) && st >= 400 && st <= 599)) return `${where}.error.status: 400..599`;
    if (r.error.retry_after !== undefined && !(typeof r.error.retry_after === 'number' && r.error.retry_after >= 0)) return `${where}.error.retry_after: a non-negative number (seconds)`;
    if (r.error.after !== undefined && !nonNegInt(r.error.after)) return `${where}.error.after: a non-negative integer`;
  }
  if (r.finish_reason !== undefined && typeof r.finish_reason !== 'string') return `${where}.finish_reason: a string`;
  if (r.headers !== undefined && !isObj(r.headers)) return `${where}.headers: an object`;
  if (r.eol !== undefined && r.eol !== '\n' && r.eol !== '\r\n') return `${where}.eol: "\\n" or "\\r\\n"`;
  if (r.body !== undefined && !(isObj(r.body) && Number.isInteger(r.body.status) && typeof r.body.text === 'string'
    && (r.body.content_type === undefined || typeof r.body.content_type === 'string'))) return `${where}.body: {status, text, content_type?}`;
  return null;
}

/** Normalises a validated response into what the writers use. Text pieces may be lazy. */
function makePlan(r) {
  const p = {
    raw: r,
    delayMs: r.interval_ms ?? r.delay_ms ?? 0,
    providerDelayMs: r.provider_delay_ms ?? 0,
    truncateAfter: r.truncate_after ?? null,
    garbageAfter: r.garbage_after ?? null,
    stallMs: r.stall_ms ?? 0,
    stallAfter: r.stall_after ?? 0,
    error: r.error ?? null,
    finish: r.finish_reason ?? null,
    model: r.model ?? null,
    headers: r.headers ?? {},
    id: r.id ?? null,
    eol: r.eol ?? null,
    thinking: r.thinking ?? null,
    signature: r.signature ?? null,
  };
  // Text: lazy in benchmark mode, so 100,000 tokens cost no memory up front.
  if (r.tokens !== undefined) {
    const n = r.tokens;
    p.textCount = n;
    p.textPieces = () => (function* gen() { for (let i = 0; i < n; i++) yield i === 0 ? 'w0' : ` w${i}`; })();
    p.fullText = () => { let s = ''; for (const x of p.textPieces()) s += x; return s; };
    p.hasText = n > 0;
  } else {
    let text = r.text;
    let pieces;
    if (Array.isArray(r.chunks)) { pieces = r.chunks; text = text ?? r.chunks.join(''); }
    if (text === undefined) text = r.tool_calls?.length || r.thinking !== undefined || r.error ? '' : DEFAULT_TEXT;
    if (!pieces) pieces = typeof r.chunks === 'number' ? nPieces(text, r.chunks) : wordPieces(text);
    p.textCount = pieces.length;
    p.textPieces = () => pieces[Symbol.iterator]();
    p.fullText = () => text;
    p.hasText = text !== '';
  }
  p.thinkingPieces = p.thinking === null ? []
    : (r.thinking_chunks ? nPieces(p.thinking, r.thinking_chunks) : wordPieces(p.thinking));
  if (p.thinking !== null && p.signature === null) p.signature = `sig_${rid(32)}`;
  p.toolCalls = (r.tool_calls ?? []).map((tc) => {
    const argsJson = typeof tc.arguments === 'string' ? tc.arguments : JSON.stringify(tc.arguments ?? {});
    let argsObj;
    if (typeof tc.arguments === 'string') {
      try { argsObj = JSON.parse(tc.arguments); } catch { argsObj = {}; }
    } else argsObj = tc.arguments ?? {};
    return {
      id: tc.id ?? null,
      name: tc.name,
      argsJson,
      argsObj,
      pieces: nPieces(argsJson, tc.split ?? r.split ?? 3),
    };
  });
  const deltas = p.textCount + p.thinkingPieces.length + p.toolCalls.reduce((a, t) => a + t.pieces.length, 0);
  p.usage = { input: r.usage?.input ?? 10, output: r.usage?.output ?? Math.max(1, deltas) };
  return p;
}

// Generic finish reasons (OpenAI's vocabulary) mapped to each provider's; other values pass through.
function finishFor(provider, p) {
  const generic = p.finish ?? (p.toolCalls.length ? 'tool_calls' : 'stop');
  const maps = {
    openai: { stop: 'stop', tool_calls: 'tool_calls', length: 'length', end_turn: 'stop', tool_use: 'tool_calls', max_tokens: 'length' },
    anthropic: { stop: 'end_turn', tool_calls: 'tool_use', length: 'max_tokens' },
    google: { stop: 'STOP', tool_calls: 'STOP', length: 'MAX_TOKENS', end_turn: 'STOP', tool_use: 'STOP', max_tokens: 'MAX_TOKENS' },
  };
  return maps[provider][generic] ?? generic;
}

// ---------------------------------------------------------------------------------------------
// Error bodies, in each provider's own shape
// ---------------------------------------------------------------------------------------------

const OPENAI_ERR = {
  400: ['invalid_request_error', null, 'Invalid request.'],
  401: ['invalid_request_error', 'invalid_api_key', 'Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.'],
  403: ['invalid_request_error', 'unsupported_country_region_territory', 'Country, region, or territory not supported'],
  404: ['invalid_request_error', 'model_not_found', 'The model does not exist or you do not have access to it.'],
  429: ['requests', 'rate_limit_exceeded', 'Rate limit reached for requests. Please try again later.'],
  500: ['server_error', null, 'The server had an error while processing your request. Sorry about that!'],
  503: ['server_error', null, 'The engine is currently overloaded, please try again later.'],
};
const ANTHROPIC_ERR = {
  400: ['invalid_request_error', 'Invalid request.'],
  401: ['authentication_error', 'invalid x-api-key'],
  403: ['permission_error', 'Your API key does not have permission to use the specified resource.'],
  404: ['not_found_error', 'The requested resource could not be found.'],
  413: ['request_too_large', 'Request exceeds the maximum allowed number of bytes.'],
  429: ['rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit.'],
  500: ['api_error', 'Internal server error'],
  503: ['api_error', 'Service unavailable'],
  529: ['overloaded_error', 'Overloaded'],
};
const GOOGLE_ERR = {
  400: ['INVALID_ARGUMENT', 'Request contains an invalid argument.'],
  401: ['UNAUTHENTICATED', 'Request had invalid authentication credentials.'],
  403: ['PERMISSION_DENIED', 'The caller does not have permission.'],
  404: ['NOT_FOUND', 'Requested entity was not found.'],
  429: ['RESOURCE_EXHAUSTED', 'Resource has been exhausted (e.g. check quota).'],
  500: ['INTERNAL', 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting'],
  503: ['UNAVAILABLE', 'The model is overloaded. Please try again later.'],
  504: ['DEADLINE_EXCEEDED', 'Deadline expired before operation could complete.'],
};

/** The real APIs' refusal of a request over the model's context window, or null. */
function tooLong(provider, bytes) {
  const max = state.config.context_window;
  const tokens = Math.ceil(bytes / 4);
  if (!max || tokens <= max) return null;
  if (provider === 'openai') {
    return { status: 400, type: 'invalid_request_error', code: 'context_length_exceeded', param: 'messages',
      message: `This model's maximum context length is ${max} tokens. However, your messages resulted in ${tokens} tokens. Please reduce the length of the messages.` };
  }
  if (provider === 'anthropic') return { status: 400, type: 'invalid_request_error', message: `prompt is too long: ${tokens} tokens > ${max} maximum` };
  return { status: 400, type: 'INVALID_ARGUMENT', message: `The input token count (${tokens}) exceeds the maximum number of tokens allowed (${max}).` };
}

function errorBody(provider, e) {
  const status = e.status ?? 500;
  if (provider === 'openai') {
    const d = OPENAI_ERR[status] ?? (status >= 500 ? OPENAI_ERR[500] : OPENAI_ERR[400]);
    return { error: { message: e.message ?? d[2], type: e.type ?? d[0], param: e.param ?? null, code: e.code !== undefined ? e.code : d[1] } };
  }
  if (provider === 'anthropic') {
    const d = ANTHROPIC_ERR[status] ?? (status >= 500 ? ANTHROPIC_ERR[500] : ANTHROPIC_ERR[400]);
    return { type: 'error', error: { type: e.type ?? d[0], message: e.message ?? d[1] }, request_id: `req_${rid(24)}` };
  }
  const d = GOOGLE_ERR[status] ?? (status >= 500 ? GOOGLE_ERR[500] : GOOGLE_ERR[400]);
  const err = { code: status, message: e.message ?? d[1], status: e.type ?? d[0] };
  const details = [];
  if (e.reason) details.push({ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: e.reason, domain: 'googleapis.com', metadata: { service: 'generativelanguage.googleapis.com' } });
  if (e.retry_after !== undefined) details.push({ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${e.retry_after}s` });
  if (details.length) err.details = details;
  return { error: err };
}

// ---------------------------------------------------------------------------------------------
// Conversation rules the real APIs enforce: every tool call answered, every answer to a call
// ---------------------------------------------------------------------------------------------
// Each check returns null when the request body is a conversation the provider takes, else the
// error the provider answers with: {status: 400, message, type?, code?, param?}.

/** OpenAI Chat Completions (and Ollama's copy of it): a message's content is a string or a
 * non-empty array of parts; only an assistant message with tool_calls may leave it null or out. */
function openaiContentError(m, i) {
  const at = `messages.[${i}].content`;
  const calls = m?.role === 'assistant' && Array.isArray(m.tool_calls) && m.tool_calls.length > 0;
  if (m?.content === undefined && !calls) {
    return { status: 400, code: 'missing_required_parameter', param: at, message: `Missing required parameter: '${at}'.` };
  }
  if (m?.content === null && !calls) {
    return { status: 400, code: null, param: at, message: "Invalid value for 'content': expected a string, got null." };
  }
  if (Array.isArray(m?.content) && m.content.length === 0) {
    return { status: 400, code: 'empty_array', param: at,
      message: `Invalid '${at}': empty array. Expected an array with minimum length 1, but got an empty array instead.` };
  }
  return null;
}

/** OpenAI Chat Completions: each tool's function name matches ^[a-zA-Z0-9_-]+$ in at most 64
 * characters and its parameters are an object's schema; every message has content (see
 * openaiContentError); an assistant message with tool_calls is followed by tool messages
 * answering each of its ids before any other role; a tool message answers a preceding call. */
function checkOpenAI(body) {
  for (const [i, t] of (Array.isArray(body.tools) ? body.tools : []).entries()) {
    const name = t?.function?.name;
    const at = `tools[${i}].function.name`;
    if (typeof name === 'string' && name.length > 64) {
      return { status: 400, code: 'string_above_max_length', param: at,
        message: `Invalid '${at}': string too long. Expected a string with maximum length 64, but got a string with length ${name.length} instead.` };
    }
    if (typeof name !== 'string' || !/^[a-zA-Z0-9_-]+$/.test(name)) {
      return { status: 400, code: 'invalid_value', param: at,
        message: `Invalid '${at}': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.` };
    }
    const type = t.function.parameters?.type;
    if (t.function.parameters !== undefined && type !== 'object') {
      return { status: 400, code: 'invalid_function_parameters', param: `tools[${i}].function.parameters`,
        message: `Invalid schema for function '${name}': schema must be a JSON Schema of 'type: "object"', got 'type: "${type}"'.` };
    }
  }
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  for (const [i, m] of msgs.entries()) {
    const e = openaiContentError(m, i);
    if (e) return e;
    for (const [j, tc] of (m?.role === 'assistant' && Array.isArray(m.tool_calls) ? m.tool_calls : []).entries()) {
      const name = tc?.function?.name;
      const at = `messages[${i}].tool_calls[${j}].function.name`;
      if (typeof name !== 'string' || !/^[a-zA-Z0-9_-]+$/.test(name)) {
        return { status: 400, code: 'invalid_value', param: at,
          message: `Invalid '${at}': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.` };
      }
    }
  }
  let open = null; // ids of the last assistant message's tool_calls still to be answered
  for (let i = 0; i <= msgs.length; i++) {
    const m = msgs[i];
    if (m?.role === 'tool') {
      if (!open || !open.delete(m.tool_call_id)) {
        return {
          status: 400, code: null, param: `messages.[${i}].role`,
          message: "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
        };
      }
      continue;
    }
    if (open && open.size) {
      return {
        status: 400, code: null, param: `messages.[${i < msgs.length ? i : i - 1}].role`,
        message: "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. "
          + `The following tool_call_ids did not have response messages: ${[...open].join(', ')}`,
      };
    }
    open = null;
    if (m?.role === 'assistant' && Array.isArray(m.tool_calls) && m.tool_calls.length) {
      open = new Set(m.tool_calls.map((tc) => tc?.id));
    }
  }
  return null;
}

const ANTHROPIC_IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'];

/** An Anthropic image block's problem, or null. `at` is its path for the message. */
function anthropicImageError(b, at) {
  const src = b.source;
  if (!isObj(src)) return `${at}.image.source: Field required`;
  if (src.type === 'base64') {
    if (!ANTHROPIC_IMAGE_TYPES.includes(src.media_type)) {
      return `${at}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'`;
    }
    if (typeof src.data !== 'string' || src.data === '') return `${at}.image.source.base64.data: Field required`;
    return null;
  }
  if (src.type === 'url') return typeof src.url === 'string' ? null : `${at}.image.source.url.url: Field required`;
  return `${at}.image.source: Input tag '${src.type}' found using 'type' does not match any of the expected tags: 'base64', 'url'`;
}

/** Anthropic Messages: every message has content (a non-empty string or blocks) but a last
 * assistant one (a prefill), and no text block is empty or only white space; every tool_use has a
 * tool_result with its id in the very next message (a user message), every tool_result a tool_use
 * in the message before; the tool_use ids of a message are unique; image blocks well formed. */
function checkAnthropic(body) {
  const names = new Set();
  for (const [i, t] of (Array.isArray(body.tools) ? body.tools : []).entries()) {
    if (t?.type && t.type !== 'custom') continue; // a server tool (web_search ...)
    if (typeof t?.name !== 'string' || !/^[a-zA-Z0-9_-]{1,128}$/.test(t.name)) {
      return { status: 400, message: `tools.${i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'` };
    }
    if (t.input_schema?.type !== 'object') return { status: 400, message: `tools.${i}.custom.input_schema.type: Input should be 'object'` };
    if (names.has(t.name)) return { status: 400, message: 'tools: Tool names must be unique.' };
    names.add(t.name);
  }
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  const blocks = (m) => (Array.isArray(m?.content) ? m.content : []);
  for (const [i, m] of msgs.entries()) {
    const empty = m?.content === '' || (Array.isArray(m?.content) && m.content.length === 0);
    if (empty && !(i === msgs.length - 1 && m.role === 'assistant')) {
      return { status: 400, message: `messages.${i}: all messages must have non-empty content except for the optional final assistant message` };
    }
    for (const b of blocks(m)) {
      if (b?.type !== 'text' || typeof b.text !== 'string') continue;
      if (b.text === '') return { status: 400, message: 'messages: text content blocks must be non-empty' };
      if (!b.text.trim()) return { status: 400, message: 'messages: text content blocks must contain non-whitespace text' };
    }
    for (const [j, b] of blocks(m).entries()) {
      const inner = b?.type === 'tool_result' && Array.isArray(b.content) ? b.content : [];
      const images = [[b, `messages.${i}.content.${j}`],
        ...inner.map((x, k) => [x, `messages.${i}.content.${j}.tool_result.content.${k}`])];
      for (const [x, at] of images) {
        const e = x?.type === 'image' ? anthropicImageError(x, at) : null;
        if (e) return { status: 400, message: e };
      }
    }
    const prev = i > 0 ? msgs[i - 1] : null;
    const uses = prev?.role === 'assistant'
      ? new Set(blocks(prev).filter((b) => b?.type === 'tool_use').map((b) => b.id)) : new Set();
    for (const [j, b] of blocks(m).entries()) {
      if (b?.type !== 'tool_result') continue;
      if (m.role !== 'user' || !uses.has(b.tool_use_id)) {
        return {
          status: 400,
          message: `messages.${i}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${b.tool_use_id}. `
            + 'Each `tool_result` block must have a corresponding `tool_use` block in the previous message.',
        };
      }
    }
    for (const [j, b] of blocks(m).entries()) {
      const id = b?.type === 'tool_use' ? b.id : b?.type === 'tool_result' ? b.tool_use_id : null;
      const field = b?.type === 'tool_use' ? 'tool_use.id' : 'tool_result.tool_use_id';
      if (id !== null && (typeof id !== 'string' || !/^[a-zA-Z0-9_-]+$/.test(id))) {
        return { status: 400, message: `messages.${i}.content.${j}.${field}: String should match pattern '^[a-zA-Z0-9_-]+$'` };
      }
    }
    if (m?.role !== 'assistant') continue;
    const seen = new Set();
    for (const [j, b] of blocks(m).entries()) {
      if (b?.type !== 'tool_use') continue;
      if (seen.has(b.id)) return { status: 400, message: `messages.${i}.content.${j}: \`tool_use\` ids must be unique` };
      seen.add(b.id);
    }
    const next = msgs[i + 1];
    const answered = new Set(next?.role === 'user'
      ? blocks(next).filter((b) => b?.type === 'tool_result').map((b) => b.tool_use_id) : []);
    const missing = blocks(m).filter((b) => b?.type === 'tool_use' && !answered.has(b.id)).map((b) => b.id);
    if (missing.length) {
      return {
        status: 400,
        message: `messages.${i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. `
          + 'Each `tool_use` block must have a corresponding `tool_result` block in the next message.',
      };
    }
  }
  return null;
}

/** Gemini: every content has at least one part; a model turn with functionCall parts is followed
 * by a user turn with as many functionResponse parts; function responses come right after a
 * function call turn. */
function checkGoogle(body) {
  for (const [k, tool] of (Array.isArray(body.tools) ? body.tools : []).entries()) {
    for (const [i, f] of (Array.isArray(tool?.functionDeclarations) ? tool.functionDeclarations : []).entries()) {
      if (typeof f?.name !== 'string' || !/^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$/.test(f.name)) {
        return { status: 400, message: `* GenerateContentRequest.tools[${k}].function_declarations[${i}].name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64.\n` };
      }
    }
  }
  const contents = Array.isArray(body.contents) ? body.contents : [];
  for (const [i, c] of contents.entries()) {
    for (const [j, p] of (Array.isArray(c?.parts) ? c.parts : []).entries()) {
      const name = p?.functionCall?.name ?? p?.functionResponse?.name;
      if (name !== undefined && (typeof name !== 'string' || !/^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$/.test(name))) {
        return { status: 400, message: `* GenerateContentRequest.contents[${i}].parts[${j}].${p.functionCall ? 'function_call' : 'function_response'}.name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64.\n` };
      }
    }
  }
  const count = (c, key) => (Array.isArray(c?.parts) ? c.parts.filter((p) => isObj(p?.[key])).length : 0);
  for (const [i, c] of contents.entries()) {
    if (!Array.isArray(c?.parts) || c.parts.length === 0) {
      return { status: 400, message: `* GenerateContentRequest.contents[${i}].parts: contents.parts must not be empty.\n` };
    }
  }
  for (const [i, c] of contents.entries()) {
    const calls = c?.role === 'model' ? count(c, 'functionCall') : 0;
    const prevCalls = i > 0 && contents[i - 1]?.role === 'model' ? count(contents[i - 1], 'functionCall') : 0;
    if (count(c, 'functionResponse') && !prevCalls) {
      return { status: 400, message: 'Please ensure that function response turn comes immediately after a function call turn.' };
    }
    if (!calls) continue;
    const next = contents[i + 1];
    const answers = next && next.role !== 'model' ? count(next, 'functionResponse') : 0;
    if (answers !== calls) {
      return {
        status: 400,
        message: 'Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.',
      };
    }
  }
  return null;
}

const CHECKS = { openai: checkOpenAI, anthropic: checkAnthropic, google: checkGoogle };

/** Refusals also go to stderr and, when FAKE_PROVIDER_REFUSALS names a file, are appended to it
 * (one JSON line each), so a whole test run can be checked for conversations a real API refuses. */
function noteRefusal(entry, err) {
  state.stats.refused++;
  const line = JSON.stringify({ provider: entry.provider, seq: entry.seq, message: err.message, body: entry.body });
  process.stderr.write(`fake-provider: refused ${entry.provider} request #${entry.seq}: ${err.message}\n`);
  if (process.env.FAKE_PROVIDER_REFUSALS) appendFileSync(process.env.FAKE_PROVIDER_REFUSALS, `${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// Provider writers: streamed events (generators) and whole (non-streamed) bodies
// ---------------------------------------------------------------------------------------------
// A stream generator yields {obj, event?, delta} where `delta` marks a content delta (the unit
// that truncate_after, garbage_after, stall_after, error.after and delay_ms count), or {raw}.

function openaiCtxChunk(ctx, choices, usage) {
  const o = {
    id: ctx.id, object: 'chat.completion.chunk', created: ctx.created, model: ctx.model,
    system_fingerprint: 'fp_fake', choices,
  };
  if (ctx.includeUsage) o.usage = usage ?? null;
  return o;
}

function* openaiStream(p, ctx) {
  const ch = (delta, finish = null) => openaiCtxChunk(ctx, [{ index: 0, delta, logprobs: null, finish_reason: finish }]);
  const toolOnly = !p.hasText && p.toolCalls.length > 0;
  yield { obj: ch({ role: 'assistant', content: toolOnly ? null : '', refusal: null }) };
  // Reasoning text, as DeepSeek / the OpenAI-compatible reasoning models stream it.
  for (const t of p.thinkingPieces) yield { obj: ch({ reasoning_content: t }), delta: true };
  for (const t of p.textPieces()) yield { obj: ch({ content: t }), delta: true };
  for (const [i, tc] of p.toolCalls.entries()) {
    yield { obj: ch({ tool_calls: [{ index: i, id: tc.id, type: 'function', function: { name: tc.name, arguments: '' } }] }) };
    for (const a of tc.pieces) yield { obj: ch({ tool_calls: [{ index: i, function: { arguments: a } }] }), delta: true };
  }
  yield { obj: ch({}, finishFor('openai', p)) };
  if (ctx.includeUsage) {
    const { input, output } = p.usage;
    yield { obj: openaiCtxChunk(ctx, [], { prompt_tokens: input, completion_tokens: output, total_tokens: input + output }) };
  }
  yield { raw: 'data: [DONE]\n\n' };
}

function openaiWhole(p, ctx) {
  const { input, output } = p.usage;
  const text = p.fullText();
  const message = { role: 'assistant', content: p.hasText ? text : (p.toolCalls.length ? null : ''), refusal: null };
  if (p.thinking !== null) message.reasoning_content = p.thinking;
  if (p.toolCalls.length) {
    message.tool_calls = p.toolCalls.map((tc) => ({ id: tc.id, type: 'function', function: { name: tc.name, arguments: tc.argsJson } }));
  }
  return {
    id: ctx.id, object: 'chat.completion', created: ctx.created, model: ctx.model, system_fingerprint: 'fp_fake',
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishFor('openai', p) }],
    usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
  };
}

function* anthropicStream(p, ctx) {
  const ev = (obj, delta = false) => ({ event: obj.type, obj, delta });
  yield ev({
    type: 'message_start',
    message: {
      id: ctx.id, type: 'message', role: 'assistant', model: ctx.model, content: [],
      stop_reason: null, stop_sequence: null,
      usage: { input_tokens: p.usage.input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 },
    },
  });
  let index = 0;
  let pinged = false;
  function* start(block) {
    yield ev({ type: 'content_block_start', index, content_block: block });
    if (!pinged) { pinged = true; yield ev({ type: 'ping' }); }
  }
  if (p.thinking !== null) {
    yield* start({ type: 'thinking', thinking: '', signature: '' });
    for (const t of p.thinkingPieces) yield ev({ type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking: t } }, true);
    yield ev({ type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: p.signature } });
    yield ev({ type: 'content_block_stop', index });
    index++;
  }
  if (p.hasText || p.toolCalls.length === 0) {
    yield* start({ type: 'text', text: '' });
    for (const t of p.textPieces()) yield ev({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: t } }, true);
    yield ev({ type: 'content_block_stop', index });
    index++;
  }
  for (const tc of p.toolCalls) {
    yield* start({ type: 'tool_use', id: tc.id, name: tc.name, input: {} });
    // The API opens every tool_use block with an empty partial_json.
    yield ev({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: '' } });
    for (const a of tc.pieces) yield ev({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: a } }, true);
    yield ev({ type: 'content_block_stop', index });
    index++;
  }
  yield ev({ type: 'message_delta', delta: { stop_reason: finishFor('anthropic', p), stop_sequence: null }, usage: { output_tokens: p.usage.output } });
  yield ev({ type: 'message_stop' });
}

function anthropicWhole(p, ctx) {
  const content = [];
  if (p.thinking !== null) content.push({ type: 'thinking', thinking: p.thinking, signature: p.signature });
  if (p.hasText || p.toolCalls.length === 0) content.push({ type: 'text', text: p.fullText() });
  for (const tc of p.toolCalls) content.push({ type: 'tool_use', id: tc.id, name: tc.name, input: tc.argsObj });
  return {
    id: ctx.id, type: 'message', role: 'assistant', model: ctx.model, content,
    stop_reason: finishFor('anthropic', p), stop_sequence: null,
    usage: { input_tokens: p.usage.input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: p.usage.output },
  };
}

// Gemini's functionCall carries no id on the Gemini API (ids are a Vertex/Live feature), so a
// scripted tool-call id is not sent: the client must make its own.
function* googleStream(p, ctx) {
  const { input, output } = p.usage;
  let produced = 0;
  const total = Math.max(1, p.textCount + p.thinkingPieces.length + (p.toolCalls.length ? 1 : 0));
  const usage = (final) => {
    const c = final ? output : Math.min(output, Math.round((output * produced) / total));
    return { promptTokenCount: input, candidatesTokenCount: c, totalTokenCount: input + c };
  };
  const chunk = (parts, finish) => {
    produced++;
    const cand = { content: { parts, role: 'model' }, index: 0 };
    if (finish) cand.finishReason = finish;
    return { candidates: [cand], usageMetadata: usage(Boolean(finish)), modelVersion: ctx.model, responseId: ctx.id };
  };
  const finish = finishFor('google', p);
  const hasTools = p.toolCalls.length > 0;
  for (const t of p.thinkingPieces) yield { obj: chunk([{ text: t, thought: true }], null), delta: true };
  // Text, with finishReason on the last text chunk when no function call follows (one-item lookahead).
  let prev = null;
  for (const t of p.textPieces()) {
    if (prev !== null) yield { obj: chunk([{ text: prev }], null), delta: true };
    prev = t;
  }
  if (prev !== null) yield { obj: chunk([{ text: prev }], hasTools ? null : finish), delta: true };
  if (hasTools) {
    const parts = p.toolCalls.map((tc, i) => {
      const part = { functionCall: { name: tc.name, args: tc.argsObj } };
      if (i === 0 && p.signature !== null) part.thoughtSignature = p.signature;
      return part;
    });
    yield { obj: chunk(parts, finish), delta: true };
  } else if (prev === null) {
    yield { obj: chunk([{ text: '' }], finish), delta: true };
  }
}

function googleWhole(p, ctx) {
  const parts = [];
  if (p.thinking !== null) parts.push({ text: p.thinking, thought: true });
  if (p.hasText || p.toolCalls.length === 0) parts.push({ text: p.fullText() });
  for (const [i, tc] of p.toolCalls.entries()) {
    const part = { functionCall: { name: tc.name, args: tc.argsObj } };
    if (i === 0 && p.signature !== null) part.thoughtSignature = p.signature;
    parts.push(part);
  }
  const { input, output } = p.usage;
  return {
    candidates: [{ content: { parts, role: 'model' }, finishReason: finishFor('google', p), index: 0 }],
    usageMetadata: { promptTokenCount: input, candidatesTokenCount: output, totalTokenCount: input + output },
    modelVersion: ctx.model, responseId: ctx.id,
  };
}

// Framing: how one event becomes bytes on the wire, per provider (and Gemini's alt= mode).
function framer(provider, ctx, p) {
  if (provider === 'openai') {
    return {
      frame: (e) => e.raw ?? `data: ${JSON.stringify(e.obj)}\n\n`,
      garbage: () => 'data: {"id":"chatcmpl-garbage","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"gar\n\n',
      error: (err) => `data: ${JSON.stringify(errorBody('openai', err))}\n\n`,
      end: () => '',
    };
  }
  if (provider === 'anthropic') {
    return {
      frame: (e) => e.raw ?? `event: ${e.event}\ndata: ${JSON.stringify(e.obj)}\n\n`,
      garbage: () => 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"gar\n\n',
      error: (err) => {
        const b = errorBody('anthropic', err);
        delete b.request_id;
        return `event: error\ndata: ${JSON.stringify(b)}\n\n`;
      },
      end: () => '',
    };
  }
  // Google. alt=sse: `data: <GenerateContentResponse>` separated by CRLF CRLF (as the API sends;
  // a script may set "eol": "\n"). Without alt=sse: one JSON array streamed element by element.
  const eol = p.eol ?? '\r\n';
  if (ctx.sse) {
    return {
      frame: (e) => e.raw ?? `data: ${JSON.stringify(e.obj)}${eol}${eol}`,
      garbage: () => `data: {"candidates": [{"content": {"parts": [{"text": "gar${eol}${eol}`,
      error: (err) => `data: ${JSON.stringify(errorBody('google', err))}${eol}${eol}`,
      end: () => '',
    };
  }
  let n = 0;
  return {
    frame: (e) => `${n++ === 0 ? '[' : ',\r\n'}${JSON.stringify(e.obj)}`,
    garbage: () => `${n++ === 0 ? '[' : ',\r\n'}{"candidates": [{"content": {"parts": [{"text": "gar`,
    error: (err) => `${n++ === 0 ? '[' : ',\r\n'}${JSON.stringify(errorBody('google', err))}]`,
    end: () => (n === 0 ? '[]' : ']'),
  };
}

const STREAMERS = { openai: openaiStream, anthropic: anthropicStream, google: googleStream };
const WHOLES = { openai: openaiWhole, anthropic: anthropicWhole, google: googleWhole };

// ---------------------------------------------------------------------------------------------
// Sending a response
// ---------------------------------------------------------------------------------------------

function sendJson(res, status, body, headers = {}) {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s), ...headers });
  res.end(s);
}

function providerHeaders(provider, ctx) {
  if (provider === 'openai') return { 'x-request-id': `req_${rid(24)}`, 'openai-processing-ms': '1' };
  if (provider === 'anthropic') return { 'request-id': `req_${rid(24)}` };
  return {};
}

function sendProviderError(res, provider, err, ctx, extraHeaders = {}) {
  const headers = { ...providerHeaders(provider, ctx), ...extraHeaders };
  if (err.retry_after !== undefined) headers['retry-after'] = String(err.retry_after);
  let body = errorBody(provider, err);
  // Gemini's streamGenerateContent without alt=sse wraps everything, errors included, in an array.
  if (provider === 'google' && ctx.stream && !ctx.sse) body = [body];
  sendJson(res, err.status ?? 500, body, headers);
}

/** Runs `fn` after `ms` unless the response has closed first. */
function later(conn, ms, fn) {
  if (ms <= 0) return fn();
  conn.timer = setTimeout(() => { conn.timer = null; if (!conn.closed) fn(); }, ms);
  return undefined;
}

function respond(req, res, provider, ctx, r) {
  const p = makePlan(r);
  if (p.model) ctx.model = p.model;
  if (p.id) ctx.id = p.id;
  for (const tc of p.toolCalls) { // each provider's own id style when the script gives none
    if (tc.id === null && provider === 'openai') tc.id = `call_${rid(24)}`;
    if (tc.id === null && provider === 'anthropic') tc.id = `toolu_${rid(24)}`;
  }
  const conn = { closed: false, timer: null };
  state.stats.active++;
  state.stats.served++;
  if (state.stats.active > state.stats.peak) state.stats.peak = state.stats.active;
  res.on('close', () => {
    conn.closed = true;
    if (conn.timer) { clearTimeout(conn.timer); conn.timer = null; }
    state.stats.active--;
  });
  later(conn, p.providerDelayMs, () => {
    if (r.body) { // an answer exactly as scripted
      res.writeHead(r.body.status, { 'content-type': r.body.content_type ?? 'application/json' });
      res.end(r.body.text);
      return;
    }
    if (r.comments_ms && ctx.stream) { // a stream of keep-alive comments, and nothing else, ever
      res.writeHead(200, { 'content-type': 'text/event-stream', ...providerHeaders(provider, ctx) });
      const tick = () => { res.write(': keep-alive\n\n'); later(conn, r.comments_ms, tick); };
      tick();
      return;
    }
    const err = p.error;
    if (err && !(err.in_stream && ctx.stream)) {
      sendProviderError(res, provider, err, ctx, p.headers);
      return;
    }
    if (ctx.stream) streamResponse(res, provider, ctx, p, conn);
    else wholeResponse(res, provider, ctx, p, conn);
  });
}

function wholeResponse(res, provider, ctx, p, conn) {
  let body = JSON.stringify(WHOLES[provider](p, ctx));
  if (p.garbageAfter !== null) body = `${body.slice(0, Math.max(1, Math.floor(body.length / 2)))}<<garbage`;
  const bytes = Buffer.from(body);
  res.writeHead(200, {
    'content-type': 'application/json', 'content-length': bytes.length,
    ...providerHeaders(provider, ctx), ...p.headers,
  });
  const send = () => {
    if (p.truncateAfter !== null) {
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)));
      res.socket?.end();
      return;
    }
    res.end(bytes);
  };
  if (p.stallMs > 0) {
    res.flushHeaders();
    later(conn, p.stallMs, send);
  } else send();
}

const FLUSH_BYTES = 32 * 1024;

/** How many content deltas the stream generator will mark (see the writers above). */
function totalDeltas(provider, p) {
  const args = p.toolCalls.reduce((a, t) => a + t.pieces.length, 0);
  if (provider !== 'google') return p.thinkingPieces.length + p.textCount + args;
  const tools = p.toolCalls.length ? 1 : 0;
  return p.thinkingPieces.length + p.textCount + tools + (p.textCount === 0 && !tools ? 1 : 0);
}

function streamResponse(res, provider, ctx, p, conn) {
  const f = framer(provider, ctx, p);
  const gen = STREAMERS[provider](p, ctx);
  const contentType = provider === 'google' && !ctx.sse ? 'application/json; charset=UTF-8'
    : provider === 'google' ? 'text/event-stream' : 'text/event-stream; charset=utf-8';
  res.writeHead(200, {
    'content-type': contentType,
    'cache-control': 'no-cache',
    ...providerHeaders(provider, ctx),
    ...p.headers,
  });
  res.flushHeaders();

  // "after N deltas" past the last delta means: after the last delta (before the terminator).
  const total = totalDeltas(provider, p);
  const clamp = (n) => (n === null ? null : Math.min(n, total));
  p.truncateAfter = clamp(p.truncateAfter);
  p.garbageAfter = clamp(p.garbageAfter);
  p.stallAfter = clamp(p.stallAfter);
  let out = '';
  let deltas = 0;
  let firstDeltaAt = 0;
  let pending = null; // an event taken from the generator but not yet written
  let done = false;
  const errAfter = p.error && p.error.in_stream ? clamp(p.error.after ?? 0) : null;

  const flush = () => {
    if (out === '') return true;
    const ok = res.write(out);
    out = '';
    return ok;
  };
  const cut = () => { // close the connection mid-body: no terminator, no final zero-length chunk
    flush();
    conn.closed = true;
    res.socket?.end();
  };
  const finish = () => {
    out += f.end();
    flush();
    done = true;
    res.end();
  };
  /** Hooks run when `deltas` content deltas have been sent; returns 'stop', 'wait' or null. */
  const hooks = () => {
    if (p.garbageAfter === deltas) out += f.garbage();
    if (errAfter === deltas) {
      out += f.error(p.error);
      finish();
      return 'stop';
    }
    if (p.truncateAfter === deltas) { cut(); return 'stop'; }
    if (p.stallMs > 0 && p.stallAfter === deltas) {
      flush();
      later(conn, p.stallMs, step);
      return 'wait';
    }
    return null;
  };

  function step() {
    while (!conn.closed && !done) {
      if (pending === null) {
        const n = gen.next();
        if (n.done) { finish(); return; }
        pending = n.value;
      }
      if (pending.delta && deltas > 0 && p.delayMs > 0) {
        // Schedule against absolute deadlines (first delta + k * interval), so timer lateness
        // does not accumulate over a long stream.
        const due = firstDeltaAt + deltas * p.delayMs;
        const wait = due - performance.now();
        if (wait > 0.5) {
          if (!flush()) { res.once('drain', step); return; }
          conn.timer = setTimeout(() => { conn.timer = null; step(); }, wait);
          return;
        }
      }
      const e = pending;
      pending = null;
      out += f.frame(e);
      if (e.delta) {
        if (deltas === 0) firstDeltaAt = performance.now();
        else if (p.delayMs > 0) {
          const late = Math.max(0, performance.now() - (firstDeltaAt + deltas * p.delayMs));
          const st = state.stats;
          st.paced_deltas++;
          st.late_sum_ms += late;
          if (late > st.late_max_ms) st.late_max_ms = late;
        }
        deltas++;
        const h = hooks();
        if (h === 'stop' || h === 'wait') return;
        if (p.delayMs > 0 && !flush()) { res.once('drain', step); return; }
      }
      if (out.length >= FLUSH_BYTES && !flush()) { res.once('drain', step); return; }
    }
  }

  const h0 = hooks(); // "after 0 deltas": before any body byte
  if (h0 === 'stop' || h0 === 'wait') return;
  step();
}

// ---------------------------------------------------------------------------------------------
// Provider routes
// ---------------------------------------------------------------------------------------------

function header(req, name) {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Returns null when the request may proceed, else sends the provider's auth error. */
function checkAuth(req, res, provider, ctx, url) {
  const want = state.config.keys[provider];
  if (provider === 'anthropic' && state.config.require_anthropic_version && !header(req, 'anthropic-version')) {
    sendProviderError(res, provider, { status: 400, message: 'anthropic-version: header is required' }, ctx);
    return false;
  }
  if (!want) return true;
  if (provider === 'openai') {
    const auth = header(req, 'authorization');
    const got = auth && /^Bearer\s+/i.test(auth) ? auth.replace(/^Bearer\s+/i, '') : header(req, 'api-key');
    if (!got) {
      sendProviderError(res, provider, {
        status: 401, code: null,
        message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
      }, ctx);
      return false;
    }
    if (got !== want) {
      sendProviderError(res, provider, {
        status: 401, code: 'invalid_api_key',
        message: `Incorrect API key provided: ${maskKey(got)}. You can find your API key at https://platform.openai.com/account/api-keys.`,
      }, ctx);
      return false;
    }
    return true;
  }
  if (provider === 'anthropic') {
    const got = header(req, 'x-api-key');
    if (!got) { sendProviderError(res, provider, { status: 401, message: 'x-api-key header is required' }, ctx); return false; }
    if (got !== want) { sendProviderError(res, provider, { status: 401, message: 'invalid x-api-key' }, ctx); return false; }
    return true;
  }
  const got = header(req, 'x-goog-api-key') ?? url.searchParams.get('key');
  if (!got) {
    sendProviderError(res, provider, {
      status: 403,
      message: "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    }, ctx);
    return false;
  }
  if (got !== want) {
    sendProviderError(res, provider, { status: 400, message: 'API key not valid. Please pass a valid API key.', reason: 'API_KEY_INVALID' }, ctx);
    return false;
  }
  return true;
}

function classify(method, path) {
  if (method !== 'POST') return null;
  if (path.endsWith('/chat/completions')) return { provider: 'openai' };
  if (path.endsWith('/v1/messages') || path === '/messages') return { provider: 'anthropic' };
  const m = path.match(/\/models\/([^/]+):(streamGenerateContent|generateContent)$/);
  if (m) return { provider: 'google', model: decodeURIComponent(m[1]), stream: m[2] === 'streamGenerateContent' };
  return null;
}

function handleProvider(req, res, url, route, rawBody) {
  const { provider } = route;
  let body = null;
  let parseError = null;
  try { body = rawBody.length ? JSON.parse(rawBody) : null; } catch (e) { parseError = e.message; }
  const entry = {
    seq: ++state.seq,
    time: Date.now(),
    provider,
    method: req.method,
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: { ...req.headers },
    body,
  };
  if (parseError) entry.raw = rawBody;
  if (state.config.log) state.requests.push(entry);

  const ctx = { created: Math.floor(Date.now() / 1000) };
  if (provider === 'openai') {
    ctx.stream = body?.stream === true;
    ctx.includeUsage = ctx.stream && body?.stream_options?.include_usage === true;
    const dep = url.pathname.match(/\/deployments\/([^/]+)\/chat\/completions$/);
    ctx.model = (typeof body?.model === 'string' && body.model) || (dep ? decodeURIComponent(dep[1]) : 'gpt-4o');
    ctx.id = `chatcmpl-${rid(29)}`;
  } else if (provider === 'anthropic') {
    ctx.stream = body?.stream === true;
    ctx.model = (typeof body?.model === 'string' && body.model) || 'claude-sonnet-4-5';
    ctx.id = `msg_${rid(24)}`;
  } else {
    ctx.stream = route.stream;
    ctx.sse = route.stream && url.searchParams.get('alt') === 'sse';
    ctx.model = route.model;
    ctx.id = rid(22);
  }
  verbose(`${req.method} ${url.pathname}${url.search} -> ${provider}${ctx.stream ? ' (stream)' : ''}`);

  if (!checkAuth(req, res, provider, ctx, url)) return;
  if (parseError || !isObj(body)) {
    sendProviderError(res, provider, { status: 400, message: parseError ? `Invalid JSON in request body: ${parseError}` : 'Request body must be a JSON object' }, ctx);
    return;
  }
  // A conversation the real API refuses gets its 400 and, like an auth error, takes no
  // scripted response.
  const refusal = (state.config.check_conversation ? CHECKS[provider](body) : null) ??
    tooLong(provider, rawBody.length);
  if (refusal) {
    noteRefusal(entry, refusal);
    sendProviderError(res, provider, refusal, ctx);
    return;
  }
  const r = state.queue.length ? state.queue.shift() : (state.defaultResponse ?? { text: DEFAULT_TEXT });
  respond(req, res, provider, ctx, r);
}

function handleModels(req, res, url) {
  const p = url.pathname;
  if (req.method !== 'GET') return false;
  if (p.endsWith('/v1beta/models') || (p.endsWith('/v1/models') && header(req, 'x-goog-api-key'))) {
    sendJson(res, 200, { models: [{ name: 'models/gemini-2.5-flash', displayName: 'Gemini 2.5 Flash', supportedGenerationMethods: ['generateContent', 'countTokens'] }] });
    return true;
  }
  if (p.endsWith('/v1/models') && header(req, 'anthropic-version')) {
    sendJson(res, 200, { data: [{ type: 'model', id: 'claude-sonnet-4-5', display_name: 'Claude Sonnet 4.5', created_at: '2025-09-29T00:00:00Z' }], has_more: false, first_id: 'claude-sonnet-4-5', last_id: 'claude-sonnet-4-5' });
    return true;
  }
  if (p.endsWith('/models')) {
    sendJson(res, 200, { object: 'list', data: [{ id: 'gpt-4o', object: 'model', created: 1715367049, owned_by: 'system' }] });
    return true;
  }
  if (p === '/api/tags') { // Ollama's own model list
    sendJson(res, 200, { models: [{ name: 'qwen3:latest', model: 'qwen3:latest', modified_at: '2025-01-01T00:00:00Z', size: 1, digest: 'fake', details: {} }] });
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Control routes: /_fake/...
// ---------------------------------------------------------------------------------------------

function setScript(body, append) {
  let responses;
  let hasDefault = false;
  let def = null;
  if (Array.isArray(body)) responses = body;
  else if (isObj(body)) {
    for (const k of Object.keys(body)) {
      if (!['responses', 'default', 'keys'].includes(k)) return `unknown key "${k}" (want responses, default, keys)`;
    }
    responses = body.responses ?? [];
    if (!Array.isArray(responses)) return 'responses must be an array';
    if ('default' in body) { hasDefault = true; def = body.default; }
    if (body.keys !== undefined) {
      const e = setKeys(body.keys);
      if (e) return e;
    }
  } else return 'body must be {"responses": [...]} or an array';
  for (const [i, r] of responses.entries()) {
    const e = validateResponse(r, `responses[${i}]`);
    if (e) return e;
  }
  if (hasDefault && def !== null) {
    const e = validateResponse(def, 'default');
    if (e) return e;
  }
  if (append) state.queue.push(...responses);
  else state.queue = [...responses];
  if (hasDefault) state.defaultResponse = def;
  return null;
}

function setKeys(keys) {
  if (!isObj(keys)) return 'keys must be an object';
  for (const [k, v] of Object.entries(keys)) {
    if (!['openai', 'anthropic', 'google'].includes(k)) return `unknown provider key "${k}"`;
    if (v !== null && typeof v !== 'string') return `keys.${k}: a string or null`;
  }
  Object.assign(state.config.keys, keys);
  return null;
}

function handleControl(req, res, url, rawBody) {
  const p = url.pathname;
  const m = req.method;
  let body = null;
  if (rawBody.length) {
    try { body = JSON.parse(rawBody); } catch (e) { sendJson(res, 400, { error: `invalid JSON: ${e.message}` }); return; }
  }
  if (p === '/_fake/health' && m === 'GET') return sendJson(res, 200, { ok: true });
  if (p === '/_fake/script' && m === 'POST') {
    const e = setScript(body, url.searchParams.get('append') === '1');
    if (e) return sendJson(res, 400, { error: e });
    return sendJson(res, 200, { ok: true, queued: state.queue.length });
  }
  if (p === '/_fake/script' && m === 'GET') {
    return sendJson(res, 200, { queued: state.queue.length, responses: state.queue, default: state.defaultResponse });
  }
  if (p === '/_fake/requests' && m === 'GET') {
    let list = state.requests;
    const prov = url.searchParams.get('provider');
    if (prov) list = list.filter((r) => r.provider === prov);
    return sendJson(res, 200, list);
  }
  if (p === '/_fake/requests' && m === 'DELETE') {
    state.requests = [];
    return sendJson(res, 200, { ok: true });
  }
  if (p === '/_fake/reset' && m === 'POST') {
    state.queue = [];
    state.defaultResponse = null;
    state.requests = [];
    state.config = initialConfig();
    state.stats = { ...freshStats(), active: state.stats.active };
    return sendJson(res, 200, { ok: true });
  }
  if (p === '/_fake/config' && m === 'POST') {
    if (!isObj(body)) return sendJson(res, 400, { error: 'body must be an object' });
    for (const k of Object.keys(body)) {
      if (!['keys', 'log', 'require_anthropic_version', 'check_conversation', 'context_window'].includes(k)) return sendJson(res, 400, { error: `unknown key "${k}"` });
    }
    if (body.keys !== undefined) {
      const e = setKeys(body.keys);
      if (e) return sendJson(res, 400, { error: e });
    }
    if (body.log !== undefined) state.config.log = Boolean(body.log);
    if (body.require_anthropic_version !== undefined) state.config.require_anthropic_version = Boolean(body.require_anthropic_version);
    if (body.check_conversation !== undefined) state.config.check_conversation = Boolean(body.check_conversation);
    if (body.context_window !== undefined) {
      if (!Number.isInteger(body.context_window) || body.context_window < 0) return sendJson(res, 400, { error: 'context_window: a whole number of tokens, 0 for none' });
      state.config.context_window = body.context_window;
    }
    return sendJson(res, 200, state.config);
  }
  if (p === '/_fake/config' && m === 'GET') return sendJson(res, 200, state.config);
  if (p === '/_fake/stats' && m === 'GET') {
    const st = state.stats;
    return sendJson(res, 200, {
      active: st.active, peak: st.peak, served: st.served, refused: st.refused,
      paced_deltas: st.paced_deltas,
      late_max_ms: Number(st.late_max_ms.toFixed(3)),
      late_mean_ms: st.paced_deltas ? Number((st.late_sum_ms / st.paced_deltas).toFixed(3)) : 0,
      queued: state.queue.length, logged: state.requests.length,
    });
  }
  return sendJson(res, 404, { error: `no control route ${m} ${p}` });
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

const server = http.createServer({ noDelay: true, keepAliveTimeout: 30_000 }, (req, res) => {
  const url = new URL(req.url, 'http://fake');
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('error', () => {});
  res.on('error', () => {});
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    try {
      if (url.pathname.startsWith('/_fake/')) return handleControl(req, res, url, raw);
      const route = classify(req.method, url.pathname);
      if (route) return handleProvider(req, res, url, route, raw);
      if (handleModels(req, res, url)) return undefined;
      return sendJson(res, 404, { error: { message: `fake-provider: no route ${req.method} ${url.pathname}`, type: 'invalid_request_error' } });
    } catch (e) {
      process.stderr.write(`fake-provider: internal error: ${e.stack}\n`);
      if (!res.headersSent) sendJson(res, 500, { error: { message: `fake-provider internal error: ${e.message}` } });
      else res.destroy();
      return undefined;
    }
  });
});
server.requestTimeout = 0;
server.headersTimeout = 60_000;
server.maxRequestsPerSocket = 0;

server.on('clientError', (err, socket) => {
  if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
});

server.listen({ port: ARGS.port, host: ARGS.host, backlog: 4096 }, () => {
  const { port } = server.address();
  const host = ARGS.host.includes(':') ? `[${ARGS.host}]` : ARGS.host;
  process.stdout.write(`listening on http://${host}:${port}\n`);
});
server.on('error', (e) => die(e.message));

function shutdown() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
