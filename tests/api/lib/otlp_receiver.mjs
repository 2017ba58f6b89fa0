// An OTLP/HTTP trace receiver for the tests, run as its own process: it decodes every
// `POST /v1/traces` (application/x-protobuf) with the code generated from the official
// opentelemetry-proto definitions (@opentelemetry/otlp-transformer ships it), and keeps the
// spans for the test to query. `--stall` accepts and reads every export but never answers it
// (a collector that hangs). `--refuse N` answers the first N exports 503 with `Retry-After: 1`
// (a collector that is overloaded): they are listed in /_exports with `refused: true`, their
// spans are not kept. `--discard` (bench/run.sh) acknowledges every export at once without
// decoding or keeping it, and only counts them: GET /_count answers {exports, spans_bytes}.
//
//   node tests/api/lib/otlp_receiver.mjs [--stall | --discard | --refuse N]   # stdout: "listening on http://127.0.0.1:PORT"
//
// Control routes (answered in both modes):
//   GET /_spans?trace=HEX&rid=ID&count=N  waits until N spans of that trace (and request id)
//                                  arrived (all: neither given), then
//                                  [{traceId, spanId, parentSpanId, name, kind, start, end,
//                                    attributes: {k: v}, status: {code, message}, flags, traceState}]
//   GET /_exports?count=N          waits until N exports arrived (stall: were read), then
//                                  [{headers, resource: {k: v}, raw (the body, latin1), spans}]
import http from 'node:http';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const hex = (b) => Buffer.from(b ?? []).toString('hex');

function value(v) {
  if (!v) return null;
  if (v.stringValue !== undefined && v.stringValue !== null && v.stringValue !== '') return v.stringValue;
  if (v.intValue !== undefined && v.intValue !== null) return Number(v.intValue);
  if (v.boolValue !== undefined && v.boolValue !== null) return v.boolValue;
  if (v.doubleValue !== undefined && v.doubleValue !== null) return v.doubleValue;
  return v.stringValue ?? null;
}

function attrs(list = []) {
  const o = {};
  for (const kv of list) o[kv.key] = value(kv.value);
  return o;
}

function discard() {
  let exports = 0;
  let bytes = 0;
  const server = http.createServer((req, res) => {
    if (req.method === 'POST') {
      req.on('data', (c) => { bytes += c.length; });
      req.on('end', () => {
        exports++;
        res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 });
        res.end();
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ exports, spans_bytes: bytes }));
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`);
  });
}

function serve(stall, refuse) {
  const require = createRequire(import.meta.url);
  const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');
  const Req = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
  const exports = [];
  const spans = [];
  const waiters = new Set();
  const wake = () => { for (const w of [...waiters]) if (w.ready()) { waiters.delete(w); w.done(); } };
  const wait = (res, ready, result) => {
    const w = { ready, done: () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(result())); } };
    if (ready()) w.done();
    else waiters.add(w);
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'GET' && url.pathname === '/_spans') {
      const trace = url.searchParams.get('trace');
      const rid = url.searchParams.get('rid');
      const count = Number(url.searchParams.get('count') ?? 1);
      const mine = () => spans.filter((s) => (!trace || s.traceId === trace) && (!rid || s.attributes['goose.request_id'] === rid));
      return wait(res, () => mine().length >= count, mine);
    }
    if (req.method === 'GET' && url.pathname === '/_exports') {
      const count = Number(url.searchParams.get('count') ?? 1);
      return wait(res, () => exports.length >= count, () => exports);
    }
    if (req.method === 'POST' && url.pathname === '/v1/traces') {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const got = { headers: req.headers, raw: body.toString('latin1'), resource: {}, spans: [] };
        try {
          const msg = Req.decode(body);
          for (const rs of msg.resourceSpans) {
            got.resource = attrs(rs.resource?.attributes);
            for (const ss of rs.scopeSpans) {
              for (const s of ss.spans) {
                const span = {
                  traceId: hex(s.traceId), spanId: hex(s.spanId), parentSpanId: hex(s.parentSpanId),
                  name: s.name, kind: s.kind, start: String(s.startTimeUnixNano), end: String(s.endTimeUnixNano),
                  attributes: attrs(s.attributes), status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
                  flags: s.flags, traceState: s.traceState, scope: ss.scope?.name,
                };
                got.spans.push(span);
                if (exports.length >= refuse) spans.push(span);
              }
            }
          }
        } catch (e) {
          got.error = e.message;
          process.stderr.write(`otlp-receiver: cannot decode an export: ${e.message}\n`);
        }
        if (exports.length < refuse) got.refused = true;
        exports.push(got);
        wake();
        if (stall) return; // read, never answered
        if (got.refused) {
          res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' });
          return res.end('overloaded');
        }
        if (got.error) {
          res.writeHead(400, { 'content-type': 'text/plain' });
          return res.end(got.error);
        }
        res.writeHead(200, { 'content-type': 'application/x-protobuf' });
        res.end(); // an empty ExportTraceServiceResponse
      });
      return undefined;
    }
    res.writeHead(404);
    res.end();
    return undefined;
  });
  server.requestTimeout = 0;
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`);
  });
}

/** Spawns a receiver process; resolves with {url, spans(trace, count), exports(count), stop()}. */
export function startReceiver({ stall = false, refuse = 0 } = {}) {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), ...(stall ? ['--stall'] : []), ...(refuse ? ['--refuse', String(refuse)] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.on('exit', (code) => reject(new Error(`otlp receiver exited (${code}): ${err}`)));
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (!m) return;
      const url = m[1];
      const getJson = async (p) => (await fetch(url + p)).json();
      resolve({
        url,
        stderr: () => err,
        spans: (trace, count = 1) => getJson(`/_spans?count=${count}${trace ? `&trace=${trace}` : ''}`),
        request: async (rid) => (await getJson(`/_spans?rid=${encodeURIComponent(rid)}`))[0],
        exports: (count = 1) => getJson(`/_exports?count=${count}`),
        stop: () => new Promise((r) => { proc.removeAllListeners('exit'); proc.on('exit', r); proc.kill('SIGKILL'); }),
      });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--discard')) discard();
  else {
    const r = process.argv.indexOf('--refuse');
    serve(process.argv.includes('--stall'), r > 0 ? Number(process.argv[r + 1]) : 0);
  }
}
