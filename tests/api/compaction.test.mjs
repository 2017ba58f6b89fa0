// Compaction: a conversation over GOOSE_AUTO_COMPACT_THRESHOLD of context_limit is summarized by
// the provider before the reply goes on, and the summary stands in place of what it summarizes
// in every request after, across restarts; the messages stay for the user. The fake provider
// plays a model with a context window (context_window) and refuses, as the real APIs do, a
// request over it: without compaction the same conversation no longer goes through.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { startServer, stopAndCheck, tempDir, assertCleanLog, GOOSED_BIN } from './lib/server.mjs';
import { request, get, post } from './lib/http.mjs';
import { startFake, parseSSE } from '../fakes/lib.mjs';

const KEY = 'sk-compaction-test';
// About 1,400 tokens go with every request (the system prompt and the developer tools), 1,500
// or so with each exchange below (the user's 1,000, the reply's 500): 60 % of a window of 8,000
// tokens holds two exchanges, not three, and the window itself four, not five.
const LIMIT = 8000;
const WORDS = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ';

function providerEnv(fake, extra = {}) {
  return {
    GOOSE_PROVIDER: 'openai', GOOSE_MODEL: 'gpt-test', OPENAI_HOST: fake.url, OPENAI_API_KEY: KEY,
    GOOSE_CONTEXT_LIMIT: String(LIMIT), ...extra,
  };
}

/** The user's n-th message: a marker to find it by, and 4,000 bytes of words. */
const said = (n) => `MARK-U${n} ${WORDS.repeat(52)}`;
/** The model's n-th answer: 2,000 bytes. */
const answer = (n) => `MARK-A${n} ${WORDS.repeat(26)}`;

/** A new session with two long exchanges (under 60 % of the window); resolves with its id. */
async function twoExchanges(srv, fake) {
  const id = await newSession(srv);
  for (const n of [1, 2]) {
    await fake.script([{ text: answer(n) }]);
    await send(srv, id, said(n));
  }
  return id;
}

async function newSession(srv) {
  const r = await post(srv, '/api/sessions', { working_directory: tempDir('goosed-compact-cwd-') });
  assert.equal(r.status, 201, r.text);
  return r.body.id;
}

/** One message, streamed; resolves with the events ({event, json}). */
async function send(srv, id, content) {
  const r = await request(srv, 'POST', `/api/sessions/${id}/messages`, { json: { content }, headers: { Accept: 'text/event-stream' } });
  assert.equal(r.status, 200, r.text);
  return parseSSE(r.text).map((e) => ({ event: e.event, json: JSON.parse(e.data) }));
}

/** The text of an OpenAI request's messages, role by role. */
function textOf(body) {
  return body.messages.map((m) => `${m.role}: ${typeof m.content === 'string' ? m.content : JSON.stringify(m.content)}`).join('\n');
}

describe('compaction of a long conversation', () => {
  let fake;
  before(async () => {
    fake = await startFake({ keys: { openai: KEY } });
  });
  after(() => fake.stop());

  it('over the threshold, the provider summarizes it first, and the summary stands for it from then on, after a restart too', async () => {
    await fake.reset();
    await fake.config({ context_window: LIMIT });
    const home = tempDir('goosed-compact-home-');
    let srv = await startServer({ home, env: providerEnv(fake, { GOOSE_AUTO_COMPACT_THRESHOLD: '0.6' }) });
    let id;
    try {
      id = await newSession(srv);
      // Two exchanges fit under 60 % of the window: no summary asked for.
      for (const n of [1, 2]) {
        await fake.script([{ text: answer(n) }]);
        const ev = await send(srv, id, said(n));
        assert.equal(ev.at(-1).event, 'message_complete', JSON.stringify(ev.at(-1)));
        assert.ok(!ev.some((e) => e.event === 'context_compacted'));
      }
      assert.equal((await fake.requests()).length, 2);

      // The third passes it: a request for a summary comes first, with no tools, holding the
      // conversation so far; then the reply's own request, the summary in place of that.
      await fake.clearRequests();
      await fake.script([{ text: 'SUMMARY-ONE: the user and the agent went through two long texts of lorem ipsum.' }, { text: 'MARK-A3 done' }]);
      const ev = await send(srv, id, said(3));
      const compacted = ev.find((e) => e.event === 'context_compacted');
      assert.ok(compacted, `no context_compacted event: ${ev.map((e) => e.event).join(', ')}`);
      assert.equal(compacted.json.summarized_messages, 4);
      assert.equal(compacted.json.context_limit, LIMIT);
      assert.ok(compacted.json.tokens_after < compacted.json.tokens_before, JSON.stringify(compacted.json));
      assert.ok(ev.findIndex((e) => e.event === 'context_compacted') < ev.findIndex((e) => e.event === 'message_chunk'));
      assert.equal(ev.filter((e) => e.event === 'message_chunk').map((e) => e.json.text).join(''), 'MARK-A3 done');
      assert.equal(ev.at(-1).event, 'message_complete');
      const reqs = await fake.requests();
      assert.equal(reqs.length, 2);
      const [ask, reply] = reqs.map((r) => r.body);
      assert.equal(ask.tools, undefined, 'the summary is asked for without tools');
      assert.match(ask.messages[0].role, /^(system|developer)$/);
      assert.match(ask.messages[0].content, /summar/i);
      for (const m of ['MARK-U1', 'MARK-A1', 'MARK-U2', 'MARK-A2']) assert.match(textOf(ask), new RegExp(m));
      assert.doesNotMatch(textOf(ask), /MARK-U3/, 'the new message is not summarized: it is answered');
      assert.ok(reply.tools.length > 0);
      const sent = textOf(reply);
      assert.match(sent, /SUMMARY-ONE/);
      assert.match(sent, /MARK-U3/);
      for (const m of ['MARK-U1', 'MARK-A1', 'MARK-U2', 'MARK-A2']) assert.doesNotMatch(sent, new RegExp(m));
      assert.equal(reply.messages.filter((m) => m.role === 'user').length, 1, 'one user message: the summary heads it');

      // The user still sees every message, and never the summary.
      const hist = await get(srv, `/api/sessions/${id}/messages`);
      assert.equal(hist.body.length, 6);
      assert.doesNotMatch(JSON.stringify(hist.body), /SUMMARY-ONE/);
      assert.match(hist.body[4].content[0].text, /^MARK-U3/);

      // The next message: the summary again, no new one asked for.
      await fake.clearRequests();
      await fake.script([{ text: 'MARK-A4 fine' }]);
      const ev4 = await send(srv, id, 'MARK-U4 short');
      assert.ok(!ev4.some((e) => e.event === 'context_compacted'));
      const after4 = await fake.requests();
      assert.equal(after4.length, 1);
      const sent4 = textOf(after4[0].body);
      assert.match(sent4, /SUMMARY-ONE[\s\S]*MARK-U3[\s\S]*MARK-A3 done[\s\S]*MARK-U4 short/);
      assert.doesNotMatch(sent4, /MARK-[UA][12]/);
    } finally {
      await stopAndCheck(srv);
    }
    // After a restart, the stored summary is taken up.
    srv = await startServer({ home, env: providerEnv(fake, { GOOSE_AUTO_COMPACT_THRESHOLD: '0.6' }) });
    try {
      await fake.clearRequests();
      await fake.script([{ text: 'MARK-A5 fine' }]);
      const ev5 = await send(srv, id, 'MARK-U5 short');
      assert.equal(ev5.at(-1).event, 'message_complete');
      const [r5] = await fake.requests();
      const sent5 = textOf(r5.body);
      assert.match(sent5, /SUMMARY-ONE[\s\S]*MARK-U3[\s\S]*MARK-U4 short[\s\S]*MARK-U5 short/);
      assert.doesNotMatch(sent5, /MARK-[UA][12]/);
      assert.equal((await get(srv, `/api/sessions/${id}/messages`)).body.length, 10);

      // Later, a second summary: the first goes into it whole, and it takes the first's place.
      await fake.script([{ text: answer(6) }]);
      assert.ok(!(await send(srv, id, said(6))).some((e) => e.event === 'context_compacted'));
      await fake.clearRequests();
      await fake.script([{ text: 'SUMMARY-TWO: more lorem ipsum.' }, { text: 'MARK-A7 ok' }]);
      const ev7 = await send(srv, id, said(7));
      assert.equal(ev7.find((e) => e.event === 'context_compacted')?.json.summarized_messages, 12);
      const [ask2, reply2] = (await fake.requests()).map((r) => textOf(r.body));
      assert.match(ask2, /SUMMARY-ONE: the user and the agent went through two long texts of lorem ipsum\./);
      assert.match(ask2, /MARK-U3[\s\S]*MARK-U6[\s\S]*MARK-A6/);
      assert.match(reply2, /SUMMARY-TWO[\s\S]*MARK-U7/);
      assert.doesNotMatch(reply2, /SUMMARY-ONE|MARK-U[3-6]/);
      assert.equal((await fake.stats()).refused, 0, 'no request went over the model\'s window');
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('with compaction off, the same conversation is refused by the model once over its window', async () => {
    await fake.reset();
    await fake.config({ context_window: LIMIT });
    const srv = await startServer({ env: providerEnv(fake, { GOOSE_AUTO_COMPACT_THRESHOLD: '0', GOOSE_CONTEXT_LIMIT: '100000' }) });
    try {
      const id = await newSession(srv);
      let end;
      for (let n = 1; n <= 6; n++) {
        await fake.script([{ text: answer(n) }]);
        end = (await send(srv, id, said(n))).at(-1);
        if (end.event === 'error') break;
      }
      assert.equal(end.event, 'error', 'the fake model must refuse a request over its window');
      assert.equal(end.json.code, 'provider_error');
      assert.match(end.json.error, /maximum context length is 8000 tokens/);
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('a request the model refuses as over its window (under goosed\'s estimate) is compacted and sent again', async () => {
    await fake.reset();
    await fake.config({ context_window: LIMIT });
    // goosed's own limit is far above the model's: only the model's refusal says it is too long.
    const srv = await startServer({ env: providerEnv(fake, { GOOSE_CONTEXT_LIMIT: '100000' }) });
    try {
      const id = await newSession(srv);
      for (const n of [1, 2, 3, 4]) {
        await fake.script([{ text: answer(n) }]);
        assert.equal((await send(srv, id, said(n))).at(-1).event, 'message_complete');
      }
      await fake.clearRequests();
      await fake.script([{ text: 'SUMMARY-AFTER-REFUSAL' }, { text: 'MARK-A5 made it' }]);
      const ev = await send(srv, id, said(5));
      assert.equal(ev.at(-1).event, 'message_complete', JSON.stringify(ev.at(-1)));
      assert.equal(ev.filter((e) => e.event === 'message_chunk').map((e) => e.json.text).join(''), 'MARK-A5 made it');
      assert.equal(ev.find((e) => e.event === 'context_compacted')?.json.summarized_messages, 8);
      const reqs = (await fake.requests()).map((r) => r.body);
      assert.equal(reqs.length, 3, 'the refused request, the summary, the same request again');
      assert.equal((await fake.stats()).refused, 1);
      assert.match(textOf(reqs[0]), /MARK-U1[\s\S]*MARK-U5/);
      assert.equal(reqs[1].tools, undefined);
      assert.match(textOf(reqs[2]), /SUMMARY-AFTER-REFUSAL[\s\S]*MARK-U5/);
      assert.doesNotMatch(textOf(reqs[2]), /MARK-U1/);
      const hist = (await get(srv, `/api/sessions/${id}/messages`)).body;
      assert.equal(hist.length, 10, 'the user message once, and the reply');
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('a summary the provider does not give: the reply goes on while it fits, and over the limit it ends saying why, nothing stored', async () => {
    await fake.reset();
    const srv = await startServer({ env: providerEnv(fake, { GOOSE_AUTO_COMPACT_THRESHOLD: '0.6' }) });
    try {
      const id = await twoExchanges(srv, fake);
      // Over 60 %, under the limit: the summary fails (a 400 is not retried), the reply goes on.
      await fake.clearRequests();
      await fake.script([{ error: { status: 400, message: 'summaries are refused today' } }, { text: 'MARK-A3 anyway' }]);
      const ev = await send(srv, id, said(3));
      assert.ok(!ev.some((e) => e.event === 'context_compacted'));
      assert.equal(ev.at(-1).event, 'message_complete', JSON.stringify(ev.at(-1)));
      assert.equal(ev.filter((e) => e.event === 'message_chunk').map((e) => e.json.text).join(''), 'MARK-A3 anyway');
      const reqs = await fake.requests();
      assert.equal(reqs.length, 2);
      assert.match(textOf(reqs[1].body), /MARK-U1[\s\S]*MARK-U3/, 'the whole conversation, as before');

      // Over the limit, and the summary fails again: 413 context_too_long, nothing stored.
      await fake.clearRequests();
      await fake.script([{ error: { status: 400, message: 'still refused' } }]);
      const before = (await get(srv, `/api/sessions/${id}/messages`)).body.length;
      const r = await post(srv, `/api/sessions/${id}/messages`, { content: said(4) + WORDS.repeat(150) });
      assert.equal(r.status, 413, r.text);
      assert.equal(r.body.code, 'context_too_long');
      assert.match(r.body.error, /could not be summarized: .*still refused/);
      assert.equal((await get(srv, `/api/sessions/${id}/messages`)).body.length, before);
    } finally {
      await stopAndCheck(srv);
    }
  });

  for (const p of [
    { name: 'anthropic', env: (url) => ({ GOOSE_PROVIDER: 'anthropic', ANTHROPIC_HOST: url, ANTHROPIC_API_KEY: 'ak' }), keys: { anthropic: 'ak' },
      system: (b) => (Array.isArray(b.system) ? b.system.map((x) => x.text).join('') : b.system), turns: (b) => b.messages },
    { name: 'google', env: (url) => ({ GOOSE_PROVIDER: 'google', GOOGLE_HOST: url, GOOGLE_API_KEY: 'gk' }), keys: { google: 'gk' },
      system: (b) => b.systemInstruction.parts.map((x) => x.text).join(''), turns: (b) => b.contents },
  ]) {
    it(`the same through ${p.name}'s API: the summary is asked for without tools, and stands in the next request`, async () => {
      const f = await startFake({ keys: p.keys });
      const srv = await startServer({ env: { ...p.env(f.url), GOOSE_CONTEXT_LIMIT: String(LIMIT), GOOSE_AUTO_COMPACT_THRESHOLD: '0.6' } });
      try {
        await f.config({ context_window: LIMIT });
        const id = await newSession(srv);
        for (const n of [1, 2]) {
          await f.script([{ text: answer(n) }]);
          assert.equal((await send(srv, id, said(n))).at(-1).event, 'message_complete');
        }
        await f.clearRequests();
        await f.script([{ text: `SUMMARY-${p.name}` }, { text: 'MARK-A3 done' }]);
        const ev = await send(srv, id, said(3));
        assert.ok(ev.some((e) => e.event === 'context_compacted'), ev.map((e) => e.event).join(', '));
        assert.equal(ev.at(-1).event, 'message_complete', JSON.stringify(ev.at(-1)));
        const [ask, reply] = (await f.requests()).map((r) => r.body);
        assert.equal(ask.tools, undefined);
        assert.match(p.system(ask), /summar/i);
        assert.match(JSON.stringify(p.turns(ask)), /MARK-U1[\s\S]*MARK-A2/);
        const sent = JSON.stringify(p.turns(reply));
        assert.match(sent, new RegExp(`SUMMARY-${p.name}[\\s\\S]*MARK-U3`));
        assert.doesNotMatch(sent, /MARK-[UA][12]/);
        assert.equal(p.turns(reply).length, 1, 'one turn: the user\'s, headed by the summary');
        assert.equal((await f.stats()).refused, 0);
      } finally {
        await stopAndCheck(srv);
        await f.stop();
      }
    });
  }

  it('goose run says so on stderr, and prints the reply alone on stdout', async () => {
    await fake.reset();
    const srv = await startServer({ env: providerEnv(fake, { GOOSE_AUTO_COMPACT_THRESHOLD: '0.6' }) });
    try {
      const id = await twoExchanges(srv, fake);
      await fake.script([{ text: 'SUMMARY' }, { text: 'MARK-A3 via the CLI' }]);
      const goose = path.join(path.dirname(GOOSED_BIN), 'goose');
      const env = { PATH: process.env.PATH, HOME: tempDir('goose-cli-home-'), GOOSE_SERVER_URL: srv.url };
      for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) if (process.env[k]) env[k] = process.env[k];
      const r = spawnSync(goose, ['run', '--session', id, '-t', said(3)], { env, encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, 'MARK-A3 via the CLI\n');
      assert.match(r.stderr, /^goose run: the conversation so far \(4 messages\) was summarized to fit the model's context/);
      assertCleanLog(r.stderr, 'goose run');
    } finally {
      await stopAndCheck(srv);
    }
  });

  it('GOOSE_AUTO_COMPACT_THRESHOLD must be a fraction from 0 to 1', async () => {
    for (const bad of ['1.5', '-0.1', 'nan', '0x1', '80%']) {
      const { runGoosed } = await import('./lib/server.mjs');
      const r = await runGoosed(['--port', '0'], { GOOSE_AUTO_COMPACT_THRESHOLD: bad });
      assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
      assert.match(r.stderr, /GOOSE_AUTO_COMPACT_THRESHOLD: expected a fraction of context_limit from 0 to 1/);
    }
  });
});
