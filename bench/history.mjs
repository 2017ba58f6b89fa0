#!/usr/bin/env node
// bench/history.mjs — makes a session with a long history for the history benchmarks (the
// `history` part of bench/run.sh, bench/history.sh).
//
//   node bench/history.mjs --goosed http://127.0.0.1:P --messages N [--working-directory DIR]
//
// Builds a session document of goosed's export format (README: "Moving sessions between
// instances") with N messages of mixed content, in a repeating pattern of a coding session:
//   1. user: a text request (about 200 bytes);
//   2. assistant: a text (about 150 bytes) and a tool_request (a shell command, its arguments);
//   3. user: the tool_response to it (is_error false; a text item of about 1 KB of output);
//   4. assistant: a thinking item (about 200 bytes) and a text answer (about 400 bytes).
// Every text differs (the message's number is in it), some carry characters JSON escapes (quotes,
// backslashes, newlines, tabs) and non-ASCII text. Then POST /api/sessions/import (one request,
// one transaction), and checks the 201's message_count. Prints one line:
//   HISTORY_RESULT id=ID messages=N body_bytes=B import_ms=T
// Exit 0 on success; 1 when goosed refused the import or answered something else; 2 on usage.

const USAGE = 'usage: node bench/history.mjs --goosed URL --messages N [--working-directory DIR]';
const args = process.argv.slice(2);
const opt = {};
for (let i = 0; i < args.length; i += 2) {
  const k = args[i];
  const v = args[i + 1];
  if (!['--goosed', '--messages', '--working-directory'].includes(k) || v === undefined) {
    process.stderr.write(`history: bad argument ${k ?? ''}\n${USAGE}\n`);
    process.exit(2);
  }
  opt[k.slice(2)] = v;
}
const n = Number(opt.messages);
if (!opt.goosed || !Number.isInteger(n) || n < 1) {
  process.stderr.write(`history: --goosed and --messages (a positive whole number) are required\n${USAGE}\n`);
  process.exit(2);
}
const wd = opt['working-directory'] ?? '/tmp';

const t0 = Date.parse('2026-11-01T09:00:00Z');
const at = (i) => new Date(t0 + i * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const words = 'the build fails because the linker cannot find a symbol that the header declares but no source file defines'.split(' ');
const prose = (i, len) => {
  let s = '';
  for (let k = 0; s.length < len; k++) s += `${words[(i + k) % words.length]} `;
  return `${s.trim()} (${i})`;
};
const output = (i) => {
  const lines = [];
  for (let k = 0; lines.join('\n').length < 1000; k++) {
    lines.push(`-rw-r--r-- 1 dev dev ${(i * 37 + k * 101) % 90000} Nov  1 09:${String(k % 60).padStart(2, '0')} src/mod_${i}_${k}.c\t"ok" \\ été`);
  }
  return lines.join('\n');
};

const messages = [];
for (let i = 0; i < n; i++) {
  const call = `call_${Math.floor(i / 4)}`;
  let m;
  switch (i % 4) {
    case 0:
      m = { role: 'user', content: [{ type: 'text', text: `Please look at the build: ${prose(i, 180)}. What "breaks" it?` }] };
      break;
    case 1:
      m = {
        role: 'assistant',
        content: [
          { type: 'text', text: `I will list the sources first. ${prose(i, 120)}` },
          { type: 'tool_request', id: call, name: 'developer__shell', arguments: { command: `ls -la src/ && grep -rn "sym_${i}" src/`, timeout_s: 30 } },
        ],
      };
      break;
    case 2:
      m = {
        role: 'user',
        content: [{ type: 'tool_response', id: call, name: 'developer__shell', content: [{ type: 'text', text: output(i) }], is_error: false }],
      };
      break;
    default:
      m = {
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: `The listing shows the file. ${prose(i, 180)}` },
          { type: 'text', text: `Found it:\n\n- ${prose(i, 200)}\n- ${prose(i + 1, 150)}\n\nRun \`make\` again.` },
        ],
      };
  }
  m.created_at = at(i);
  messages.push(m);
}
const doc = {
  format: 'goosed-session',
  version: 1,
  exported_at: at(n),
  session: {
    name: `history of ${n} messages`,
    working_dir: wd,
    created_at: at(0),
    updated_at: at(n),
    message_count: n,
    input_tokens: 0,
    output_tokens: 0,
    settings: {},
  },
  messages,
};
const body = JSON.stringify(doc);
const t = process.hrtime.bigint();
let res;
try {
  res = await fetch(`${opt.goosed}/api/sessions/import?working_directory=${encodeURIComponent(wd)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
} catch (e) {
  process.stderr.write(`history: POST /api/sessions/import: ${e.message}\n`);
  process.exit(1);
}
const text = await res.text();
const ms = Number(process.hrtime.bigint() - t) / 1e6;
let j = {};
try { j = JSON.parse(text); } catch { /* reported below */ }
if (res.status !== 201 || j.message_count !== n || !j.id) {
  process.stderr.write(`history: POST /api/sessions/import of ${n} messages (${body.length} bytes): HTTP ${res.status}: ${text.slice(0, 300)}\n`);
  process.exit(1);
}
process.stdout.write(`HISTORY_RESULT id=${j.id} messages=${n} body_bytes=${Buffer.byteLength(body)} import_ms=${ms.toFixed(1)}\n`);
