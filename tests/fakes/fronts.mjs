// Fronts for the fake provider in goosed's tests of its provider client, run inside the test
// process (node: modules only):
//   startFront({ target, tls?, closeReused?, holdUntil? })  a TCP (or TLS-terminating) relay to
//       the fake that counts connections; closeReused: a connection that already carried an
//       answer is closed, unanswered, when more bytes come on it (a kept connection that died
//       meanwhile); holdUntil: N: nothing is passed on to the fake until N connections came (so
//       that N requests are in flight at once).
//   startProxy()  an HTTP proxy: CONNECT tunnels and absolute-form requests, counted, with the
//       Proxy-Authorization each came with.
// Each resolves with { url, port, stats, open(), untilOpen(n), dropAll(), close() }: open() the
// connections open now, untilOpen(n) resolves once no more than n are.
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';

// A backlog as deep as the fake provider's: a test that opens 1,025 connections at once must not
// see the kernel drop some of them (node's default backlog is 511) and goosed connect again.
function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve(server.address().port));
  });
}

function tracked(server, sockets) {
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
}

export async function startFront({ target, tls: tlsOpts = null, closeReused = false, holdUntil = 0 }) {
  const t = new URL(target);
  const stats = { connections: 0, closedReused: 0 };
  const sockets = new Set();
  const held = []; // [up, data] until holdUntil connections came
  const onClient = (client) => {
    stats.connections++;
    if (stats.connections === holdUntil) for (const [u, d] of held.splice(0)) u.write(d);
    let answered = false;
    const up = net.connect(Number(t.port), t.hostname);
    client.on('data', (d) => {
      if (closeReused && answered) {
        stats.closedReused++;
        client.destroy();
        up.destroy();
        return;
      }
      if (stats.connections < holdUntil) held.push([up, d]);
      else up.write(d);
    });
    up.on('data', (d) => {
      answered = true;
      client.write(d);
    });
    up.on('end', () => client.end());
    client.on('end', () => up.end());
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
    client.on('close', () => up.destroy());
  };
  const server = tlsOpts ? tls.createServer(tlsOpts, onClient) : net.createServer(onClient);
  if (tlsOpts) server.on('tlsClientError', () => {});
  return handle(server, sockets, stats, tlsOpts ? 'https' : 'http');
}

export async function startProxy() {
  const stats = { connections: 0, tunnels: 0, requests: 0, auth: [], targets: [] };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    // absolute-form: POST http://host:port/path
    stats.requests++;
    stats.auth.push(req.headers['proxy-authorization'] ?? null);
    stats.targets.push(req.url);
    let u;
    try {
      u = new URL(req.url);
    } catch {
      res.writeHead(400).end('not absolute-form');
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    const up = http.request({ host: u.hostname, port: u.port, method: req.method, path: u.pathname + u.search, headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connect', (req, client, head) => {
    stats.tunnels++;
    stats.auth.push(req.headers['proxy-authorization'] ?? null);
    stats.targets.push(req.url);
    const [host, port] = req.url.split(':');
    const up = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection established\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  server.on('connection', () => stats.connections++);
  return handle(server, sockets, stats, 'http');
}

// The handle a test gets of a front: its URL, its counts, and ways to drop its connections or stop.
async function handle(server, sockets, stats, scheme) {
  tracked(server, sockets);
  const port = await listen(server);
  const waiters = [];
  server.on('connection', (s) =>
    s.on('close', () => {
      for (const w of waiters.splice(0)) if (!w()) waiters.push(w);
    }));
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    stats,
    open: () => sockets.size,
    untilOpen(n) {
      return new Promise((resolve) => {
        const check = () => sockets.size <= n && (resolve(), true);
        if (!check()) waiters.push(check);
      });
    },
    dropAll() {
      for (const s of sockets) s.destroy();
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
