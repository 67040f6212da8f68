/**
 * What a worker's frame must pass before it is parsed and validated.
 *
 * A `result` for a job the worker does not hold is dropped after a linear scan that
 * reads only its top-level `type` and `id` — validating a rogue result's 8 MB of headers
 * would cost seconds of CPU for nothing. Such results are counted (late results), and a
 * worker sending more than LATE_RESULT_LIMIT of them within LATE_RESULT_WINDOW_MS is
 * flooding, not late: its session closes it with 1008.
 */
import { frameText } from '../shared/codec.ts';
import { PROTOCOL_SCAN_LIMITS, scanJson } from '../shared/json-scan.ts';

/** Results for jobs a worker does not hold that it may send within the window. */
export const LATE_RESULT_LIMIT = 100;
export const LATE_RESULT_WINDOW_MS = 10_000;

/** How an agent's encodeFrame begins a result (JSON.stringify keeps the schema's key order). */
const RESULT_PREFIX = '{"type":"result","id":"';
/** Frames up to this many characters skip the scan when they begin with RESULT_PREFIX. */
const SMALL_FRAME_CHARS = 64 * 1024;

const PEEK_LIMITS = { maxDepth: PROTOCOL_SCAN_LIMITS.maxDepth, maxValues: Number.POSITIVE_INFINITY };

export type Screened =
  /** A result for a job this worker does not hold: drop it (and count it). */
  | { kind: 'late'; id: string }
  /** Decode and validate this text. */
  | { kind: 'frame'; text: string }
  /** Not a frame at all: close with 1008 and this reason. */
  | { kind: 'bad'; reason: string };

/**
 * Screens one ws message from a worker that holds the jobs in `held`. A kept frame has
 * passed the same limits as `decodeAgentFrame` applies: decode it with `decodeScannedAgentFrame`.
 */
export function screenAgentFrame(data: unknown, isBinary: boolean, held: { has(id: string): boolean }): Screened {
  if (isBinary) return { kind: 'bad', reason: 'binary frames are not accepted' };
  const text = frameText(data);
  if (text === null) return { kind: 'bad', reason: 'unreadable frame' };
  // Hot path: a small result in the agent's own encoding names its job first. Parsing up to
  // 64 KiB costs little whatever its shape, so only the id is read here.
  if (text.length <= SMALL_FRAME_CHARS && text.startsWith(RESULT_PREFIX)) {
    const end = text.indexOf('"', RESULT_PREFIX.length);
    const id = end < 0 ? '' : text.slice(RESULT_PREFIX.length, end);
    if (id !== '' && !id.includes('\\')) return held.has(id) ? { kind: 'frame', text } : { kind: 'late', id };
  }
  // One pass: depth is refused at once; the value count is judged only for a frame that is kept.
  const scan = scanJson(text, PEEK_LIMITS, ['type', 'id']);
  if (!scan.ok) return { kind: 'bad', reason: `bad frame: ${scan.reason}` };
  const id = scan.fields.get('id');
  if (scan.fields.get('type') === 'result' && id !== undefined && !held.has(id)) return { kind: 'late', id };
  if (scan.values > PROTOCOL_SCAN_LIMITS.maxValues) return { kind: 'bad', reason: `bad frame: more than ${PROTOCOL_SCAN_LIMITS.maxValues} values` };
  return { kind: 'frame', text };
}

/**
 * Times of a worker's recent late results, in a ring of LATE_RESULT_LIMIT + 1 slots
 * (allocated at the first one: most workers never send any). Owner: its session.
 */
export class LateResultMeter {
  #times: Float64Array | null = null;
  #next = 0;
  #count = 0;

  constructor(
    readonly limit = LATE_RESULT_LIMIT,
    readonly windowMs = LATE_RESULT_WINDOW_MS,
  ) {}

  /** Records one late result at `now` (ms); true when it is the one over the limit within the window. */
  hit(now: number): boolean {
    const size = this.limit + 1;
    this.#times ??= new Float64Array(size);
    this.#times[this.#next] = now;
    this.#next = (this.#next + 1) % size;
    this.#count = Math.min(this.#count + 1, size);
    // With the ring full, #next points at the oldest of the last limit + 1 hits.
    return this.#count === size && now - this.#times[this.#next] < this.windowMs;
  }
}
