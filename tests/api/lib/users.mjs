// Users for the black-box tests: `goosed user add` against a server's HOME, as an operator does.
import assert from 'node:assert/strict';
import { runGoosed } from './server.mjs';

/** What a user token looks like: printed once by `goosed user add` and `goosed user token`. */
export const TOKEN_RE = /^gd_[A-Za-z0-9_-]{43}$/;

/** Adds user name (an admin when admin) to the store under home; returns their token. */
export async function addUser(home, name, admin = false) {
  const r = await runGoosed(['user', 'add', name, ...(admin ? ['--admin'] : [])], { HOME: home });
  assert.equal(r.code, 0, r.stderr);
  const token = r.stdout.trim();
  assert.match(token, TOKEN_RE);
  return token;
}
