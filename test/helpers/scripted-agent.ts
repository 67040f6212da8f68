/**
 * A protocol-level worker for load and leak tests: a raw ws client that answers each
 * job as its script says, keeps only counters (no frame log that would grow with
 * thousands of jobs), and can leave in every way a real agent can.
 */
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { decodeServerFrame, encodeFrame } from '../../shared/codec.ts';
import { PROTOCOL_VERSION } from '../../shared/limits.ts';
import type { AgentFrame, JobFrame, WelcomeFrame } from '../../shared/protocol.ts';
import { TOKENS } from './server.ts';

export interface ScriptedAgentOptions {
  suite?: string;
  name?: string;
  concurrency?: number;
  token?: string;
  /** Answer pings (default true). */
  autoPong?: boolean;
  /** What to do with each job (default: answer 200 with the job id as body). */
  onJob?: (job: JobFrame, agent: ScriptedAgent) => void;
}

export class ScriptedAgent {
  welcome!: WelcomeFrame;
  jobs = 0;
  cancels = 0;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(
    readonly ws: WebSocket,
    onJob: (job: JobFrame, agent: ScriptedAgent) => void,
  ) {
    ws.on('error', () => {});
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
    ws.on('message', (data) => {
      const decoded = decodeServerFrame(data);
      if (!decoded.ok) throw new Error(`server sent a bad frame: ${decoded.reason}`);
      const frame = decoded.value;
      if (frame.type === 'welcome') this.welcome = frame;
      else if (frame.type === 'job') {
        this.jobs += 1;
        onJob(frame, this);
      } else this.cancels += 1;
    });
  }

  /** Connects and resolves at the welcome; rejects when the socket closes first. */
  static async connect(wsUrl: string, opts: ScriptedAgentOptions = {}): Promise<ScriptedAgent> {
    const q = new URLSearchParams({ suite: opts.suite ?? 'acme', name: opts.name ?? 'pool1', concurrency: String(opts.concurrency ?? 4) });
    const ws = new WebSocket(`${wsUrl}/v1/workers/connect?${q}`, PROTOCOL_VERSION, {
      headers: { authorization: `Bearer ${opts.token ?? TOKENS.worker}` },
      perMessageDeflate: false,
      autoPong: opts.autoPong ?? true,
    });
    const agent = new ScriptedAgent(ws, opts.onJob ?? ((job, a) => a.reply(job.id, 200, job.id)));
    await new Promise<void>((resolve, reject) => {
      const onMessage = () => {
        if (agent.welcome) done(null);
      };
      const onClose = (code: number) => done(new Error(`socket closed before welcome (${code})`));
      const done = (err: Error | null) => {
        ws.off('message', onMessage);
        ws.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      ws.on('message', onMessage);
      ws.on('close', onClose);
    });
    return agent;
  }

  get workerId(): string {
    return this.welcome.workerId;
  }

  /** The TCP socket under the WebSocket (to pause it, or reset it). */
  get socket(): Socket {
    return (this.ws as unknown as { _socket: Socket })._socket;
  }

  send(frame: AgentFrame): void {
    this.ws.send(encodeFrame(frame));
  }

  reply(id: string, status = 200, body = 'ok'): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.send({ type: 'result', id, response: { status, headers: { 'content-type': 'text/plain' }, body, bodyEncoding: 'utf8' } });
  }

  /** Sends a TCP RST: the server sees ECONNRESET, not a close frame. */
  reset(): void {
    this.socket.resetAndDestroy();
  }
}
