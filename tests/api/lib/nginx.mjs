// A real nginx for the black-box tests: its own prefix (a temporary directory), run in the
// foreground as one process, so that it stops with the test.
import { spawn } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** Starts nginx with `http` (the body of its http block) in prefix dir; resolves once `port`
 * accepts connections (nginx prints nothing then), rejects with its stderr if it exits first. */
export async function startNginx(dir, http, port, ms = 10_000) {
  for (const t of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, t), { recursive: true });
  writeFileSync(path.join(dir, 'nginx.conf'), `
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${http}
}
`);
  const nginx = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  nginx.stderr.on('data', (d) => { err += d; });
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port }, () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return nginx;
    if (nginx.exitCode !== null || Date.now() > until) {
      nginx.kill('SIGKILL');
      throw new Error(`nginx is not listening on ${port}: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 50)); // polling a port nginx prints nothing about
  }
}

/** Stops nginx (SIGTERM) and waits until it has exited. */
export async function stopNginx(nginx) {
  if (!nginx || nginx.exitCode !== null || nginx.signalCode !== null) return;
  const closed = new Promise((r) => nginx.on('close', r));
  nginx.kill('SIGTERM');
  await closed;
}
