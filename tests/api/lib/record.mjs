// What the log scan after the suite needs (tests/api/logscan.mjs, run by `make api`): every
// secret value a test hands to goosed (secret keys, user tokens, provider API keys, passwords)
// and everything each goosed process wrote on stdout and stderr. Both go to the directory named
// by GOOSED_SUITE_RECORD; without it nothing is recorded.
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const DIR = process.env.GOOSED_SUITE_RECORD;
const MIN_LEN = 8; // shorter values would match by chance
const MAX_LEN = 4096; // longer ones are refused keys (a 1 MB api_key): whole in a log is unlikely
const SECRET_NAME = /KEY|TOKEN|SECRET|PASSWORD|PASSWD/i;
let seq = 0;

if (DIR) {
  mkdirSync(path.join(DIR, 'logs'), { recursive: true });
  mkdirSync(path.join(DIR, 'secrets'), { recursive: true });
}

/** Records value (a string) as a secret that no goosed output may contain; what says whose. */
export function recordSecret(value, what) {
  if (!DIR || typeof value !== 'string' || value.length < MIN_LEN || value.length > MAX_LEN) return;
  appendFileSync(path.join(DIR, 'secrets', `${process.pid}.jsonl`), JSON.stringify({ what, value }) + '\n');
}

// Variables that name a file rather than hold a secret: the secret is what the file holds.
const SECRET_FILE = /^GOOSE_TLS_KEY$|_(FILE|PATH)$/;

/** Records the values of env whose names say they are secret (…_KEY, …TOKEN, …SECRET…); for one
 * that names a key file (GOOSE_TLS_KEY), the key in it: each line of its PEM body. */
export function recordSecretEnv(env = {}) {
  for (const [k, v] of Object.entries(env)) {
    if (!SECRET_NAME.test(k) || v == null) continue;
    if (!SECRET_FILE.test(k)) {
      recordSecret(String(v), `env ${k}`);
      continue;
    }
    let text = '';
    try { text = readFileSync(String(v), 'utf8'); } catch { continue; } // a test of a missing file
    for (const line of text.split('\n')) if (/^[A-Za-z0-9+/=]{16,}$/.test(line.trim())) recordSecret(line.trim(), `a line of the file in env ${k}`);
  }
}

/** Records the secrets a request sends: an api_key in its JSON body, its credentials headers. */
export function recordSecretRequest(json, headers = {}) {
  if (json && typeof json === 'object' && typeof json.api_key === 'string') recordSecret(json.api_key, 'api_key of a request body');
  for (const [k, v] of Object.entries(headers)) {
    if (typeof v !== 'string') continue;
    if (/^authorization$/i.test(k)) recordSecret(v.replace(/^(Bearer|Basic)\s+/i, ''), `${k} header`);
    else if (SECRET_NAME.test(k)) recordSecret(v, `${k} header`);
  }
}

/**
 * A recorder of a goosed process's output: {stdout(chunk), stderr(chunk)} append each chunk to
 * its file at once (a test that hangs or is killed still leaves them). No-ops without
 * GOOSED_SUITE_RECORD.
 */
export function recordOutput(label) {
  if (!DIR) return { stdout: () => {}, stderr: () => {} };
  const test = path.basename(process.argv[1] || 'node', '.mjs');
  const base = path.join(DIR, 'logs', `${test}-${process.pid}-${++seq}-${label}`);
  return {
    stdout: (d) => appendFileSync(`${base}.stdout`, d),
    stderr: (d) => appendFileSync(`${base}.stderr`, d),
  };
}
