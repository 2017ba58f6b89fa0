// The last step of `make api`: no secret the suite used (tests/api/lib/record.mjs: secret keys,
// user tokens, provider API keys, passwords) appears in anything a goosed process wrote on
// stdout or stderr during the suite. Fails naming each file and secret found.
//   node tests/api/logscan.mjs DIR      (DIR: the GOOSED_SUITE_RECORD of the suite's run)
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node tests/api/logscan.mjs DIR');
  process.exit(2);
}
const read = (sub) => {
  try {
    return readdirSync(path.join(dir, sub)).map((f) => path.join(dir, sub, f));
  } catch {
    return [];
  }
};

const secrets = new Map(); // value -> what
for (const f of read('secrets')) {
  for (const line of readFileSync(f, 'utf8').split('\n')) {
    if (!line) continue;
    const { what, value } = JSON.parse(line);
    if (!secrets.has(value)) secrets.set(value, what);
  }
}
const logs = read('logs');
// A scan of nothing proves nothing: the suite must have recorded both.
if (!logs.length || !secrets.size) {
  console.error(`logscan: ${dir} holds ${logs.length} goosed outputs and ${secrets.size} secrets: was the suite run with GOOSED_SUITE_RECORD=${dir}?`);
  process.exit(1);
}
// Also as JSON and URL encoding would write them.
const forms = (v) => [...new Set([v, JSON.stringify(v).slice(1, -1), encodeURIComponent(v)])];
const found = [];
let bytes = 0;
for (const f of logs) {
  const text = readFileSync(f, 'utf8');
  bytes += text.length;
  for (const [value, what] of secrets) {
    for (const form of forms(value)) {
      const at = text.indexOf(form);
      if (at < 0) continue;
      const lineStart = text.lastIndexOf('\n', at) + 1;
      const lineEnd = text.indexOf('\n', at);
      found.push(`${path.basename(f)}: contains the secret '${value}' (${what}):\n    ${text.slice(lineStart, lineEnd < 0 ? undefined : lineEnd).slice(0, 300)}`);
      break;
    }
  }
}
if (found.length) {
  console.error(`logscan: ${found.length} secret(s) in goosed's output (${dir}/logs):\n  ${found.join('\n  ')}`);
  process.exit(1);
}
console.log(`logscan: ${secrets.size} secrets, none in ${logs.length} goosed outputs (${(bytes / 1e6).toFixed(1)} MB)`);
