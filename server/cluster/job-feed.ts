/**
 * The whole cluster's job feed for consoles: each node publishes the jobs that arrived at it
 * (headers as sent, bodies cut to the console's preview size) while some other node has a
 * console open, and reads the others' only while one of its own consoles is open.
 */
import type { Subscription } from '@nats-io/transport-node';
import type { HttpResponse } from '../../shared/protocol.ts';
import type { Logger } from '../logger.ts';
import type { JobSummary } from '../router-events.ts';
import { feedEntrySchema, SUBJECTS, type FeedEntry } from './cluster-protocol.ts';
import type { NatsLink } from './nats-link.ts';

/** Body characters an entry carries (the console's preview size). */
const FEED_BODY_CHARS = 8 * 1024;

export class JobFeed {
  /** Owner: this feed; unsubscribed by stop. */
  #sub: Subscription | null = null;

  constructor(
    readonly link: NatsLink,
    readonly nodeId: string,
    readonly log: Logger,
  ) {}

  /** Reads other nodes' entries into `onJob` while `reading()` says a console is open here. */
  start(reading: () => boolean, onJob: (job: JobSummary) => void): void {
    this.#sub = this.link.subscribeJson(SUBJECTS.feed, feedEntrySchema, (f) => {
      if (reading() && f.node !== this.nodeId) onJob({ ...f.job, node: f.node, remote: true });
    });
  }

  /** Publishes a job that arrived here (the caller checks that some node watches). */
  publish(job: JobSummary): void {
    if (!this.link.connected || !this.#sub) return;
    const entry: FeedEntry = {
      node: this.nodeId,
      job: {
        id: job.id,
        suite: job.suite,
        pool: job.pool,
        workerId: job.workerId,
        acceptedAt: job.acceptedAt,
        durationMs: job.durationMs,
        outcome: job.outcome,
        request: cutBody(job.request),
        response: job.response ? (cutBody(job.response) as HttpResponse) : null,
        error: job.error,
      },
    };
    try {
      this.link.nc.publish(SUBJECTS.feed, JSON.stringify(entry));
    } catch (err) {
      this.log.warn({ err }, 'job feed entry not published');
    }
  }

  stop(): void {
    this.#sub?.unsubscribe();
    this.#sub = null;
  }
}

function cutBody<T extends { body?: string; bodyEncoding?: 'utf8' | 'base64' }>(m: T): T {
  if (m.body === undefined || m.body.length <= FEED_BODY_CHARS) return m;
  return { ...m, body: m.bodyEncoding === 'base64' ? '' : m.body.slice(0, FEED_BODY_CHARS) };
}
