// Looking at the processes goosed started, through /proc.
import { readdirSync, readFileSync } from 'node:fs';

/** The pids of the processes whose command line contains marker. */
export function withMarker(marker) {
  const out = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(marker)) out.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** A process's name (comm), "" once it is gone. */
export function comm(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}
