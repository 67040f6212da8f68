/**
 * Which process holds a local TCP port (Linux /proc): the chaos test kills the agent
 * that holds a given job by finding whose socket its target request came from.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Socket inode → local port, for every IPv4 and IPv6 TCP socket of this network namespace. */
function inodesToLocalPorts(): Map<string, number> {
  const out = new Map<string, number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const port = Number.parseInt(cols[1].split(':')[1] ?? '', 16);
      out.set(cols[9], port);
    }
  }
  return out;
}

/** Local TCP ports of the sockets `pid` has open (empty when it is gone). */
export function localPortsOf(pid: number): Set<number> {
  const ports = new Set<number>();
  const byInode = inodesToLocalPorts();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return ports;
  }
  for (const fd of fds) {
    let link: string;
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const m = /^socket:\[(\d+)\]$/.exec(link);
    const port = m ? byInode.get(m[1]) : undefined;
    if (port !== undefined) ports.add(port);
  }
  return ports;
}
