// What goosed holds for clients that ask for a large answer (an export, a history) and do not
// read it: at most max_answer_memory in all, past which another such answer is refused (503 busy,
// Retry-After) rather than held too; one answer alone always goes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, stopAndCheck, tempDir } from './lib/server.mjs';
import { get, post, assertError } from './lib/http.mjs';

describe('max_answer_memory', () => {
  it("a client that does not read a 20 MB history holds it alone; another's export is refused until it goes", async () => {
    const srv = await startServer({ env: { GOOSE_MAX_ANSWER_MEMORY: '1048576', GOOSE_MAX_BODY_SIZE: '33554432' } });
    let sock;
    try {
      const text = 'x'.repeat(10000);
      const messages = Array.from({ length: 2000 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: [{ type: 'text', text }] }));
      const im = await post(srv, '/api/sessions/import', { format: 'goosed-session', version: 1, session: { name: 'big', working_dir: tempDir('goosed-am-') }, messages });
      assert.equal(im.status, 201, im.text);
      const id = im.body.id;
      // alone, a history goes whole however large
      const whole = await get(srv, `/api/sessions/${id}/messages`);
      assert.equal(whole.status, 200);
      assert.equal(whole.body.length, 2000);

      // a client asks for it and reads nothing past its first bytes
      sock = net.connect(srv.port, '127.0.0.1');
      const first = new Promise((resolve) => sock.once('data', resolve));
      sock.write(`GET /api/sessions/${id}/messages HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`);
      await first;
      sock.pause();
      let refused;
      for (let i = 0; i < 50 && !refused; i++) {
        const r = await get(srv, `/api/sessions/${id}/export`);
        if (r.status === 503) refused = r;
        else assert.equal(r.status, 200, r.text);
      }
      assert.ok(refused, 'an export was never refused while 20 MB waited for a client that reads nothing');
      assertError(refused, 503, 'busy', /max_answer_memory, 1048576 bytes/);
      assert.equal(refused.headers.get('retry-after'), '5');
      assert.equal((await get(srv, '/status')).status, 200);

      sock.destroy(); // what it held goes with it
      let ok;
      for (let i = 0; i < 100 && !ok; i++) {
        const r = await get(srv, `/api/sessions/${id}/export`);
        if (r.status === 200) ok = r;
        else await new Promise((res) => setTimeout(res, 20));
      }
      assert.ok(ok, 'the export was still refused after the client that held it left');
      assert.equal(ok.body.messages.length, 2000);
    } finally {
      sock?.destroy();
      await stopAndCheck(srv);
    }
  });
});
