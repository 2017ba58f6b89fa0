// Watching a session's events over SSE (GET /api/sessions/{id}/events) as they come.
import assert from 'node:assert/strict';
import { parseSSE } from '../../fakes/lib.mjs';

/** Opens GET /events and returns {seen, until(name, pred?), close()}: until reads parsed events
 *  until one named `name` (or any of the names, given an array; and matching pred, if given) has
 *  arrived, and returns all so far. */
export async function watch(srv, id, headers = {}) {
  const ctl = new AbortController();
  const res = await fetch(`${srv.url}/api/sessions/${id}/events`, { signal: ctl.signal, headers });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const seen = [];
  return {
    seen,
    async until(name, pred = () => true) {
      const names = Array.isArray(name) ? name : [name];
      for (;;) {
        const done = parseSSE(buf).filter((e) => !e.incomplete);
        if (done.some((e) => names.includes(e.event) && pred(JSON.parse(e.data)))) {
          seen.splice(0, seen.length, ...done);
          return done;
        }
        const r = await reader.read();
        assert.ok(!r.done, `the event stream ended before ${name}`);
        buf += dec.decode(r.value);
      }
    },
    close() { ctl.abort(); },
  };
}
