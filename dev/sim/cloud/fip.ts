/**
 * The mgmt VM's "FIP:22": a loopback TCP listener that is open exactly while the simulated VM's
 * sshd is up (VM ACTIVE and past sshdAt), so `exec 3<>/dev/tcp/FIP/PORT` probes and the hop
 * ssh's connect see what they would on site.
 */
import * as net from 'node:net';
import { mgmtView } from './model.js';
import { readState } from './store.js';

const POLL_MS = 20;
const SSH_BANNER = 'SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n';

export class FipListener {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private busy = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly dir: string,
    private readonly port: number,
  ) {}

  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), POLL_MS);
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      let up: boolean;
      try {
        up = mgmtView(readState(this.dir), Date.now()).sshdUp;
      } catch {
        // A writer is mid-rename or the dir is being torn down; look again next tick.
        return;
      }
      if (up && this.server === null) await this.open();
      else if (!up && this.server !== null) await this.close();
    } finally {
      this.busy = false;
    }
  }

  private open(): Promise<void> {
    const server = net.createServer((sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => sock.destroy());
      sock.setTimeout(5000, () => sock.destroy());
      sock.write(SSH_BANNER);
      sock.on('data', () => sock.end());
    });
    return new Promise((resolve) => {
      // EADDRINUSE (someone grabbed the port meanwhile): stay closed and retry next tick.
      server.once('error', () => resolve());
      server.listen(this.port, '127.0.0.1', () => {
        this.server = server;
        resolve();
      });
    });
  }

  private close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server === null) return Promise.resolve();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    while (this.busy) await new Promise((r) => setTimeout(r, 5));
    await this.close();
  }
}
