/**
 * Messages larger than the NATS server's max_payload (1 MiB by default) cross as chunks,
 * in order on one subject (NATS keeps one publisher's order on a subject), and are put back
 * together at the receiver. A message that fits goes as one frame with a one-byte prefix.
 *
 * Frame layout:
 *   0x00 payload…                                  a whole message
 *   0x01 u32 index, u32 count, u8 idLength, id, payload slice     one chunk of a transfer
 * A transfer id is `<sender nonce>.<sequence>`, so every transfer of a sender that died
 * can be dropped at once (`dropSender`).
 */

const WHOLE = 0x00;
const CHUNK = 0x01;
const CHUNK_HEADER = 1 + 4 + 4 + 1;
/** Room kept under max_payload for the frame header and NATS's own framing. */
const HEADROOM = 512;

/**
 * A whole-message frame from JSON text in one allocation: the NUL prefix encodes as the 0x00
 * kind byte. Null when the text is too large for one frame (use `toFrames` on its bytes).
 */
export function wholeFrame(json: string, maxFrameBytes: number): Buffer | null {
  // A UTF-8 character takes at most 3 bytes per UTF-16 unit: a cheap bound before encoding.
  if ((json.length + 1) * 3 <= maxFrameBytes - HEADROOM) return Buffer.from(`\0${json}`, 'utf8');
  const frame = Buffer.from(`\0${json}`, 'utf8');
  return frame.length <= maxFrameBytes - HEADROOM ? frame : null;
}

/** Splits `payload` into frames of at most `maxFrameBytes` each. */
export function toFrames(payload: Uint8Array, maxFrameBytes: number, transferId: string): Uint8Array[] {
  if (payload.length + 1 <= maxFrameBytes - HEADROOM) {
    const out = new Uint8Array(payload.length + 1);
    out[0] = WHOLE;
    out.set(payload, 1);
    return [out];
  }
  const id = Buffer.from(transferId, 'latin1');
  if (id.length > 255) throw new Error('transfer id too long');
  const slice = maxFrameBytes - HEADROOM - CHUNK_HEADER - id.length;
  if (slice <= 0) throw new Error(`max payload ${maxFrameBytes} too small for chunks`);
  const count = Math.ceil(payload.length / slice);
  const frames: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const part = payload.subarray(i * slice, Math.min(payload.length, (i + 1) * slice));
    const f = Buffer.allocUnsafe(CHUNK_HEADER + id.length + part.length);
    f[0] = CHUNK;
    f.writeUInt32BE(i, 1);
    f.writeUInt32BE(count, 5);
    f[9] = id.length;
    id.copy(f, CHUNK_HEADER);
    f.set(part, CHUNK_HEADER + id.length);
    frames.push(f);
  }
  return frames;
}

export interface ReassemblerOptions {
  /** Bytes all unfinished transfers may hold together; a chunk beyond it drops its transfer. */
  maxBytes: number;
  /** A transfer with no chunk for this long is abandoned and dropped. */
  idleMs: number;
  /** Told about every dropped transfer (for a log line or a counter). */
  onDrop?: (transferId: string, reason: string) => void;
}

interface Transfer {
  parts: Uint8Array[];
  count: number;
  next: number;
  bytes: number;
  lastAt: number;
}

export type PushResult = { kind: 'message'; payload: Uint8Array } | { kind: 'partial' } | { kind: 'invalid'; reason: string };

/** Puts chunked transfers back together; bounded in bytes and in time. */
export class Reassembler {
  /** Unfinished transfers by id. Owner: this reassembler; removed when complete, dropped, idle or closed. */
  readonly #transfers = new Map<string, Transfer>();
  #bytes = 0;
  /** Sweeps idle transfers; armed only while some transfer is unfinished. */
  #sweep: NodeJS.Timeout | null = null;

  constructor(readonly options: ReassemblerOptions) {}

  /** Unfinished transfers (tests: the table is empty afterwards). */
  get pending(): number {
    return this.#transfers.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  push(frame: Uint8Array): PushResult {
    if (frame.length === 0) return { kind: 'invalid', reason: 'empty frame' };
    if (frame[0] === WHOLE) return { kind: 'message', payload: frame.subarray(1) };
    if (frame[0] !== CHUNK || frame.length < CHUNK_HEADER) return { kind: 'invalid', reason: 'unknown frame kind' };
    const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    const index = buf.readUInt32BE(1);
    const count = buf.readUInt32BE(5);
    const idLen = buf[9];
    if (frame.length < CHUNK_HEADER + idLen) return { kind: 'invalid', reason: 'short chunk' };
    const id = buf.toString('latin1', CHUNK_HEADER, CHUNK_HEADER + idLen);
    const part = frame.subarray(CHUNK_HEADER + idLen);
    let t = this.#transfers.get(id);
    if (!t) {
      if (index !== 0 || count < 2) return { kind: 'invalid', reason: `chunk ${index}/${count} of unknown transfer ${id}` };
      t = { parts: [], count, next: 0, bytes: 0, lastAt: Date.now() };
      this.#transfers.set(id, t);
      this.#arm();
    }
    if (index !== t.next || count !== t.count) {
      this.#drop(id, `chunk ${index}/${count} out of order (expected ${t.next}/${t.count})`);
      return { kind: 'invalid', reason: 'out of order' };
    }
    if (this.#bytes + part.length > this.options.maxBytes) {
      this.#drop(id, `reassembly over ${this.options.maxBytes} bytes`);
      return { kind: 'invalid', reason: 'too large' };
    }
    t.parts.push(part);
    t.bytes += part.length;
    this.#bytes += part.length;
    t.next += 1;
    t.lastAt = Date.now();
    if (t.next < t.count) return { kind: 'partial' };
    this.#remove(id, t);
    return { kind: 'message', payload: Buffer.concat(t.parts, t.bytes) };
  }

  /** Drops every unfinished transfer of a sender (its node died or restarted). */
  dropSender(nonce: string): void {
    const prefix = `${nonce}.`;
    for (const id of [...this.#transfers.keys()]) if (id.startsWith(prefix)) this.#drop(id, 'sender gone');
  }

  /** Drops everything and stops the sweep timer. */
  close(): void {
    for (const id of [...this.#transfers.keys()]) this.#drop(id, 'closed');
    this.#disarm();
  }

  #remove(id: string, t: Transfer): void {
    this.#transfers.delete(id);
    this.#bytes -= t.bytes;
    if (this.#transfers.size === 0) this.#disarm();
  }

  #drop(id: string, reason: string): void {
    const t = this.#transfers.get(id);
    if (!t) return;
    this.#remove(id, t);
    this.options.onDrop?.(id, reason);
  }

  #arm(): void {
    if (this.#sweep) return;
    this.#sweep = setTimeout(this.#onSweep, Math.max(10, this.options.idleMs / 2));
  }

  #disarm(): void {
    if (this.#sweep) clearTimeout(this.#sweep);
    this.#sweep = null;
  }

  readonly #onSweep = (): void => {
    this.#sweep = null;
    const cutoff = Date.now() - this.options.idleMs;
    for (const [id, t] of [...this.#transfers]) if (t.lastAt <= cutoff) this.#drop(id, `no chunk for ${this.options.idleMs} ms`);
    if (this.#transfers.size > 0) this.#arm();
  };
}
